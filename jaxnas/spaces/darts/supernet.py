"""The DARTS search network; the mixing weights are a call argument, never module state.

``SearchNetwork(...).apply(variables, x, mix, train=...)`` with ``mix = {'normal': (14, P),
'reduce': (14, P)}``. Macro structure as in the reference code: stem conv 3x3 with
``stem_multiplier * C`` channels + BatchNorm, ``layers`` cells with reductions at
``layers // 3`` and ``2 * layers // 3`` (channels doubled), input 0 of the cell after a
reduction preprocessed by FactorizedReduce (otherwise ReLU-Conv1x1-BN), cell output the
concatenation of the 4 intermediate nodes, global average pool, linear classifier.

Compile time shapes the layout (see DESIGN.md §2). The 14 mixed edges of a cell run as
two batched programs: the 8 edges leaving the two cell inputs at once
(:class:`MixedEdges` with 4 targets x 2 sources), then the 6 edges between intermediate
nodes as a ``scan`` over 3 stages of 2 edges each (:data:`NODE_STAGES`), ordered so
that every stage only reads finished nodes. Inside a mixed op, all conv primitives and
all pool primitives run stacked (the ``convs`` and ``pools`` families). XLA thus
compiles 2 mixed-op bodies per cell instead of 14 x 7 op instances.

The mixed edges and their execution modes are :class:`jaxnas.ops.modes.MixedEdges`
(shared by every space), over the op registry's families (:mod:`jaxnas.ops.families`).
In ``single_path`` mode (GDAS) an edge's output is its selected op's times that op's
weight only, as GDAS's paper and AutoDL's DARTS-space cell (``MixedOp.forward_gdas``); the
non-selected weights are not added as scalars (``straight_through_rest`` stays off; the
NAS-Bench-201 network turns it on, as AutoDL's NB201 GDAS cell does).
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxnas import ops
from jaxnas.nn import BatchNorm, torch_uniform
from jaxnas.ops.modes import MixedEdges
from jaxnas.spaces import darts


# Rows of the (14, P) mix for the input edges, as (target node, source input).
INPUT_ROWS = np.array([[darts.edge_index(t, j) for j in range(darts.NUM_INPUTS)]
                       for t in range(darts.NUM_NODES)])
# Edges between intermediate nodes, as (source node, target node) pairs, in stages of two:
# stage t only reads nodes that all their incoming edges have reached by then.
NODE_STAGES = (((0, 1), (0, 2)), ((1, 2), (1, 3)), ((0, 3), (2, 3)))
NODE_STAGE_ROWS = np.array([[darts.edge_index(t, darts.NUM_INPUTS + s) for s, t in stage]
                            for stage in NODE_STAGES])
assert sorted(NODE_STAGE_ROWS.ravel().tolist() + INPUT_ROWS.ravel().tolist()) == list(range(darts.NUM_EDGES))


class _NodeStage(nn.Module):
    """One stage of :data:`NODE_STAGES`: two mixed edges read from and added to ``nodes``."""
    C: int
    train: bool
    primitives: Sequence[str] = darts.PRIMITIVES
    mode: str = 'dense'
    partial_channels: int = 1

    @nn.compact
    def __call__(self, nodes, stage):
        src, tgt, mix = stage
        x = jnp.take(nodes, src, axis=0)[:, None]
        out = MixedEdges(self.C, len(NODE_STAGES[0]), 1, 1, self.primitives, mode=self.mode,
                         partial_channels=self.partial_channels)(x, mix[:, None], self.train)
        return nodes.at[tgt].add(out), None


_NodeStages = nn.scan(_NodeStage, variable_axes={'params': 0, 'batch_stats': 0},
                      split_rngs={'params': True}, length=len(NODE_STAGES))


class SearchCell(nn.Module):
    C: int
    C_pp: int
    C_p: int
    reduction: bool
    reduction_prev: bool
    primitives: Sequence[str] = darts.PRIMITIVES
    mode: str = 'dense'
    partial_channels: int = 1

    @nn.compact
    def __call__(self, s0, s1, mix, train: bool):
        pre0 = ops.FactorizedReduce if self.reduction_prev else ops.ReLUConvBN
        s0 = pre0(self.C_pp, self.C)(s0[None, None], train)[0, 0]
        s1 = ops.ReLUConvBN(self.C_p, self.C)(s1[None, None], train)[0, 0]
        stride = 2 if self.reduction else 1
        nodes = MixedEdges(self.C, darts.NUM_NODES, darts.NUM_INPUTS, stride, self.primitives, mode=self.mode,
                           partial_channels=self.partial_channels, name='input_edges')(jnp.stack([s0, s1])[None], mix[INPUT_ROWS], train)
        src = jnp.asarray([[s for s, _ in stage] for stage in NODE_STAGES], jnp.int32)
        tgt = jnp.asarray([[t for _, t in stage] for stage in NODE_STAGES], jnp.int32)
        nodes, _ = _NodeStages(self.C, train, self.primitives, self.mode, self.partial_channels,
                               name='node_edges')(
            nodes, (src, tgt, mix[NODE_STAGE_ROWS]))
        return jnp.concatenate(list(nodes), axis=-1)


def reduction_layers(layers: int) -> tuple:
    return (layers // 3, 2 * layers // 3)


class SearchNetwork(nn.Module):
    C: int
    num_classes: int
    layers: int
    stem_multiplier: int = 3
    primitives: Sequence[str] = darts.PRIMITIVES
    mode: str = 'dense'
    partial_channels: int = 1

    @nn.compact
    def __call__(self, x, mix, train: bool = True):
        C_curr = self.stem_multiplier * self.C
        stem_w = self.param('stem_conv', torch_uniform(9 * x.shape[-1]), (3, 3, x.shape[-1], C_curr))
        if self.is_initializing():
            s = jnp.zeros(x.shape[:-1] + (C_curr,), x.dtype)
        else:
            s = lax_conv(x, stem_w)
        s = BatchNorm((1, C_curr), affine=True)(s[None], train)[0]
        s0 = s1 = s
        C_pp, C_p, C_curr = C_curr, C_curr, self.C
        reduction_prev = False
        for i in range(self.layers):
            reduction = i in reduction_layers(self.layers)
            if reduction:
                C_curr *= 2
            cell = SearchCell(C_curr, C_pp, C_p, reduction, reduction_prev, self.primitives, self.mode,
                              self.partial_channels)
            s0, s1 = s1, cell(s0, s1, mix['reduce' if reduction else 'normal'], train)
            reduction_prev = reduction
            C_pp, C_p = C_p, darts.NUM_NODES * C_curr
        pooled = jnp.mean(s1, axis=(1, 2))
        return nn.Dense(self.num_classes, kernel_init=torch_uniform(C_p),
                        bias_init=torch_uniform(C_p))(pooled)


def lax_conv(x, w, stride: int = 1):
    return lax.conv_general_dilated(x, w, (stride, stride), 'SAME',
                                    dimension_numbers=('NHWC', 'HWIO', 'NHWC'))

