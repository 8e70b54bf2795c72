"""The NAS-Bench-201 cell search space (Dong & Yang, "NAS-Bench-201", ICLR 2020).

A cell has 4 nodes; node 0 is the cell input and node ``j`` sums one edge from each
earlier node ``i < j``, so a cell has 6 edges; the cell output is node 3. Every edge
takes one of 5 ops, giving 5**6 = 15,625 cells. The same cell is used at every position
of the network, so architecture logits are ``{'cell': (6, 5)}``.

Edges are numbered in the order of the benchmark's architecture string
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (node 1, node 2, node 3; sources in increasing
order): edge ``(target, source)`` has row :func:`edge_index`.

Benchmark index order (the ``arch_index`` of the NAS-Bench-201 / NATS-Bench ``tss``
files) is reproduced without the file: the benchmark enumerated the cells with the
first edge most significant and ops in :data:`PRIMITIVES` order, then shuffled that list
with Python's ``random.Random(88).shuffle`` (CPython's shuffle algorithm is unchanged
since Python 3.2). The tests check all 15,625 positions against the benchmark's list.
"""
from __future__ import annotations

import functools
import random
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.spaces.darts import GenotypeError
from jaxnas.spaces.base import genotype_json, read_genotype_file

PRIMITIVES = ('none', 'skip_connect', 'nor_conv_1x1', 'nor_conv_3x3', 'avg_pool_3x3')
NUM_NODES = 4
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (target, source), arch-string order
NUM_EDGES = len(EDGES)  # 6
NUM_ARCHS = len(PRIMITIVES) ** NUM_EDGES  # 15,625
CELL_TYPES = ('cell',)
ARCH_SHAPES = {'cell': (NUM_EDGES, len(PRIMITIVES))}
# Target node of each edge row: edge normalisation (PC-DARTS) groups by it.
EDGE_TARGETS = np.array([t for t, _ in EDGES])
PARAMETER_FREE = ('none', 'skip_connect', 'avg_pool_3x3')
_SHUFFLE_SEED = 88  # the benchmark's fixed shuffle of the enumeration


def edge_index(target: int, source: int) -> int:
    """Row of the architecture logits for the edge ``source -> target`` (``0 <= source < target <= 3``)."""
    if not 0 <= source < target < NUM_NODES:
        raise GenotypeError(f'no NAS-Bench-201 edge {source} -> {target}; edges go from node i to node j > i '
                            f'with nodes 0..{NUM_NODES - 1}')
    return target * (target - 1) // 2 + source


def init_arch(key: jax.Array, scale: float = 1e-3) -> dict:
    """Architecture logits ``scale * N(0, 1)`` of shape ``(6, 5)`` (one cell shared by all)."""
    return {'cell': scale * jax.random.normal(key, ARCH_SHAPES['cell'], jnp.float32)}


class Genotype(NamedTuple):
    """A NAS-Bench-201 cell: the op of each of the 6 edges, in :data:`EDGES` order.

    ``str(g)`` is the benchmark's architecture string; ``tuple(g)`` the 6 op names.
    """
    edge_1_0: str
    edge_2_0: str
    edge_2_1: str
    edge_3_0: str
    edge_3_1: str
    edge_3_2: str

    def __str__(self) -> str:
        return to_text(self)

    @property
    def ops(self) -> tuple:
        return tuple(self)

    def to_json(self) -> dict:
        return {'space': 'nb201', 'arch': to_text(self)}

    def count(self, ops: Sequence[str], cell: str = 'normal') -> int:
        """How many edges use one of ``ops``; ``cell`` only for parity with the DARTS genotype."""
        if cell not in ('normal', 'cell'):
            raise GenotypeError(f'a NAS-Bench-201 genotype has a single cell, not a {cell!r} cell')
        return sum(op in ops for op in self)


def to_text(g: Sequence[str]) -> str:
    """The architecture string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
    nodes, k = [], 0
    for target in range(1, NUM_NODES):
        nodes.append('|' + '|'.join(f'{g[k + s]}~{s}' for s in range(target)) + '|')
        k += target
    return '+'.join(nodes)


def make_genotype(ops: Sequence[str]) -> Genotype:
    """A validated genotype from the 6 op names in edge order."""
    if isinstance(ops, str) or not isinstance(ops, (list, tuple)):
        raise GenotypeError(f'a NAS-Bench-201 genotype is {NUM_EDGES} op names, got {ops!r}')
    if len(ops) != NUM_EDGES:
        raise GenotypeError(f'a NAS-Bench-201 cell has {NUM_EDGES} edges, got {len(ops)} ops')
    for op in ops:
        if op not in PRIMITIVES:
            raise GenotypeError(f"unknown NAS-Bench-201 op {op!r}; choose one of {', '.join(PRIMITIVES)}")
    return Genotype(*ops)


_ARCH_FORMAT = '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'
_FORMAT = f"expected '{_ARCH_FORMAT}'"


def from_text(text: str) -> Genotype:
    """Parse an architecture string; node ``j`` must list sources ``0..j-1`` in order."""
    if not isinstance(text, str):
        raise GenotypeError(f'a NAS-Bench-201 architecture string must be text, got {text!r}; {_FORMAT}')
    text = text.strip()
    nodes = text.split('+')
    if len(nodes) != NUM_NODES - 1:
        raise GenotypeError(f'architecture string {text!r} has {len(nodes)} node(s), a NAS-Bench-201 cell '
                            f'has {NUM_NODES - 1} (separated by +); {_FORMAT}')
    ops = []
    for target, node in enumerate(nodes, start=1):
        if len(node) < 2 or not (node.startswith('|') and node.endswith('|')):
            raise GenotypeError(f'node {target} {node!r} of {text!r} must be wrapped in |...|; {_FORMAT}')
        edges = node[1:-1].split('|')
        if len(edges) != target:
            raise GenotypeError(f'node {target} of {text!r} has {len(edges)} incoming edge(s), needs {target} '
                                f'(one from each of nodes 0..{target - 1}); {_FORMAT}')
        for source, edge in enumerate(edges):
            op, sep, src = edge.partition('~')
            if not sep or src != str(source):
                raise GenotypeError(f'edge {edge!r} of node {target} in {text!r} should read op~{source}; {_FORMAT}')
            if op not in PRIMITIVES:
                raise GenotypeError(f"unknown NAS-Bench-201 op {op!r} in {text!r}; choose one of "
                                    f"{', '.join(PRIMITIVES)}")
            ops.append(op)
    return Genotype(*ops)


def from_json(obj) -> Genotype:
    """Inverse of :meth:`Genotype.to_json` (a dict ``{'arch': ...}`` or its JSON string)."""
    obj = genotype_json(obj, 'nb201', GenotypeError)
    if not isinstance(obj, dict) or set(obj) != {'arch'}:
        raise GenotypeError(f'NAS-Bench-201 genotype JSON must be an object {{"arch": "{_ARCH_FORMAT}"}}, '
                            f'got {obj!r}')
    return from_text(obj['arch'])


def as_genotype(g) -> Genotype:
    """A :class:`Genotype` from a genotype, an architecture string or 6 op names."""
    if isinstance(g, Genotype):
        return g
    if isinstance(g, str):
        return from_text(g)
    return make_genotype(g)


# --- benchmark index order ------------------------------------------------------------

def _code(g: Genotype) -> int:
    """Position in the enumeration: first edge most significant, ops in PRIMITIVES order."""
    code = 0
    for op in g:
        code = code * len(PRIMITIVES) + PRIMITIVES.index(op)
    return code


def _decode(code: int) -> Genotype:
    ops = []
    for _ in range(NUM_EDGES):
        code, r = divmod(code, len(PRIMITIVES))
        ops.append(PRIMITIVES[r])
    return Genotype(*reversed(ops))


@functools.cache
def _order() -> tuple:
    """``(codes, indexes)``: the enumeration code of each benchmark index, and its inverse."""
    codes = list(range(NUM_ARCHS))
    random.Random(_SHUFFLE_SEED).shuffle(codes)
    codes = np.asarray(codes, np.int64)
    indexes = np.empty_like(codes)
    indexes[codes] = np.arange(NUM_ARCHS)
    codes.setflags(write=False)
    indexes.setflags(write=False)
    return codes, indexes


def to_index(genotype) -> int:
    """The benchmark's ``arch_index`` of a genotype (or architecture string)."""
    return int(_order()[1][_code(as_genotype(genotype))])


def from_index(index: int) -> Genotype:
    """The genotype at the benchmark's ``arch_index`` (0..15,624)."""
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < NUM_ARCHS:
        raise GenotypeError(f'NAS-Bench-201 index must be an integer in 0..{NUM_ARCHS - 1}, got {index!r}')
    return _decode(int(_order()[0][index]))


def all_genotypes() -> list:
    """All 15,625 genotypes in benchmark index order."""
    return [_decode(int(c)) for c in _order()[0]]


def sample(key: jax.Array) -> Genotype:
    """A uniformly random cell (each edge's op uniform over the 5 primitives)."""
    ops = np.asarray(jax.random.randint(key, (NUM_EDGES,), 0, len(PRIMITIVES)))
    return Genotype(*(PRIMITIVES[int(i)] for i in ops))


def derive(weights: dict, primitives: Sequence[str] = PRIMITIVES, threshold: float | None = None) -> Genotype:
    """The genotype of relaxed weights ``{'cell': (6, len(primitives))}``: on each edge the
    op of largest weight over all ops, `none` included, as the NAS-Bench-201 paper's
    DARTS/GDAS baselines (ties: lowest index).

    With ``threshold`` (FairDARTS, Chu et al. 2020: independent sigmoid weights), an edge
    takes its best non-`none` op only if that op's weight reaches the threshold, and
    `none` otherwise.

    The derived cell is never disconnected: if no path of non-`none` edges leads from the
    cell input (node 0) to the output (node 3), e.g. when `none` wins every edge, the
    `none` edges of the path from node 0 to node 3 whose best non-`none` weights have the
    largest product (edges already on take no part; ties: the shortest path) take their
    best non-`none` op (:func:`connect`).
    """
    w = np.asarray(weights['cell'] if isinstance(weights, dict) else weights)
    if w.shape != (NUM_EDGES, len(primitives)):
        raise GenotypeError(f'cell weights have shape {w.shape}, expected {(NUM_EDGES, len(primitives))}')
    if 'none' not in primitives:
        return make_genotype([primitives[int(i)] for i in np.argmax(w, axis=1)])
    none = list(primitives).index('none')
    masked = w.astype(np.float64).copy()
    masked[:, none] = -np.inf
    best = np.argmax(masked, axis=1)
    if threshold is None:
        ops = [primitives[int(i)] for i in np.argmax(w, axis=1)]
    else:
        ops = [primitives[int(b)] if masked[e, b] >= threshold else 'none' for e, b in enumerate(best)]
    return make_genotype(connect(ops, [primitives[int(b)] for b in best], masked[np.arange(NUM_EDGES), best]))


# Paths from node 0 to node 3, shortest first: each a tuple of edge rows.
PATHS = tuple(tuple(edge_index(t, s) for s, t in zip(p[:-1], p[1:]))
              for p in ((0, 3), (0, 1, 3), (0, 2, 3), (0, 1, 2, 3)))


def is_connected(ops: Sequence[str]) -> bool:
    """Whether a path of non-`none` edges leads from the cell input to its output."""
    return any(all(ops[e] != 'none' for e in path) for path in PATHS)


def connect(ops: Sequence[str], fallback: Sequence[str], scores) -> list:
    """``ops`` if connected, else ``ops`` with the `none` edges of one path from node 0 to
    node 3 set to ``fallback`` (each edge's best non-`none` op): the path whose `none`
    edges have the largest product of ``scores`` (their best non-`none` weights)."""
    ops = list(ops)
    if is_connected(ops):
        return ops
    logs = np.log(np.maximum(np.asarray(scores, np.float64), 1e-300))

    def cost(path):
        return sum(logs[e] for e in path if ops[e] == 'none')
    path = max(PATHS, key=cost)   # first of the best: the shortest
    for e in path:
        if ops[e] == 'none':
            ops[e] = fallback[e]
    return ops


def resolve(spec) -> Genotype:
    """A genotype from an architecture string, a benchmark index (int or digits), a
    genotype ``.json`` file, 6 op names, or a :class:`Genotype`."""
    if isinstance(spec, Genotype):
        return spec
    if isinstance(spec, (list, tuple)):
        return make_genotype(spec)
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        return from_index(spec)
    if not isinstance(spec, str):
        raise GenotypeError(f'cannot resolve NAS-Bench-201 genotype {spec!r}; give an architecture string, '
                            'an index, 6 op names or a .json file')
    spec = spec.strip()
    if spec.isdigit():
        return from_index(int(spec))
    if spec.startswith('|'):
        return from_text(spec)
    if spec.endswith('.json'):
        return read_genotype_file(spec, from_json, GenotypeError)
    raise GenotypeError(f'unknown NAS-Bench-201 genotype {spec!r}; give an architecture string '
                        f"('{_ARCH_FORMAT}'), an index 0..{NUM_ARCHS - 1}, "
                        'or a genotype .json file')
