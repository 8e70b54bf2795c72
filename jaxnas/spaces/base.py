"""The search-space contract: one frozen dataclass of data and pure functions.

A :class:`SearchSpace` answers everything a loop, a searcher, a cost model or a report
needs to know about a space, so no caller ever tests a space's *name* or the shape of a
genotype. Each space lives in its own package (``jaxnas/spaces/<name>/``) and exposes one
``SPACE``; :mod:`jaxnas.spaces` holds the registry (the one list of spaces).

Shapes and units:

- architecture logits and mixing weights are a dict ``cell type -> (edges, ops)`` array
  (:attr:`SearchSpace.arch_shapes`); a relaxation maps logits to weights of that shape;
- a genotype is a hashable value of the space's own type; ``str(g)`` is its text form,
  which :attr:`SearchSpace.parse` reads back, and ``to_json(g)`` a JSON object with a
  ``"space"`` key, which :attr:`SearchSpace.from_json` reads back;
- ``search_network(model, num_classes, mode=..., partial_channels=...)`` is a Flax module
  called ``apply(variables, x, mix, train=...)`` with ``x (B, H, W, C)`` and ``mix`` the
  mixing weights; it returns logits;
- ``eval_network(genotype, retrain, num_classes)`` is a Flax module called
  ``apply(variables, x, train=..., drop_prob=...)`` returning ``(logits, aux_logits or None)``;
- ``op_mask`` (optional) marks the ops each edge may take (a chain layer that changes
  shape has no identity); relaxations give the others zero weight and never sample them;
- ``edge_shapes(model, input_shape)`` is the cost models' hook: for every cell type the
  list of :class:`EdgeShape` of the search network at that input (one per edge row of the
  cell's logits, in row order), enough to build each op of that edge alone and cost it;
- ``edge_op(op_name, edge) -> module | None`` (optional) builds that op alone on an
  :class:`EdgeShape` as a module called ``module(x, train)`` (``None``: the op computes
  nothing, ``none``); without it the op registry's evaluation form ``(C_in, stride)`` is
  used (:func:`jaxnas.costs.table.edge_module`);
- ``edge_keep`` (optional, cell -> ``(edges,)``) is the share of derived genotypes that
  keep each edge row (a DARTS node keeps 2 of its inputs); the expected cost of a mix
  weights each row by it (default 1);
- ``derive_excludes``: ops ``derive`` never picks (DARTS: ``none``); the expected cost of
  the softmax-type relaxations is taken over the other ops, renormalised, i.e. the cost of
  the op an edge would derive to.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence

import numpy as np

from jaxnas.errors import JaxnasError


class ChoiceError(JaxnasError):
    """A choice space, or a candidate vector or genotype it cannot encode."""


class EdgeShape(NamedTuple):
    """One edge of a search network as a cost model sees it: the input of its ops
    ``(H, W, C_in)``, the output channels and the stride; ``count`` is how many times
    this edge runs in the network (cells sharing the same logits row)."""
    cell: str
    row: int
    input_hw: tuple
    c_in: int
    c_out: int
    stride: int
    count: int = 1


class ChoiceCodec(NamedTuple):
    """A space's cells as categorical choices (the discrete searchers' view).

    ``decode(ints) -> genotype`` is total: every vector with ``0 <= v[k] < sizes[k]``
    decodes to a valid genotype; ``encode(genotype) -> list[int]`` inverts it for the
    genotypes it can represent and raises ``ChoiceError`` otherwise.
    """
    names: tuple
    sizes: tuple
    decode: Callable[[Sequence[int]], Any]
    encode: Callable[[Any], list]


class TabularBenchmark(NamedTuple):
    """A tabular benchmark of a space (NAS-Bench-201 / NATS-Bench): ``open(path)`` gives a
    handle, ``query(handle, genotype, dataset=, hp=)`` one cell's record (``None`` when the
    file lacks it), ``score(path, genotype)`` the summary a search reports (with an
    ``'error'`` entry instead when the file is missing)."""
    name: str
    open: Callable
    query: Callable
    score: Callable


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """A search space: its data and pure functions. See the module docstring for shapes."""
    name: str
    label: str                                   # for reports: 'DARTS cell', 'NAS-Bench-201 cell', ...
    primitives: tuple                            # op names of the relaxed edges, column order of the logits
    cell_types: tuple                            # keys of the logits / weights dicts
    arch_shapes: Mapping[str, tuple]             # cell type -> (edges, ops)
    edge_targets: np.ndarray                     # target node of each edge row (PC-DARTS edge normalisation)
    parameter_free: tuple                        # ops without weights (collapse diagnostics)
    genotype_type: type
    init_arch: Callable                          # (key, scale=1e-3) -> logits dict
    sample: Callable                             # (key) -> a uniformly random valid genotype
    derive: Callable                             # (weights dict, threshold=None) -> genotype
    parse: Callable                              # (spec: str | value) -> genotype; names, text, index, .json
    from_json: Callable                          # (dict | str) -> genotype
    to_json: Callable                            # (genotype) -> dict, with key 'space'
    one_hot: Callable                            # (genotype) -> weights dict of 0/1 (the genotype as a mix)
    choices: Callable                            # () -> ChoiceCodec
    search_network: Callable                     # (model cfg, num_classes, *, mode, partial_channels) -> module
    eval_network: Callable                       # (genotype, retrain cfg, num_classes) -> module
    draw: Callable                               # (genotype, workdir) -> list of PNG paths written
    diagnostics: Callable                        # (weights, genotype, threshold) -> dict of collapse counts
    edge_shapes: Callable                        # (model cfg, input_shape (H, W, C)) -> {cell: [EdgeShape]}
    check_config: Callable = lambda config: None  # raise ConfigError for model fields the space cannot build
    published: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    op_mask: Optional[Mapping[str, np.ndarray]] = None  # cell -> bool (edges, ops): ops an edge may take
    tabular: Optional[TabularBenchmark] = None   # its tabular benchmark, if it has one
    edge_op: Optional[Callable] = None           # (op name, EdgeShape) -> module(x, train) | None
    edge_keep: Optional[Mapping[str, np.ndarray]] = None  # cell -> (edges,) share of genotypes keeping the row
    derive_excludes: tuple = ()                  # ops derive never picks (the expected cost leaves them out)

    def is_genotype(self, g) -> bool:
        return isinstance(g, self.genotype_type)

    def to_text(self, g) -> str:
        return str(g)


def genotype_json(obj, space: str, error: type) -> dict:
    """A genotype's JSON object from a dict or its JSON text, without its ``"space"`` key;
    a JSON that names another space, or does not parse, raises ``error`` in one line."""
    import json
    if isinstance(obj, str):
        try:
            obj = json.loads(obj)
        except json.JSONDecodeError as e:
            raise error(f'{space} genotype JSON does not parse: {e}') from None
    if isinstance(obj, dict):
        if obj.get('space', space) != space:
            raise error(f"genotype JSON of space {obj['space']!r} is not a {space} genotype")
        obj = {k: v for k, v in obj.items() if k != 'space'}
    return obj


def read_genotype_file(path: str, from_json: Callable, error: type):
    """``from_json`` of the genotype ``.json`` file at ``path``; an unreadable file raises
    ``error`` naming it."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise error(f'cannot read genotype file {path}: {e.strerror}') from None
    return from_json(text)
