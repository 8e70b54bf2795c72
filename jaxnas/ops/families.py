"""The built-in op families: batched dense forms over edge groups and their single-path
branches (the interface is in :mod:`jaxnas.ops.registry`).

- :data:`SEP_DIL_CONVS` (``convs``): ``blocks`` x (ReLU, depthwise k x k with dilation,
  pointwise 1x1, affine-free BN) -- DARTS's ``sep_conv_kxk`` (2 blocks, only the first
  strided) and ``dil_conv_kxk`` (1 block, dilation 2).
- :data:`POOLS` (``pools``): 3x3 max / average pools then an affine-free BN (the DARTS
  search network); :data:`BARE_POOLS` (``bare_pools``): the pools alone (NAS-Bench-201).
- :data:`SKIP`: the identity at stride 1, FactorizedReduce at stride 2.
- :data:`ZERO`: ``none``, which contributes nothing and is not computed.
- :data:`NOR_CONVS` (``nor_convs``): ReLU, dense k x k conv (stride 1, padding k // 2),
  affine-free BN -- NAS-Bench-201's ``nor_conv_kxk``; im2col on XLA:CPU
  (:func:`jaxnas.nn.cell_conv`).

Variables are laid out per edge, with leading ``(N, S)`` axes (convs stack their ops in
front: ``(O, N, S, ...)``); a parameter-free op on sources shared by all targets is
computed once and its BatchNorm has a target axis of 1.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.nn import BatchNorm, cell_conv, depthwise, edge_conv, out_size, pointwise, pool, torch_uniform
from jaxnas.ops.registry import BranchContext, EdgeGroup, Family, batch_norm_slot, zeros_output


# --- depthwise-separable and dilated convs ------------------------------------------------

class ConvSpec(NamedTuple):
    """A conv primitive as ``blocks`` x (ReLU, depthwise k x k, pointwise, BN)."""
    k: int
    dilation: int
    blocks: int


class ConvFamily(nn.Module):
    """All depthwise-separable / dilated conv primitives of a mixed op, stacked on a
    leading op axis.

    Depthwise kernels of one size share one tap loop, pointwise convs and BatchNorms of
    all ops run as one batched computation, so the mixed op costs XLA a handful of
    kernels instead of one set per primitive. Input ``(Nx, S, B, H, W, C)``; output
    ``(O, N, S, B, H', W', C)`` in ``specs`` order.
    """
    group: EdgeGroup
    specs: Sequence[ConvSpec]

    def _block(self, h, specs, stride, tag, per_op_input, train):
        N, S, C, O = self.group.N, self.group.S, self.group.C_out, len(specs)
        ks = sorted({sp.k for sp in specs})
        groups = [[i for i, sp in enumerate(specs) if sp.k == k] for k in ks]
        weights = [self.param(f'{tag}_depthwise_{k}x{k}', torch_uniform(k * k), (len(g), N, S, k, k, C))
                   for k, g in zip(ks, groups)]
        pw = self.param(f'{tag}_pointwise', torch_uniform(C), (O, N, S, C, C))
        bn = BatchNorm((O, N, S, C), name=f'{tag}_bn')
        Ho = out_size(h.shape[-3], 3, stride, 1)
        Wo = out_size(h.shape[-2], 3, stride, 1)
        if self.is_initializing():
            bn(h, train)
            return jnp.zeros((O, N, S, h.shape[-4], Ho, Wo, C), h.dtype)
        parts = []
        for k, g, w in zip(ks, groups, weights):
            x = h[np.array(g)] if per_op_input else h
            parts.append(depthwise(x, w, k=k, stride=stride, dilations=[specs[i].dilation for i in g],
                                   per_op_input=per_op_input))
        y = parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=0)
        order = [i for g in groups for i in g]
        if order != list(range(O)):
            y = y[np.argsort(order)]
        y = jnp.einsum('onsbhwc,onscd->onsbhwd', y, pw)
        return bn(y, train)

    @nn.compact
    def __call__(self, x, train: bool):
        specs = list(self.specs)
        y = self._block(jax.nn.relu(x), specs, self.group.stride, 'block1', False, train)
        second = [i for i, sp in enumerate(specs) if sp.blocks == 2]
        if not second:
            return y
        specs2 = [ConvSpec(specs[i].k, 1, 1) for i in second]
        y2 = self._block(jax.nn.relu(y[np.array(second)]), specs2, 1, 'block2', True, train)
        if len(second) == len(specs):
            return y2
        first = [i for i in range(len(specs)) if i not in second]
        y = jnp.concatenate([y[np.array(first)], y2], axis=0)
        return y[np.argsort(first + second)]


def _conv_branch(ops, o: int, ctx: BranchContext):
    """Op ``o`` of :class:`ConvFamily` on one edge, with that edge's slice of its kernels."""
    specs = [op.spec for op in ops]
    spec = specs[o]
    second = [i for i, sp in enumerate(specs) if sp.blocks == 2]
    P = ctx.params

    def block(h, block_specs, pos, tag, n, s, stats, stride, dilation):
        k = block_specs[pos].k
        same_k = [i for i, sp in enumerate(block_specs) if sp.k == k]
        dw = P[f'{tag}_depthwise_{k}x{k}'][same_k.index(pos), n, s]
        y = depthwise(jax.nn.relu(h), dw[None], k=k, stride=stride, dilations=(dilation,))[0]
        y = jnp.einsum('bhwc,cd->bhwd', y, P[f'{tag}_pointwise'][pos, n, s])
        return batch_norm_slot(y, stats, f'{tag}_bn', (pos, n, s), ctx.train)

    def branch(xe, n, s, stats):
        y, stats = block(xe, specs, o, 'block1', n, s, stats, ctx.group.stride, spec.dilation)
        if spec.blocks == 2:
            specs2 = [ConvSpec(specs[i].k, 1, 1) for i in second]
            y, stats = block(y, specs2, second.index(o), 'block2', n, s, stats, 1, 1)
        return y, stats
    return branch


SEP_DIL_CONVS = Family(
    'convs', lambda ops, group, name: ConvFamily(group, tuple(op.spec for op in ops), name=name), _conv_branch,
    doc='depthwise-separable and dilated convs (spec: ConvSpec)')


# --- pools ----------------------------------------------------------------------------------

class PoolFamily(nn.Module):
    """3x3 max and average pools (stride ``group.stride``, padding 1, the average without
    the padding), stacked, then with ``batch_norm`` an affine-free BN:
    ``(O, Nx, S, B, H', W', C)``.

    Parameter-free, so an input shared by several targets (lead axis of size 1) is
    pooled once and broadcast over the targets.
    """
    group: EdgeGroup
    kinds: Sequence[str]
    batch_norm: bool = True

    @nn.compact
    def __call__(self, x, train: bool):
        O, stride = len(self.kinds), self.group.stride
        bn = BatchNorm((O,) + x.shape[:-4] + (self.group.C_out,)) if self.batch_norm else None
        if self.is_initializing():
            if bn is not None:
                bn(x, train)
            return zeros_output(x, (O,) + x.shape[:-4], self.group.C_out, stride)
        y = jnp.stack([pool(x, kind, stride) for kind in self.kinds])
        return bn(y, train) if bn is not None else y


def _pool_branch(ops, o: int, ctx: BranchContext):
    kind, stride = ops[o].spec, ctx.group.stride

    def branch(xe, n, s, stats):
        y = pool(xe, kind, stride)
        if ctx.shared_input:   # one slot for all targets: it moves once per step
            return batch_norm_slot(y, stats, 'BatchNorm_0', (o, 0, s), ctx.train, base=ctx.stats)
        return batch_norm_slot(y, stats, 'BatchNorm_0', (o, n, s), ctx.train)
    return branch


def _bare_pool_branch(ops, o: int, ctx: BranchContext):
    kind, stride = ops[o].spec, ctx.group.stride
    return lambda xe, n, s, stats: (pool(xe, kind, stride), stats)


POOLS = Family('pools', lambda ops, group, name: PoolFamily(group, tuple(op.spec for op in ops), name=name),
               _pool_branch, doc="3x3 pools + affine-free BN (spec: 'max' | 'avg')")
BARE_POOLS = Family('bare_pools', lambda ops, group, name: PoolFamily(group, tuple(op.spec for op in ops), False,
                                                                      name=name),
                    _bare_pool_branch, doc="3x3 pools without BN (spec: 'max' | 'avg')")


# --- skip connection and none -------------------------------------------------------------

def factorized_reduce(module: nn.Module, x, train: bool, C_in: int, C_out: int, N: int, S: int,
                      affine: bool = False):
    """ReLU, two stride-2 1x1 convs on offset grids, concat, BatchNorm (halves H and W),
    with per-edge weights ``(N, S, ...)`` created on ``module`` (inside its compact call):
    params ``conv_1``, ``conv_2`` and a ``BatchNorm_0``. ``(Nx, S, B, H, W, C_in)`` ->
    ``(N, S, B, H/2, W/2, C_out)``."""
    half = C_out // 2
    init = torch_uniform(C_in)
    w1 = module.param('conv_1', init, (N, S, C_in, half))
    w2 = module.param('conv_2', init, (N, S, C_in, C_out - half))
    bn = BatchNorm((N, S, C_out), affine=affine)
    H, W = x.shape[-3], x.shape[-2]
    if H % 2 or W % 2:
        raise ValueError(f'FactorizedReduce needs even spatial sizes, got {H}x{W}')
    if module.is_initializing():
        bn(x, train)
        return zeros_output(x, (N, S), C_out, 2)
    x = jax.nn.relu(x)
    y = jnp.concatenate([pointwise(x[..., ::2, ::2, :], w1),
                         pointwise(x[..., 1::2, 1::2, :], w2)], axis=-1)
    return bn(y, train)


class SkipConnect(nn.Module):
    """``skip_connect``: the identity at stride 1, FactorizedReduce at stride 2; ``(1, ...)``."""
    group: EdgeGroup

    @nn.compact
    def __call__(self, x, train: bool):
        g = self.group
        if g.stride == 1:
            return x[None]
        return factorized_reduce(self, x, train, g.C_in, g.C_out, g.N, g.S)[None]


def _skip_branch(ops, o: int, ctx: BranchContext):
    del ops, o
    if ctx.group.stride == 1:
        return lambda xe, n, s, stats: (xe, stats)
    P = ctx.params

    def branch(xe, n, s, stats):
        h = jax.nn.relu(xe)
        y = jnp.concatenate([jnp.einsum('bhwc,cd->bhwd', h[:, ::2, ::2], P['conv_1'][n, s]),
                             jnp.einsum('bhwc,cd->bhwd', h[:, 1::2, 1::2], P['conv_2'][n, s])], axis=-1)
        return batch_norm_slot(y, stats, 'BatchNorm_0', (n, s), ctx.train)
    return branch


class Zero(nn.Module):
    """The ``none`` op: contributes nothing, so it is not computed at all."""
    @nn.compact
    def __call__(self, x, train: bool):
        return None


SKIP = Family(None, lambda ops, group, name: SkipConnect(group, name=name), _skip_branch,
              doc='identity at stride 1, FactorizedReduce at stride 2')
ZERO = Family(None, lambda ops, group, name: Zero(name=name),
              lambda ops, o, ctx: (lambda xe, n, s, stats: (jnp.zeros(ctx.out_shape, xe.dtype), stats)),
              doc='none: no output')


# --- NAS-Bench-201's dense convs ------------------------------------------------------------

class NorConvFamily(nn.Module):
    """ReLU-Conv-BN with dense k x k kernels (stride 1, padding k // 2), one per op in
    ``kernels``: params ``conv{k}x{k}`` of shape ``(N, S, k, k, C_in, C_out)``, one BN
    ``bn`` over the stacked ``(O, N, S, C_out)`` outputs. The ReLU runs once for all ops;
    on shared sources the targets' kernels run as one conv (:func:`jaxnas.nn.edge_conv`).
    """
    group: EdgeGroup
    kernels: Sequence[int]

    @nn.compact
    def __call__(self, x, train: bool):
        g = self.group
        if g.stride != 1:
            raise ValueError(f'nor_conv ops run at stride 1, got stride {g.stride}')
        if len(set(self.kernels)) != len(self.kernels):
            raise ValueError(f'one nor_conv op per kernel size, got {tuple(self.kernels)}')
        ws = [self.param(f'conv{k}x{k}', torch_uniform(k * k * g.C_in), (g.N, g.S, k, k, g.C_in, g.C_out))
              for k in self.kernels]
        bn = BatchNorm((len(ws), g.N, g.S, g.C_out), name='bn')
        if self.is_initializing():
            bn(x, train)
            return zeros_output(x, (len(ws), g.N, g.S), g.C_out, 1)
        h = jax.nn.relu(x)
        return bn(jnp.stack([edge_conv(h, w) for w in ws]), train)


def _nor_conv_branch(ops, o: int, ctx: BranchContext):
    k = ops[o].spec
    w = ctx.params[f'conv{k}x{k}']

    def branch(xe, n, s, stats):
        y = cell_conv(jax.nn.relu(xe), w[n, s])
        return batch_norm_slot(y, stats, 'bn', (o, n, s), ctx.train)
    return branch


NOR_CONVS = Family('nor_convs', lambda ops, group, name: NorConvFamily(group, tuple(op.spec for op in ops),
                                                                       name=name),
                   _nor_conv_branch, doc='ReLU-Conv(k x k)-BN, stride 1 (spec: k)')
