"""Ops: the registry (:mod:`jaxnas.ops.registry`), the built-in families
(:mod:`jaxnas.ops.families`), the execution modes written once (:mod:`jaxnas.ops.modes`)
and the built-in vocabulary, registered below -- one :func:`register` line per op.

The shared vocabulary is the DARTS reference code's ``OPS`` (quark0/darts
``operations.py``): pools, ``skip_connect``, ``sep_conv_3x3/5x5/7x7``,
``dil_conv_3x3/5x5``, ``none``, and ``conv_7x1_1x7`` (evaluation form only).
NAS-Bench-201 registers its own ``avg_pool_3x3`` (no BatchNorm) and ``nor_conv_1x1/3x3``
under ``space='nb201'``.

The op modules below (``OPS``, :func:`make_op`: one op batched over an ``(N, S)`` edge
group, and the cells' ``ReLUConvBN`` / ``FactorizedReduce`` preprocessing) predate the
registry; the search networks build their mixed edges from the registry's families.
BatchNorm follows PyTorch (:mod:`jaxnas.nn`); in search, cells use BatchNorm without
affine parameters, as the reference code.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnas.nn import (BatchNorm, channel_shuffle, depthwise, init_variables, out_size, pointwise, pool,  # noqa: F401
                       torch_uniform)
from jaxnas.ops import families  # noqa: F401
from jaxnas.ops.families import (BARE_POOLS, NOR_CONVS, POOLS, SEP_DIL_CONVS, SKIP, ZERO, ConvSpec,  # noqa: F401
                                 Zero, factorized_reduce)
from jaxnas.ops.registry import (BranchContext, EdgeGroup, Family, OpDef, batch_norm_slot, get,  # noqa: F401
                                 lookup, names, register)


def _zeros_out(x, lead, C, Ho, Wo):
    return jnp.zeros(tuple(lead) + (x.shape[-4], Ho, Wo, C), x.dtype)


class Pool(nn.Module):
    """3x3 max or average pool (average excludes padding) then BatchNorm without affine."""
    kind: str
    C: int
    stride: int

    @nn.compact
    def __call__(self, x, train: bool):
        bn = BatchNorm(x.shape[:-4] + (self.C,))
        H, W = x.shape[-3], x.shape[-2]
        Ho, Wo = out_size(H, 3, self.stride, 1), out_size(W, 3, self.stride, 1)
        if self.is_initializing():
            bn(x, train)
            return _zeros_out(x, x.shape[:-4], self.C, Ho, Wo)
        return bn(pool(x, self.kind, self.stride), train)


class Identity(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        return x


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
            return _zeros_out(x, (self.N, self.S), self.C_out, x.shape[-3], x.shape[-2])
        return bn(pointwise(jax.nn.relu(x), w), train)


class DilConv(nn.Module):
    """ReLU, depthwise k x k (dilation d), pointwise 1x1, BatchNorm."""
    C: int
    k: int
    stride: int
    dilation: int
    N: int = 1
    S: int = 1
    affine: bool = False

    @nn.compact
    def __call__(self, x, train: bool):
        N, S, C, k = self.N, self.S, self.C, self.k
        dw = self.param('depthwise', torch_uniform(k * k), (N, S, k, k, C))
        pw = self.param('pointwise', torch_uniform(C), (N, S, C, C))
        bn = BatchNorm((N, S, C), affine=self.affine)
        pad = self.dilation * (k - 1) // 2
        Ho = out_size(x.shape[-3], k, self.stride, pad, self.dilation)
        Wo = out_size(x.shape[-2], k, self.stride, pad, self.dilation)
        if self.is_initializing():
            bn(x, train)
            return _zeros_out(x, (N, S), C, Ho, Wo)
        y = depthwise(jax.nn.relu(x), dw[None], k=k, stride=self.stride, dilations=(self.dilation,))[0]
        return bn(pointwise(y, pw), train)


class SepConv(nn.Module):
    """Two DilConv blocks with dilation 1, the first one strided (the reference SepConv)."""
    C: int
    k: int
    stride: int
    N: int = 1
    S: int = 1
    affine: bool = False

    @nn.compact
    def __call__(self, x, train: bool):
        x = DilConv(self.C, self.k, self.stride, 1, self.N, self.S, self.affine)(x, train)
        return DilConv(self.C, self.k, 1, 1, self.N, self.S, self.affine)(x, train)


def _skip(C, stride, N, S, affine=False):
    return Identity() if stride == 1 else FactorizedReduce(C, C, N, S, affine)


OPS = {
    'none': lambda C, stride, N, S, affine=False: Zero(),
    'max_pool_3x3': lambda C, stride, N, S, affine=False: Pool('max', C, stride),
    'avg_pool_3x3': lambda C, stride, N, S, affine=False: Pool('avg', C, stride),
    'skip_connect': _skip,
    'sep_conv_3x3': lambda C, stride, N, S, affine=False: SepConv(C, 3, stride, N, S, affine),
    'sep_conv_5x5': lambda C, stride, N, S, affine=False: SepConv(C, 5, stride, N, S, affine),
    'dil_conv_3x3': lambda C, stride, N, S, affine=False: DilConv(C, 3, stride, 2, N, S, affine),
    'dil_conv_5x5': lambda C, stride, N, S, affine=False: DilConv(C, 5, stride, 2, N, S, affine),
}


def make_op(name: str, C: int, stride: int, N: int = 1, S: int = 1, affine: bool = False) -> nn.Module:
    """Look up ``name`` in :data:`OPS` with a clear error for unknown names."""
    from jaxnas.errors import JaxnasError
    if name not in OPS:
        raise JaxnasError(f"unknown op {name!r}; known ops: {', '.join(OPS)}")
    return OPS[name](C, stride, N, S, affine)


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

# Views for older callers.
CONV_SPECS = {n: get(n).spec for n in names() if get(n).family is SEP_DIL_CONVS}
POOL_KINDS = {n: get(n).spec for n in names() if get(n).family is POOLS}
