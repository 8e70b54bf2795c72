"""Search spaces: the registry (the one list of spaces) and lookups over it.

Each space is a package ``jaxnas/spaces/<name>/`` whose ``SPACE`` is a
:class:`jaxnas.spaces.base.SearchSpace` (data and pure functions: primitives, shapes,
sampling, derivation, parsing, networks, drawing, cost hook). Adding a space is one
package and one line in :data:`REGISTRY`.
"""
from __future__ import annotations

import importlib

from jaxnas.errors import JaxnasError
from jaxnas.spaces.base import ChoiceCodec, EdgeShape, SearchSpace, TabularBenchmark  # noqa: F401

REGISTRY = {
    'darts': 'jaxnas.spaces.darts',
    'nb201': 'jaxnas.spaces.nb201',
    'mbconv': 'jaxnas.spaces.mbconv',
}


def names() -> tuple:
    return tuple(REGISTRY)


def get(name: str) -> SearchSpace:
    """The :class:`SearchSpace` registered as ``name``."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise JaxnasError(f"unknown search space {name!r}; choose one of {', '.join(REGISTRY)}")
    return importlib.import_module(REGISTRY[name]).SPACE


def of_genotype(genotype) -> SearchSpace:
    """The space whose genotype type ``genotype`` is."""
    for name in REGISTRY:
        space = get(name)
        if space.is_genotype(genotype):
            return space
    raise JaxnasError(f'{type(genotype).__name__} is not the genotype of any registered space '
                      f"({', '.join(REGISTRY)})")


def parse_any(spec, prefer: str | None = None):
    """``(space, genotype)`` for a genotype spec that one registered space can parse:
    ``prefer``'s space is asked first, then the others in registry order. A JSON object
    names its space (key ``"space"``)."""
    import json
    from jaxnas.spaces.darts.genotype import GenotypeError
    if isinstance(spec, dict):
        if 'space' in spec:
            space = get(spec['space'])
            return space, space.from_json(spec)
        spec = json.dumps(spec)
    if isinstance(spec, int) and not isinstance(spec, bool):
        spec = str(spec)        # an index, e.g. a JSON file holding a NAS-Bench-201 index
    if not isinstance(spec, str):
        raise GenotypeError(f'a genotype is a name, a text or a JSON object {{"space": ...}}, got the '
                            f'{type(spec).__name__} {str(spec)[:60]!r}; see a search\'s genotype.json for the form')
    order = ([prefer] if prefer in REGISTRY else []) + [n for n in REGISTRY if n != prefer]
    errors = []
    for name in order:
        space = get(name)
        try:
            return space, space.parse(spec)
        except GenotypeError as e:
            errors.append(f'{name}: {e}')
    raise GenotypeError(f'no search space reads genotype {str(spec)[:80]!r}; ' + ' | '.join(errors))
