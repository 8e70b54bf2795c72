"""The DARTS cell as categorical choices (the discrete searchers' encoding).

For each cell type and each intermediate node ``i`` (``2 + i`` earlier states) three
choices: ``inputs``, an index into the ``C(2 + i, 2)`` unordered pairs of distinct earlier
states (as the DARTS derivation, two distinct inputs per node), then ``op_a`` and
``op_b``, the ops (non-``none`` primitives) on the smaller and the larger input. Node 0
has a single pair {0, 1}: that choice has size 1 and is never mutated. Every vector
decodes to a valid genotype, so every mutation of one choice is a valid genotype too. The
canonical genotype lists each node's two edges by increasing input, so
``decode(encode(g)) == g`` for genotypes in that order.
"""
from __future__ import annotations

import itertools

from jaxnas.spaces.base import ChoiceCodec, ChoiceError
from jaxnas.spaces.darts import genotype as G

OPS = tuple(p for p in G.PRIMITIVES if p != 'none')
# Unordered pairs of distinct earlier states per node, in lexicographic order.
PAIRS = tuple(tuple(itertools.combinations(range(G.NUM_INPUTS + i), 2)) for i in range(G.NUM_NODES))
CONCAT = tuple(range(G.NUM_INPUTS, G.NUM_INPUTS + G.NUM_NODES))


def decode(v) -> G.Genotype:
    cells = []
    per_cell = 3 * G.NUM_NODES
    for c in range(len(G.CELL_TYPES)):
        gene = []
        for i in range(G.NUM_NODES):
            pair, op_a, op_b = v[c * per_cell + 3 * i: c * per_cell + 3 * i + 3]
            a, b = PAIRS[i][int(pair)]
            gene += [(OPS[int(op_a)], a), (OPS[int(op_b)], b)]
        cells.append(tuple(gene))
    return G.Genotype(cells[0], CONCAT, cells[1], CONCAT)


def encode(g) -> list:
    G.validate(g)
    out = []
    for cell in G.CELL_TYPES:
        concat = tuple(getattr(g, f'{cell}_concat'))
        if concat != CONCAT:
            raise ChoiceError(f'the darts choice space encodes cells whose output concatenates all nodes; '
                              f'{cell}_concat is {list(concat)}')
        gene = getattr(g, cell)
        if len(gene) != 2 * G.NUM_NODES:
            raise ChoiceError(f'the darts choice space encodes cells of {G.NUM_NODES} nodes; '
                              f'the {cell} cell has {len(gene) // 2}')
        for i in range(G.NUM_NODES):
            (op1, j1), (op2, j2) = gene[2 * i], gene[2 * i + 1]
            if j1 == j2:
                raise ChoiceError(f'{cell} cell node {G.NUM_INPUTS + i} takes input {j1} twice; the darts '
                                  'choice space needs two distinct inputs per node')
            (op_a, a), (op_b, b) = sorted([(op1, j1), (op2, j2)], key=lambda e: e[1])
            for op in (op_a, op_b):
                if op not in OPS:
                    raise ChoiceError(f'op {op!r} is not a search primitive of the darts choice space')
            out += [PAIRS[i].index((a, b)), OPS.index(op_a), OPS.index(op_b)]
    return out


def make_codec() -> ChoiceCodec:
    names, sizes = [], []
    for cell in G.CELL_TYPES:
        for i in range(G.NUM_NODES):
            node = G.NUM_INPUTS + i
            names += [f'{cell}.node{node}.inputs', f'{cell}.node{node}.op_a', f'{cell}.node{node}.op_b']
            sizes += [len(PAIRS[i]), len(OPS), len(OPS)]
    return ChoiceCodec(tuple(names), tuple(sizes), decode, encode)
