"""The MBConv search network (supernet) on the shared execution modes.

``MBConvSearchNetwork(...).apply(variables, x, mix, train=...)`` with ``mix = {'layers':
(L, 7)}``, one row per searchable layer. Macro (:mod:`jaxnas.spaces.mbconv.macro`): stem
3x3 conv + affine BN + ReLU6, the searchable layers stage by stage, head 1x1 conv +
affine BN + ReLU6, global average pool, linear classifier.

Every searchable layer is one mixed edge (``N = S = 1``) of
:class:`jaxnas.ops.modes.MixedEdges` over the space's registered ops
(:mod:`jaxnas.spaces.mbconv.ops`), so the three execution modes are the shared ones:

- ``dense``: the weighted sum of all candidate outputs (FBNet's and ProxylessNAS's
  relaxed layer), the 6 MBConv ops batched in one family;
- ``single_path``: only the argmax op of each layer runs (ProxylessNAS's / GDAS's sampled
  path), scaled by its weight;
- ``partial_channel`` (PC-DARTS): on the layers whose input and output shapes match
  (every layer but the first of a stage) ``C / K`` channels go through the mixed op and the
  rest bypass it scaled by the layer's total weight; the first layer of a stage changes the
  width, where a bypass has no meaning, and runs dense.

On the first layer of a stage the identity is not allowed (even where a config makes
its shapes match): the network multiplies that ``skip_connect`` weight by zero before
the mixed op, so it contributes nothing and gets no gradient in every mode, and
derivation never picks it. The space also declares it in ``SPACE.op_mask``, so every
relaxation gives it zero weight and never samples it; the multiplication here keeps a
hand-made mix (tests, fitness one-hots) from reaching it.

Compile time (DESIGN.md section 2): the layers of a stage after the first share one shape,
so they run as one ``nn.scan`` with their logits rows as the scanned input: XLA compiles
two mixed-layer bodies per stage whatever its depth. Candidate ops inside a layer are
batched (:class:`jaxnas.spaces.mbconv.ops.MBConvFamily`).
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnas.nn import BatchNorm, conv, pointwise, torch_uniform
from jaxnas.ops.modes import MixedEdges
from jaxnas.spaces.mbconv import genotype as G
from jaxnas.spaces.mbconv import macro as M
from jaxnas.spaces.mbconv import ops as mb_ops


def layer_mode(mode: str, partial_channels: int, c_in: int, c_out: int, stride: int) -> tuple:
    """``(mode, K)`` a layer runs in: partial-channel only where the shapes match."""
    if mode == 'partial_channel' and not (stride == 1 and c_in == c_out):
        return 'dense', 1
    return mode, partial_channels if mode == 'partial_channel' else 1


class SearchLayer(nn.Module):
    """One mixed layer: ``(x (B, H, W, C_in), row (7,), train) -> (B, H', W', C_out)``."""
    c_in: int
    c_out: int
    stride: int
    mode: str = 'dense'
    partial_channels: int = 1

    @nn.compact
    def __call__(self, x, row, train: bool):
        mode, K = layer_mode(self.mode, self.partial_channels, self.c_in, self.c_out, self.stride)
        edge = MixedEdges(self.c_in, 1, 1, self.stride, G.PRIMITIVES, space=mb_ops.SPACE_NAME, mode=mode,
                          partial_channels=K, C_out=self.c_out, name='mixed')
        return edge(x[None, None], row[None, None], train)[0]


class _ScannedLayer(nn.Module):
    c: int
    train: bool
    mode: str = 'dense'
    partial_channels: int = 1

    @nn.compact
    def __call__(self, x, row):
        return SearchLayer(self.c, self.c, 1, self.mode, self.partial_channels, name='layer')(x, row, self.train), None


class MBConvSearchNetwork(nn.Module):
    macro: M.Macro
    layers: Sequence[int]
    num_classes: int
    mode: str = 'dense'
    partial_channels: int = 1

    @nn.compact
    def __call__(self, x, mix, train: bool = True):
        m = self.macro
        # the first layer of a stage has no identity: its skip weight is masked to zero
        rows = mix[G.CELL_TYPE] * jnp.asarray(G.allowed(self.layers), mix[G.CELL_TYPE].dtype)
        w = self.param('stem_conv', torch_uniform(9 * x.shape[-1]), (3, 3, x.shape[-1], m.stem_channels))
        if self.is_initializing():
            Hs = M.out_size(x.shape[1], m.stem_stride), M.out_size(x.shape[2], m.stem_stride)
            h = jnp.zeros((x.shape[0],) + Hs + (m.stem_channels,), x.dtype)
        else:
            h = conv(x, w, m.stem_stride)
        h = jax.nn.relu6(BatchNorm((m.stem_channels,), affine=True, name='stem_bn')(h, train))
        r = 0
        for s, (first, rest, count) in enumerate(M.stage_plan(m, self.layers, x.shape[1:3])):
            h = SearchLayer(first.c_in, first.c_out, first.stride, self.mode, self.partial_channels,
                            name=f'stage{s}_first')(h, rows[r], train)
            r += 1
            if count:
                scan = nn.scan(_ScannedLayer, variable_axes={'params': 0, 'batch_stats': 0},
                               split_rngs={'params': True}, length=count)
                h, _ = scan(rest.c_in, train, self.mode, self.partial_channels, name=f'stage{s}_rest')(
                    h, rows[r:r + count])
                r += count
        w_head = self.param('head_conv', torch_uniform(h.shape[-1]), (h.shape[-1], m.head_channels))
        h = pointwise(h, w_head)
        h = jax.nn.relu6(BatchNorm((m.head_channels,), affine=True, name='head_bn')(h, train))
        pooled = jnp.mean(h, axis=(1, 2))
        return nn.Dense(self.num_classes, kernel_init=torch_uniform(m.head_channels),
                        bias_init=torch_uniform(m.head_channels), name='classifier')(pooled)
