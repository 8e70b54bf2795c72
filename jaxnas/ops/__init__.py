"""Ops: the registry (:mod:`jaxnas.ops.registry`), the built-in families
(:mod:`jaxnas.ops.families`), the execution modes written once (:mod:`jaxnas.ops.modes`)
and the built-in vocabulary, registered below -- one :func:`register` line per op.

The shared vocabulary is the DARTS reference code's ``OPS`` (quark0/darts
``operations.py``): pools, ``skip_connect``, ``sep_conv_3x3/5x5/7x7``,
``dil_conv_3x3/5x5``, ``none``, and ``conv_7x1_1x7`` (evaluation form only).
NAS-Bench-201 registers its own ``avg_pool_3x3`` (no BatchNorm) and ``nor_conv_1x1/3x3``
under ``space='nb201'``.

Besides the registry: the DARTS search cells' input preprocessing (``ReLUConvBN``,
``FactorizedReduce``), batched over an ``(N, S)`` edge group. BatchNorm follows PyTorch
(:mod:`jaxnas.nn`); in search, cells use BatchNorm without affine parameters, as the
reference code.
"""
from __future__ import annotations

import flax.linen as nn
import jax

from jaxnas.nn import BatchNorm, pointwise, torch_uniform
from jaxnas.ops import families  # noqa: F401
from jaxnas.ops.families import (BARE_POOLS, NOR_CONVS, POOLS, SEP_DIL_CONVS, SKIP, ZERO, ConvSpec,  # noqa: F401
                                 Zero, factorized_reduce)
from jaxnas.ops.registry import (BranchContext, EdgeGroup, Family, OpDef, batch_norm_slot, get,  # noqa: F401
                                 lookup, names, register, zeros_output)


class FactorizedReduce(nn.Module):
    """ReLU, two stride-2 1x1 convs on offset grids, concat, BatchNorm (halves H and W)."""
    C_in: int
    C_out: int
    N: int = 1
    S: int = 1
    affine: bool = False

    @nn.compact
    def __call__(self, x, train: bool):
        return factorized_reduce(self, x, train, self.C_in, self.C_out, self.N, self.S, self.affine)


class ReLUConvBN(nn.Module):
    """ReLU, 1x1 conv, BatchNorm (the cells' input preprocessing)."""
    C_in: int
    C_out: int
    N: int = 1
    S: int = 1
    affine: bool = False

    @nn.compact
    def __call__(self, x, train: bool):
        w = self.param('conv', torch_uniform(self.C_in), (self.N, self.S, self.C_in, self.C_out))
        bn = BatchNorm((self.N, self.S, self.C_out), affine=self.affine)
        if self.is_initializing():
            bn(x, train)
            return zeros_output(x, (self.N, self.S), self.C_out, 1)
        return bn(pointwise(jax.nn.relu(x), w), train)


# --- the built-in vocabulary ---------------------------------------------------------------
# Family order (the order their weighted outputs are summed in) follows the first entry of
# each family: convs, pools, skip, none (the DARTS supernet's order).

for _name, _spec in (('sep_conv_3x3', ConvSpec(3, 1, 2)), ('sep_conv_5x5', ConvSpec(5, 1, 2)),
                     ('sep_conv_7x7', ConvSpec(7, 1, 2)), ('dil_conv_3x3', ConvSpec(3, 2, 1)),
                     ('dil_conv_5x5', ConvSpec(5, 2, 1))):
    register(OpDef(_name, SEP_DIL_CONVS, _spec))
register(OpDef('max_pool_3x3', POOLS, 'max', parameter_free=True))
register(OpDef('avg_pool_3x3', POOLS, 'avg', parameter_free=True))
register(OpDef('skip_connect', SKIP, parameter_free=True, identity=True))
register(OpDef('none', ZERO, parameter_free=True))
register(OpDef('conv_7x1_1x7', None))
register(OpDef('avg_pool_3x3', BARE_POOLS, 'avg', parameter_free=True), space='nb201')
register(OpDef('nor_conv_1x1', NOR_CONVS, 1), space='nb201')
register(OpDef('nor_conv_3x3', NOR_CONVS, 3), space='nb201')

