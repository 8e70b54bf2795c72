"""The DARTS CNN cell search space (Liu et al., ICLR 2019; public code quark0/darts).

A cell of the *search space* has two inputs (the outputs of the two previous cells) and
four intermediate nodes; node ``i`` receives one mixed edge from each of the ``2 + i``
earlier states, so a cell has 14 edges. Edge ``e`` of node ``i`` from state ``j`` has index
``EDGE_OFFSETS[i] + j``, the order of the reference code's ``_arch_parameters`` rows.

Architecture logits are a pytree ``{'normal': (14, 8), 'reduce': (14, 8)}``; a relaxation
turns them into mixing weights of the same shape.

A :class:`Genotype` is more general than the search space, as in the reference code's
``genotypes.py`` (whose NASNet and AmoebaNet have 5 intermediate nodes, concat lists that
skip nodes and ops outside the 8 search primitives): each cell is an even number of
``(op, input)`` pairs, two per intermediate node, node ``k`` (0-based) taking inputs from
states ``0 .. 1 + k``; ops come from the reference ``OPS`` vocabulary
(:data:`GENOTYPE_OPS`, without ``none``); a concat is any non-empty list of distinct
states; normal and reduce cells may have different node counts. :func:`validate` checks
that; :func:`check_search_space` additionally requires the search space's 4 nodes, 8
primitives and full concat, and guards the functions that map genotypes into the search
space (:func:`edges_below`, :func:`edge_index`, the one-hot mix, the choice codec).

The :class:`Genotype` text form is the reference code's ``repr`` so published genotypes
paste in, e.g. ``Genotype(normal=[('sep_conv_3x3', 1), ...], normal_concat=[2, 3, 4, 5],
reduce=[...], reduce_concat=[2, 3, 4, 5])``; ``range(2, 6)`` is accepted for concats.
"""
from __future__ import annotations

import ast
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.errors import JaxnasError
from jaxnas.spaces.base import genotype_json, read_genotype_file

PRIMITIVES = (
    'none',
    'max_pool_3x3',
    'avg_pool_3x3',
    'skip_connect',
    'sep_conv_3x3',
    'sep_conv_5x5',
    'dil_conv_3x3',
    'dil_conv_5x5',
)
NUM_NODES = 4
NUM_INPUTS = 2
EDGE_OFFSETS = tuple(sum(NUM_INPUTS + k for k in range(i)) for i in range(NUM_NODES))
NUM_EDGES = sum(NUM_INPUTS + i for i in range(NUM_NODES))  # 14
CELL_TYPES = ('normal', 'reduce')
ARCH_SHAPES = {cell: (NUM_EDGES, len(PRIMITIVES)) for cell in CELL_TYPES}
# Intermediate node (0..3) each edge row feeds: edge normalisation (PC-DARTS) groups by it.
EDGE_TARGETS = np.array([i for i in range(NUM_NODES) for _ in range(NUM_INPUTS + i)])
PARAMETER_FREE = ('none', 'max_pool_3x3', 'avg_pool_3x3', 'skip_connect')
# Every op of the reference code's OPS dict (operations.py): the search primitives plus the
# NASNet / AmoebaNet ops. A genotype may use any of them but `none`; each has an evaluation
# form in jaxnas.ops.eval_forms.EVAL_FORMS.
GENOTYPE_OPS = PRIMITIVES + ('sep_conv_7x7', 'conv_7x1_1x7')


class GenotypeError(JaxnasError):
    """A genotype (text, JSON or value) that is not a valid DARTS cell."""


def edge_index(node: int, source: int) -> int:
    """Row of the architecture logits for the edge ``source -> node`` (``node`` 0-based)."""
    if not 0 <= node < NUM_NODES:
        raise GenotypeError(
            f'node {node + NUM_INPUTS} is outside the DARTS search space, whose cells have {NUM_NODES} '
            f'intermediate nodes ({NUM_INPUTS}..{NUM_INPUTS + NUM_NODES - 1}); a genotype with more nodes '
            'can be retrained but has no place in the search space')
    if not 0 <= source < NUM_INPUTS + node:
        raise GenotypeError(f'node {node + NUM_INPUTS} has no edge from state {source} '
                            f'(states 0..{NUM_INPUTS + node - 1} precede it)')
    return EDGE_OFFSETS[node] + source


def init_arch(key: jax.Array, scale: float = 1e-3) -> dict:
    """Architecture logits as in the reference code: ``1e-3 * N(0, 1)`` per cell type."""
    k_n, k_r = jax.random.split(key)
    shape = (NUM_EDGES, len(PRIMITIVES))
    return {
        'normal': scale * jax.random.normal(k_n, shape, jnp.float32),
        'reduce': scale * jax.random.normal(k_r, shape, jnp.float32),
    }


def sample(key: jax.Array) -> 'Genotype':
    """A uniformly random valid genotype (two distinct inputs per node, non-`none` ops)."""
    rng = np.random.default_rng(np.asarray(jax.random.randint(key, (4,), 0, 2**31 - 1)))
    cells = []
    for _ in CELL_TYPES:
        gene = []
        for i in range(NUM_NODES):
            for j in rng.choice(NUM_INPUTS + i, size=2, replace=False):
                gene.append((PRIMITIVES[int(rng.integers(1, len(PRIMITIVES)))], int(j)))
        cells.append(tuple(gene))
    concat = tuple(range(NUM_INPUTS, NUM_INPUTS + NUM_NODES))
    return Genotype(cells[0], concat, cells[1], concat)


class Genotype(NamedTuple):
    """A discrete DARTS cell pair: ``(op, input)`` pairs per cell, two per intermediate
    node (8 in the search space), and the states each cell concatenates."""
    normal: tuple
    normal_concat: tuple
    reduce: tuple
    reduce_concat: tuple

    def __str__(self) -> str:
        return to_text(self)

    def to_json(self) -> dict:
        return {
            'space': 'darts',
            'normal': [[op, j] for op, j in self.normal],
            'normal_concat': list(self.normal_concat),
            'reduce': [[op, j] for op, j in self.reduce],
            'reduce_concat': list(self.reduce_concat),
        }

    def count(self, ops: Sequence[str], cell: str = 'normal') -> int:
        """How many edges of ``cell`` use one of ``ops``."""
        return sum(op in ops for op, _ in getattr(self, cell))

    def num_nodes(self, cell: str = 'normal') -> int:
        """Intermediate nodes of ``cell`` (two ``(op, input)`` pairs each)."""
        return len(getattr(self, cell)) // 2


def _fmt_cell(cell) -> str:
    return '[' + ', '.join(f'({op!r}, {j})' for op, j in cell) + ']'


def to_text(g: Genotype) -> str:
    """The reference code's repr: published genotypes paste in and round-trip exactly."""
    return (f'Genotype(normal={_fmt_cell(g.normal)}, normal_concat={list(g.normal_concat)}, '
            f'reduce={_fmt_cell(g.reduce)}, reduce_concat={list(g.reduce_concat)})')


def make_genotype(normal, normal_concat, reduce, reduce_concat) -> Genotype:
    """Build and validate a genotype from plain Python values."""
    def cell(name, value):
        if not isinstance(value, (list, tuple)):
            raise GenotypeError(f'genotype {name} must be a list of (op, input) pairs, got {value!r}')
        pairs = []
        for item in value:
            if (not isinstance(item, (list, tuple)) or len(item) != 2
                    or not isinstance(item[0], str) or isinstance(item[1], bool)
                    or not isinstance(item[1], (int, np.integer))):
                raise GenotypeError(
                    f'genotype {name} entry {item!r} is not an (op, input) pair like (\'sep_conv_3x3\', 0)')
            pairs.append((item[0], int(item[1])))
        return tuple(pairs)

    def concat(name, value):
        if isinstance(value, range):
            value = list(value)
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
            raise GenotypeError(f'genotype {name} must be a list of node indices like [2, 3, 4, 5], got {value!r}')
        return tuple(int(v) for v in value)

    g = Genotype(cell('normal', normal), concat('normal_concat', normal_concat),
                 cell('reduce', reduce), concat('reduce_concat', reduce_concat))
    validate(g)
    return g


def validate(g: Genotype) -> None:
    """Raise :class:`GenotypeError` unless ``g`` is a well-formed DARTS genotype of any node
    count (the reference evaluation network can build it); see the module docstring."""
    ops = [p for p in GENOTYPE_OPS if p != 'none']
    for name in CELL_TYPES:
        cell = getattr(g, name)
        if not cell or len(cell) % 2:
            raise GenotypeError(
                f'genotype {name} cell has {len(cell)} (op, input) pairs; a DARTS cell needs a positive '
                f'even number, two per intermediate node ({2 * NUM_NODES} in the search space)')
        for k, (op, j) in enumerate(cell):
            node = k // 2
            if op not in ops:
                hint = " ('none' edges are dropped when a genotype is derived)" if op == 'none' else ''
                raise GenotypeError(f"genotype {name} cell uses unknown op {op!r}{hint}; choose one of "
                                    f"{', '.join(ops)}")
            if not 0 <= j < NUM_INPUTS + node:
                raise GenotypeError(
                    f'genotype {name} cell: node {node + NUM_INPUTS} takes input {j}, which does '
                    f'not exist yet (states 0..{NUM_INPUTS + node - 1} are available)')
        concat = list(getattr(g, f'{name}_concat'))
        # The reference network concatenates any states; in a reduction cell the two inputs
        # are still at the input resolution, so there only intermediate nodes fit.
        first = NUM_INPUTS if name == 'reduce' else 0
        last = NUM_INPUTS + len(cell) // 2 - 1
        if not concat or any(not first <= c <= last for c in concat):
            what = 'intermediate nodes' if first else 'states'
            raise GenotypeError(
                f'genotype {name}_concat {concat} must name {what} {first}..{last} of its '
                f'{len(cell) // 2}-node cell' + (' (a reduction cell\'s inputs are not yet reduced)'
                                                  if first and any(0 <= c < first for c in concat) else ''))
        if len(set(concat)) != len(concat):
            raise GenotypeError(f'genotype {name}_concat {concat} names a state twice; list each once')


def search_space_problem(g: Genotype) -> str | None:
    """Why a valid genotype ``g`` is outside the DARTS search space (4 nodes, the 8
    primitives, all nodes concatenated), or ``None`` if it is inside."""
    for name in CELL_TYPES:
        cell = getattr(g, name)
        if len(cell) != 2 * NUM_NODES:
            return (f'its {name} cell has {len(cell) // 2} intermediate nodes; the search space\'s cells '
                    f'have {NUM_NODES}')
        for op, _ in cell:
            if op not in PRIMITIVES:
                return f"its {name} cell uses {op!r}, not one of the search primitives ({', '.join(PRIMITIVES[1:])})"
        concat = tuple(getattr(g, f'{name}_concat'))
        if concat != tuple(range(NUM_INPUTS, NUM_INPUTS + NUM_NODES)):
            return (f'its {name}_concat is {list(concat)}; the search network concatenates all nodes '
                    f'{list(range(NUM_INPUTS, NUM_INPUTS + NUM_NODES))}')
    return None


def check_search_space(g: Genotype, purpose: str = 'this') -> None:
    """Raise :class:`GenotypeError` unless ``g`` is a genotype of the DARTS search space."""
    validate(g)
    problem = search_space_problem(g)
    if problem:
        raise GenotypeError(f'the genotype is outside the DARTS search space, so {purpose} cannot use it: '
                            f'{problem}. It can still be retrained (jaxnas retrain --genotype ...)')


def _literal(node: ast.AST, name: str):
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'range'
            and not node.keywords):
        return range(*[_literal(a, name) for a in node.args])
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise GenotypeError(f'genotype field {name} is not a literal: {ast.unparse(node)!r}') from None


def from_text(text: str) -> Genotype:
    """Parse the reference code's repr (``Genotype(normal=[...], ...)``); never evaluates code."""
    text = text.strip()
    try:
        tree = ast.parse(text, mode='eval').body
    except SyntaxError:
        raise GenotypeError(
            f"cannot parse genotype text {text[:60]!r}...; expected Genotype(normal=[('op', j), ...], "
            "normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[2, 3, 4, 5])") from None
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == 'Genotype'):
        raise GenotypeError(f'genotype text must be a Genotype(...) call, got {text[:60]!r}')
    fields = {}
    if tree.args:
        raise GenotypeError('genotype text must use keyword fields: Genotype(normal=..., normal_concat=..., '
                            'reduce=..., reduce_concat=...)')
    for kw in tree.keywords:
        if kw.arg not in Genotype._fields:
            raise GenotypeError(f'genotype text has unknown field {kw.arg!r}; fields are '
                                f"{', '.join(Genotype._fields)}")
        fields[kw.arg] = _literal(kw.value, kw.arg)
    missing = [f for f in Genotype._fields if f not in fields]
    if missing:
        raise GenotypeError(f"genotype text lacks field(s) {', '.join(missing)}")
    return make_genotype(**fields)


def from_json(obj) -> Genotype:
    """Inverse of :meth:`Genotype.to_json` (accepts a dict or a JSON string)."""
    obj = genotype_json(obj, 'darts', GenotypeError)
    if not isinstance(obj, dict) or set(obj) != set(Genotype._fields):
        raise GenotypeError(f"genotype JSON must be an object with keys {', '.join(Genotype._fields)}")
    return make_genotype(**obj)


def derive_cell(weights: np.ndarray, threshold: float | None = None) -> tuple:
    """The DARTS rule for one cell: per node keep the 2 incoming edges with the largest
    non-`none` weight, and on each the best non-`none` op (ties: lowest index, as
    Python's stable ``sorted`` in the reference code).

    ``threshold`` is FairDARTS's rule (Chu et al. 2020: an op is chosen when its
    independent sigmoid weight reaches the threshold). In this space every node must
    keep exactly 2 inputs for the evaluation network, so edges below the threshold
    cannot be dropped and the rule reduces to the top-2 choice above; the search log
    reports how many chosen edges fall below it (:func:`edges_below`).
    """
    del threshold  # the top-2 rule already prefers every edge that reaches it
    w = np.asarray(weights, np.float64)
    if w.shape != (NUM_EDGES, len(PRIMITIVES)):
        raise GenotypeError(f'cell weights have shape {w.shape}, expected {(NUM_EDGES, len(PRIMITIVES))}')
    none = PRIMITIVES.index('none')
    masked = w.copy()
    masked[:, none] = -np.inf
    gene = []
    for i in range(NUM_NODES):
        rows = masked[EDGE_OFFSETS[i]:EDGE_OFFSETS[i] + NUM_INPUTS + i]
        strongest = np.argsort(-rows.max(axis=1), kind='stable')[:2]
        for j in strongest:
            gene.append((PRIMITIVES[int(np.argmax(rows[j]))], int(j)))
    return tuple(gene)


def edges_below(weights: dict, genotype: 'Genotype', threshold: float) -> int:
    """How many chosen (op, input) pairs of ``genotype`` have weight below ``threshold``."""
    check_search_space(genotype, 'the edge-threshold diagnostic')
    count = 0
    for cell in CELL_TYPES:
        w = np.asarray(weights[cell])
        for k, (op, j) in enumerate(getattr(genotype, cell)):
            count += int(w[edge_index(k // 2, j), PRIMITIVES.index(op)] < threshold)
    return count


def derive(weights: dict, threshold: float | None = None) -> Genotype:
    """Genotype from relaxed weights ``{'normal': (14, 8), 'reduce': (14, 8)}``."""
    concat = tuple(range(NUM_INPUTS, NUM_INPUTS + NUM_NODES))
    return Genotype(derive_cell(weights['normal'], threshold), concat,
                    derive_cell(weights['reduce'], threshold), concat)


# Published genotypes (quark0/darts genotypes.py; GDAS from Dong & Yang 2019). NASNet
# (Zoph et al., CVPR 2018) and AmoebaNet (Real et al., AAAI 2019) are the reference file's
# transcriptions: 5 intermediate nodes, concats that skip nodes, sep_conv_7x7 and
# conv_7x1_1x7; they are outside the search space but retrain in the evaluation networks.
PUBLISHED = {
    'DARTS_V1': from_text(
        "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), "
        "('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
        "('skip_connect', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
        "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0), "
        "('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])"),
    'DARTS_V2': from_text(
        "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
        "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
        "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
        "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
        "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"),
    'PC_DARTS_cifar': from_text(
        "Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 0), "
        "('dil_conv_3x3', 1), ('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('avg_pool_3x3', 0), "
        "('dil_conv_3x3', 1)], normal_concat=range(2, 6), reduce=[('sep_conv_5x5', 1), "
        "('max_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_5x5', 2), ('sep_conv_3x3', 0), "
        "('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2)], reduce_concat=range(2, 6))"),
    'GDAS_V1': make_genotype(
        normal=[('skip_connect', 0), ('skip_connect', 1), ('skip_connect', 0), ('sep_conv_5x5', 2),
                ('sep_conv_3x3', 3), ('skip_connect', 0), ('sep_conv_5x5', 4), ('sep_conv_3x3', 3)],
        normal_concat=[2, 3, 4, 5],
        reduce=[('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('sep_conv_5x5', 2), ('sep_conv_5x5', 1),
                ('dil_conv_5x5', 2), ('sep_conv_3x3', 1), ('sep_conv_5x5', 0), ('sep_conv_5x5', 1)],
        reduce_concat=[2, 3, 4, 5]),
    'NASNet': make_genotype(
        normal=[('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 0), ('sep_conv_3x3', 0),
                ('avg_pool_3x3', 1), ('skip_connect', 0), ('avg_pool_3x3', 0), ('avg_pool_3x3', 0),
                ('sep_conv_3x3', 1), ('skip_connect', 1)],
        normal_concat=[2, 3, 4, 5, 6],
        reduce=[('sep_conv_5x5', 1), ('sep_conv_7x7', 0), ('max_pool_3x3', 1), ('sep_conv_7x7', 0),
                ('avg_pool_3x3', 1), ('sep_conv_5x5', 0), ('skip_connect', 3), ('avg_pool_3x3', 2),
                ('sep_conv_3x3', 2), ('max_pool_3x3', 1)],
        reduce_concat=[4, 5, 6]),
    'AmoebaNet': make_genotype(
        normal=[('avg_pool_3x3', 0), ('max_pool_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 2),
                ('sep_conv_3x3', 0), ('avg_pool_3x3', 3), ('sep_conv_3x3', 1), ('skip_connect', 1),
                ('skip_connect', 0), ('avg_pool_3x3', 1)],
        normal_concat=[4, 5, 6],
        reduce=[('avg_pool_3x3', 0), ('sep_conv_3x3', 1), ('max_pool_3x3', 0), ('sep_conv_7x7', 2),
                ('sep_conv_7x7', 0), ('avg_pool_3x3', 1), ('max_pool_3x3', 0), ('max_pool_3x3', 1),
                ('conv_7x1_1x7', 0), ('sep_conv_3x3', 5)],
        reduce_concat=[3, 4, 6]),
}


def resolve(spec: str) -> Genotype:
    """A genotype from a published name (``DARTS_V2``), its text form, or a JSON file path."""
    spec = spec.strip()
    if spec in PUBLISHED:
        return PUBLISHED[spec]
    if spec.startswith('Genotype('):
        return from_text(spec)
    if spec.endswith('.json'):
        return read_genotype_file(spec, from_json, GenotypeError)
    raise GenotypeError(f"unknown genotype {spec!r}; give a published name ({', '.join(PUBLISHED)}), "
                        'a Genotype(...) text, or a genotype .json file')
