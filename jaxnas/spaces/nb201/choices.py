"""The NAS-Bench-201 cell as categorical choices: one per edge (6 edges x 5 ops, 15,625
cells), in the order of its architecture string."""
from __future__ import annotations

from jaxnas.spaces.base import ChoiceCodec
from jaxnas.spaces.nb201 import genotype as G


def decode(v) -> G.Genotype:
    return G.make_genotype([G.PRIMITIVES[int(i)] for i in v])


def encode(g) -> list:
    return [G.PRIMITIVES.index(op) for op in G.as_genotype(g)]


def make_codec() -> ChoiceCodec:
    return ChoiceCodec(tuple(f'edge{t}~{s}' for t, s in G.EDGES), (len(G.PRIMITIVES),) * G.NUM_EDGES,
                       decode, encode)
