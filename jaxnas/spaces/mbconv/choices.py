"""The MBConv chain as categorical choices (the discrete searchers' view): one choice per
layer, in network order, over the ops that layer allows -- the 6 MBConv ops on the first
layer of a stage, those and ``skip_connect`` elsewhere (columns in :data:`PRIMITIVES`
order). Every vector decodes to a valid genotype, so every mutation of one choice does
too; ``decode(encode(g)) == g`` for every genotype of the layout."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from jaxnas.spaces.base import ChoiceCodec, ChoiceError
from jaxnas.spaces.mbconv import genotype as G


def make_codec(layers: Sequence[int] = G.DEFAULT_LAYERS) -> ChoiceCodec:
    layers = G.check_layers(layers)
    mask = G.allowed(layers)
    options = [tuple(p for p, ok in zip(G.PRIMITIVES, row) if ok) for row in mask]
    names = tuple(f'stage{s}.layer{i}' for s, n in enumerate(layers) for i in range(n))

    def decode(v) -> G.Genotype:
        v = np.asarray(v)
        if v.shape != (len(options),):
            raise ChoiceError(f'an MBConv candidate is {len(options)} integers (one per layer), got shape {v.shape}')
        return G.from_ops([opts[int(i)] for opts, i in zip(options, v)], layers)

    def encode(g) -> list:
        g = G.validate(g)
        if g.layers != layers:
            raise ChoiceError(f'genotype {g} has layers per stage {list(g.layers)}; the MBConv choice space has '
                              f'{list(layers)}')
        return [opts.index(op) for opts, op in zip(options, g.ops)]

    return ChoiceCodec(names, tuple(len(o) for o in options), decode, encode)
