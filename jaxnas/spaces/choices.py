"""A search space as a flat list of categorical choices, for the discrete searchers.

Discrete searchers (random search, regularized evolution -- Real et al., AAAI 2019 --,
REINFORCE -- Zoph & Le, ICLR 2017, in the NAS-Bench-201 baseline form) see a candidate
as one integer vector ``c`` with ``0 <= c[k] < sizes[k]``. :class:`ChoiceSpace` maps such
vectors to ``(genotype, hyperparameters)`` and back.

Cell encodings (every vector decodes to a valid genotype, so every mutation of one
choice is a valid genotype too):

- ``darts``: for each cell type and each intermediate node ``i`` (``2 + i`` earlier
  states) three choices: ``inputs``, an index into the ``C(2 + i, 2)`` unordered pairs of
  distinct earlier states (as the DARTS derivation, two distinct inputs per node), then
  ``op_a`` and ``op_b``, the ops (non-``none`` DARTS primitives) on the smaller and the
  larger input. Node 0 has a single pair {0, 1}: that choice has size 1 and is never
  mutated. The canonical genotype lists each node's two edges by increasing input, so
  ``decode(encode(g)) == g`` for genotypes in that order.
- ``nb201``: one choice per edge of the NAS-Bench-201 cell (6 edges x 5 ops, 15,625
  cells), in the order of its architecture string.

A fixed candidate list (``cells``: genotypes or their texts) replaces the cell choices
by one choice, ``cell``, indexing the list: a toy space, or the cells a partial tabular
benchmark holds.

Hyperparameter choices (``{'lr': (0.01, 0.025, 0.05), 'channels': (8, 16)}``: a name and
its candidate values) follow the cell choices; :meth:`ChoiceSpace.decode` returns them
as a dict of values.
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Mapping, NamedTuple, Optional, Sequence

import numpy as np

from jaxnas.errors import JaxnasError
from jaxnas.spaces import darts


class ChoiceError(JaxnasError):
    """A choice space, or a candidate vector or genotype it cannot encode."""


SPACES = ('darts', 'nb201')
DARTS_OPS = tuple(p for p in darts.PRIMITIVES if p != 'none')
# Unordered pairs of distinct earlier states per node, in lexicographic order.
DARTS_PAIRS = tuple(tuple(itertools.combinations(range(darts.NUM_INPUTS + i), 2))
                    for i in range(darts.NUM_NODES))


def _nb201():
    from jaxnas.spaces import nb201  # lands separately; imported only when used
    return nb201


class Candidate(NamedTuple):
    """A decoded candidate: the cell genotype and the hyperparameter values."""
    genotype: Any
    hparams: dict


class ChoiceSpace(NamedTuple):
    """``names[k]`` and ``sizes[k]`` of every choice; cell choices first, then hyperparameters."""
    space: str
    names: tuple
    sizes: tuple
    hparams: tuple  # ((name, (values...)), ...)
    cells: tuple = ()  # a fixed list of genotypes, when the cell is one choice among them

    @property
    def num_choices(self) -> int:
        return len(self.sizes)

    @property
    def num_cell_choices(self) -> int:
        return len(self.sizes) - len(self.hparams)

    @property
    def max_size(self) -> int:
        return max(self.sizes)

    def cardinality(self) -> int:
        return math.prod(self.sizes)

    def check(self, vector) -> np.ndarray:
        v = np.asarray(vector)
        if v.shape != (self.num_choices,) or not np.issubdtype(v.dtype, np.integer):
            raise ChoiceError(f'a candidate of the {self.space} choice space is {self.num_choices} integers, '
                              f'got shape {v.shape} dtype {v.dtype}')
        bad = np.nonzero((v < 0) | (v >= np.asarray(self.sizes)))[0]
        if len(bad):
            k = int(bad[0])
            raise ChoiceError(f'choice {self.names[k]} = {int(v[k])} is out of range 0..{self.sizes[k] - 1}')
        return v.astype(np.int64)

    def decode(self, vector) -> Candidate:
        v = self.check(vector)
        cell, rest = v[:self.num_cell_choices], v[self.num_cell_choices:]
        if self.cells:
            genotype = self.cells[int(cell[0])]
        else:
            genotype = _decode_darts(cell) if self.space == 'darts' else _decode_nb201(cell)
        hparams = {name: values[int(i)] for (name, values), i in zip(self.hparams, rest)}
        return Candidate(genotype, hparams)

    def encode(self, genotype, hparams: Optional[Mapping] = None) -> np.ndarray:
        if self.cells:
            if genotype not in self.cells:
                raise ChoiceError(f'genotype {genotype} is not one of the {len(self.cells)} cells of this space')
            cell = [self.cells.index(genotype)]
        else:
            cell = _encode_darts(genotype) if self.space == 'darts' else _encode_nb201(genotype)
        hparams = dict(hparams or {})
        extra = set(hparams) - {n for n, _ in self.hparams}
        if extra:
            raise ChoiceError(f"hyperparameter(s) {', '.join(sorted(extra))} are not choices of this space; "
                              f"choices: {', '.join(n for n, _ in self.hparams) or 'none'}")
        rest = []
        for name, values in self.hparams:
            if name not in hparams:
                raise ChoiceError(f'hyperparameter {name} missing; one of {list(values)}')
            if hparams[name] not in values:
                raise ChoiceError(f'hyperparameter {name}={hparams[name]!r} is not one of {list(values)}')
            rest.append(list(values).index(hparams[name]))
        return np.asarray(list(cell) + rest, np.int32)


def parse_genotype(space: str, g):
    """A genotype of ``space`` from a genotype value or its text form."""
    if space == 'darts':
        return darts.from_text(g) if isinstance(g, str) else (darts.validate(g) or g)
    return _nb201().as_genotype(g)


def make_space(space: str = 'darts', hparams: Optional[Mapping[str, Sequence]] = None,
               cells: Sequence = ()) -> ChoiceSpace:
    """The choice space of a cell space (``darts`` or ``nb201``) plus hyperparameter choices."""
    if space not in SPACES:
        raise ChoiceError(f"unknown search space {space!r}; choose one of {', '.join(SPACES)}")
    if cells:
        cells = tuple(parse_genotype(space, g) for g in cells)
        if len(set(cells)) != len(cells):
            raise ChoiceError('the candidate cell list names a genotype twice')
        names, sizes = ['cell'], [len(cells)]
    elif space == 'darts':
        names, sizes = [], []
        for cell in darts.CELL_TYPES:
            for i in range(darts.NUM_NODES):
                node = darts.NUM_INPUTS + i
                names += [f'{cell}.node{node}.inputs', f'{cell}.node{node}.op_a', f'{cell}.node{node}.op_b']
                sizes += [len(DARTS_PAIRS[i]), len(DARTS_OPS), len(DARTS_OPS)]
    elif space == 'nb201':
        nb201 = _nb201()
        names = [f'edge{t}~{s}' for t, s in nb201.EDGES]
        sizes = [len(nb201.PRIMITIVES)] * len(nb201.EDGES)
    hp = []
    for name, values in (hparams or {}).items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
            raise ChoiceError(f'hyperparameter {name} needs a non-empty tuple of values, got {values!r}')
        if len(set(values)) != len(values):
            raise ChoiceError(f'hyperparameter {name} lists a value twice: {list(values)}')
        hp.append((str(name), tuple(values)))
        names.append(f'hparam.{name}')
        sizes.append(len(values))
    return ChoiceSpace(space, tuple(names), tuple(sizes), tuple(hp), tuple(cells))


def _decode_darts(v) -> darts.Genotype:
    cells = []
    per_cell = 3 * darts.NUM_NODES
    for c in range(len(darts.CELL_TYPES)):
        gene = []
        for i in range(darts.NUM_NODES):
            pair, op_a, op_b = v[c * per_cell + 3 * i: c * per_cell + 3 * i + 3]
            a, b = DARTS_PAIRS[i][int(pair)]
            gene += [(DARTS_OPS[int(op_a)], a), (DARTS_OPS[int(op_b)], b)]
        cells.append(tuple(gene))
    concat = tuple(range(darts.NUM_INPUTS, darts.NUM_INPUTS + darts.NUM_NODES))
    return darts.Genotype(cells[0], concat, cells[1], concat)


def _encode_darts(g) -> list:
    darts.validate(g)
    out = []
    for cell in darts.CELL_TYPES:
        if tuple(getattr(g, f'{cell}_concat')) != tuple(range(darts.NUM_INPUTS, darts.NUM_INPUTS + darts.NUM_NODES)):
            raise ChoiceError(f'the darts choice space encodes cells whose output concatenates all nodes; '
                              f'{cell}_concat is {list(getattr(g, f"{cell}_concat"))}')
        gene = getattr(g, cell)
        for i in range(darts.NUM_NODES):
            (op1, j1), (op2, j2) = gene[2 * i], gene[2 * i + 1]
            if j1 == j2:
                raise ChoiceError(f'{cell} cell node {darts.NUM_INPUTS + i} takes input {j1} twice; the darts '
                                  'choice space needs two distinct inputs per node')
            (op_a, a), (op_b, b) = sorted([(op1, j1), (op2, j2)], key=lambda e: e[1])
            out += [DARTS_PAIRS[i].index((a, b)), DARTS_OPS.index(op_a), DARTS_OPS.index(op_b)]
    return out


def _decode_nb201(v):
    nb201 = _nb201()
    return nb201.make_genotype([nb201.PRIMITIVES[int(i)] for i in v])


def _encode_nb201(g) -> list:
    nb201 = _nb201()
    return [nb201.PRIMITIVES.index(op) for op in nb201.as_genotype(g)]
