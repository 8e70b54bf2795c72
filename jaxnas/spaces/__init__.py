"""Search spaces: pure data and functions (op lists, edges, genotypes), no Flax.

Every space module provides ``PRIMITIVES``, ``ARCH_SHAPES`` (cell type -> (edges, ops)),
``EDGE_TARGETS``, ``PARAMETER_FREE``, ``init_arch``, ``sample``, ``derive``,
``from_text``/``from_json``/``resolve`` and a ``Genotype`` with ``to_json`` and ``count``.
"""
import importlib

from jaxnas.errors import JaxnasError

SPACES = ('darts', 'nb201')


def get(name: str):
    """The module of search space ``name``."""
    if name not in SPACES:
        raise JaxnasError(f"unknown search space {name!r}; choose one of {', '.join(SPACES)}")
    return importlib.import_module(f'jaxnas.spaces.{name}')
