"""Candidate operations of the DARTS space, batched over edge groups.

``OPS[name](C, stride, N, S)`` returns a Flax module, as the reference code's ``OPS``
dict. To keep the XLA program small, the edges of a cell are not built one by one: an
*edge group* applies one op to ``S`` source states for ``N`` target nodes at once, with
weights of leading shape ``(N, S)``. Inputs are ``(S, B, H, W, C)`` (NHWC with the
source axis in front); outputs broadcast to ``(N, S, B, H', W', C)``. Parameter-free
ops (pools followed by an affine-free BatchNorm, identity) give the same result for every
target, so they are computed once per source and returned with a leading axis of 1.

Depthwise convolutions are written as sums of shifted multiply-adds (``lax.slice`` +
broadcasting) and pointwise convolutions as batched matmuls (``einsum``). On XLA:CPU a
grouped ``conv_general_dilated`` (``feature_group_count``) is many times slower, and a
``vmap`` over per-edge kernels would turn every conv into a grouped conv.

BatchNorm follows PyTorch: ``momentum`` 0.1, ``eps`` 1e-5, biased batch variance for
normalisation and unbiased variance for the running estimate. In search, cells use
BatchNorm without affine parameters, as the reference code.
"""
from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnas.nn import (BatchNorm, channel_shuffle, depthwise, init_variables, out_size, pointwise, pool,  # noqa: F401
                       torch_uniform)


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


class Zero(nn.Module):
    """The `none` op: contributes nothing, so it is not computed at all."""
    @nn.compact
    def __call__(self, x, train: bool):
        return None


class FactorizedReduce(nn.Module):
    """ReLU, two stride-2 1x1 convs on offset grids, concat, BatchNorm (halves H and W)."""
    C_in: int
    C_out: int
    N: int = 1
    S: int = 1
    affine: bool = False

    @nn.compact
    def __call__(self, x, train: bool):
        half = self.C_out // 2
        init = torch_uniform(self.C_in)
        w1 = self.param('conv_1', init, (self.N, self.S, self.C_in, half))
        w2 = self.param('conv_2', init, (self.N, self.S, self.C_in, self.C_out - half))
        bn = BatchNorm((self.N, self.S, self.C_out), affine=self.affine)
        H, W = x.shape[-3], x.shape[-2]
        if H % 2 or W % 2:
            raise ValueError(f'FactorizedReduce needs even spatial sizes, got {H}x{W}')
        if self.is_initializing():
            bn(x, train)
            return _zeros_out(x, (self.N, self.S), self.C_out, H // 2, W // 2)
        x = jax.nn.relu(x)
        y = jnp.concatenate([pointwise(x[..., ::2, ::2, :], w1),
                             pointwise(x[..., 1::2, 1::2, :], w2)], axis=-1)
        return bn(y, train)


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


class ConvSpec(NamedTuple):
    """A conv primitive as ``blocks`` x (ReLU, depthwise k x k, pointwise, BN)."""
    k: int
    dilation: int
    blocks: int


# Batched forms used by the supernet's mixed op (jaxnas.supernet.MixedEdges).
CONV_SPECS = {
    'sep_conv_3x3': ConvSpec(3, 1, 2),
    'sep_conv_5x5': ConvSpec(5, 1, 2),
    'dil_conv_3x3': ConvSpec(3, 2, 1),
    'dil_conv_5x5': ConvSpec(5, 2, 1),
}
POOL_KINDS = {'max_pool_3x3': 'max', 'avg_pool_3x3': 'avg'}




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
