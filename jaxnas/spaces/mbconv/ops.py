"""The MBConv space's ops, registered in the shared op registry under ``space='mbconv'``.

- :data:`MBCONVS` (family ``mbconvs``): MobileNetV2 inverted residual blocks (Sandler et
  al., CVPR 2018) as ProxylessNAS / FBNet candidates: 1x1 expand ``C_in -> e * C_in``, BN,
  ReLU6; depthwise ``k x k`` (stride, padding ``(k - 1) // 2``), BN, ReLU6; 1x1 project
  ``-> C_out``, BN; plus the input when the shapes match (stride 1, ``C_in == C_out``).
  In search the BatchNorms have no affine parameters (as DARTS's search cells).
- :data:`IDENTITY` (``skip_connect``): the identity where the shapes match; where they
  do not (the first layer of a stage) it is excluded: it contributes nothing, in every
  execution mode, and derivation, sampling and the choice codec never pick it there.

**Batched dense form** (one mixed layer, all 6 MBConv ops at once; DESIGN.md section 2):
the expansions of all ops are one pointwise matmul ``C_in -> sum_o e_o C_in`` (hidden
channels of op ``o`` at ``offsets[o]``) and one BatchNorm; the depthwise convs run one tap
loop per kernel size over the hidden channels of the ops of that size; one BatchNorm over
all hidden channels; the projections one batched matmul per expansion ratio; one
BatchNorm over the stacked ``(O, N, S, C_out)`` outputs. Variables, laid out per edge
(leading ``(N, S)`` axes, as the registry's other families):

- ``expand (N, S, C_in, hidden)``, ``expand_bn`` stats ``(N, S, hidden)``;
- ``depthwise_{k}x{k} (N, S, k, k, hidden_k)`` (the hidden channels of the ops with kernel
  ``k``, in op order), ``depthwise_bn`` stats ``(N, S, hidden)``;
- ``project_e{e} (n_e, N, S, e * C_in, C_out)`` (the ops with expansion ``e``, in op order),
  ``project_bn`` stats ``(O, N, S, C_out)``.

The single-path branch of op ``o`` uses its slices of the same variables and moves only
its slots of the three BatchNorms.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import ops as ops_lib
from jaxnas.nn import BatchNorm, depthwise, pointwise, torch_uniform
from jaxnas.ops.registry import BranchContext, EdgeGroup, Family, OpDef, batch_norm_slot, zeros_output
from jaxnas.spaces.mbconv import genotype as G

SPACE_NAME = 'mbconv'


class Layout:
    """Where each op's channels sit in the batched variables (pure arithmetic)."""

    def __init__(self, specs: Sequence[tuple], C_in: int):
        self.specs = tuple(specs)
        self.hidden = [e * C_in for _, e in self.specs]
        self.offsets = np.concatenate([[0], np.cumsum(self.hidden)[:-1]]).astype(int).tolist()
        self.total = int(sum(self.hidden))
        self.kernels = sorted({k for k, _ in self.specs})
        self.expansions = sorted({e for _, e in self.specs})
        # hidden channel indices of the ops of each kernel size, in op order
        self.by_kernel = {k: [o for o, (kk, _) in enumerate(self.specs) if kk == k] for k in self.kernels}
        self.by_expansion = {e: [o for o, (_, ee) in enumerate(self.specs) if ee == e] for e in self.expansions}

    def channels(self, o: int) -> np.ndarray:
        return np.arange(self.offsets[o], self.offsets[o] + self.hidden[o])

    def kernel_channels(self, k: int) -> np.ndarray:
        return np.concatenate([self.channels(o) for o in self.by_kernel[k]])

    def offset_in_kernel(self, o: int) -> int:
        k = self.specs[o][0]
        return int(sum(self.hidden[p] for p in self.by_kernel[k][:self.by_kernel[k].index(o)]))


def residual(group: EdgeGroup) -> bool:
    return group.stride == 1 and group.C_in == group.C_out


class MBConvFamily(nn.Module):
    """All MBConv ops of a mixed layer, batched; ``(Nx, S, B, H, W, C_in)`` ->
    ``(O, N, S, B, H', W', C_out)`` in ``specs`` order (see the module docstring)."""
    group: EdgeGroup
    specs: Sequence[tuple]   # (kernel, expansion) per op

    @nn.compact
    def __call__(self, x, train: bool):
        g = self.group
        N, S, O = g.N, g.S, len(self.specs)
        lay = Layout(self.specs, g.C_in)
        w_exp = self.param('expand', torch_uniform(g.C_in), (N, S, g.C_in, lay.total))
        w_dw = {k: self.param(f'depthwise_{k}x{k}', torch_uniform(k * k),
                              (N, S, k, k, len(lay.kernel_channels(k)))) for k in lay.kernels}
        w_pr = {e: self.param(f'project_e{e}', torch_uniform(e * g.C_in),
                              (len(lay.by_expansion[e]), N, S, e * g.C_in, g.C_out)) for e in lay.expansions}
        bn_exp = BatchNorm((N, S, lay.total), name='expand_bn')
        bn_dw = BatchNorm((N, S, lay.total), name='depthwise_bn')
        bn_pr = BatchNorm((O, N, S, g.C_out), name='project_bn')
        if self.is_initializing():
            for bn in (bn_exp, bn_dw, bn_pr):
                bn(x, train)
            return zeros_output(x, (O, N, S), g.C_out, g.stride)
        h = jax.nn.relu6(bn_exp(pointwise(x, w_exp), train))              # (N, S, B, H, W, hidden)
        parts = []
        for k in lay.kernels:
            idx = lay.kernel_channels(k)
            parts.append((idx, depthwise(h[..., idx], w_dw[k][None], k=k, stride=g.stride, dilations=(1,))[0]))
        order = np.concatenate([idx for idx, _ in parts])
        d = jnp.concatenate([p for _, p in parts], axis=-1)
        if not np.array_equal(order, np.arange(lay.total)):
            d = d[..., np.argsort(order)]
        d = jax.nn.relu6(bn_dw(d, train))
        y = [None] * O
        for e in lay.expansions:
            members = lay.by_expansion[e]
            hs = jnp.stack([d[..., lay.channels(o)] for o in members])     # (n_e, N, S, B, H', W', e C_in)
            ys = jnp.einsum('ensbhwc,enscd->ensbhwd', hs, w_pr[e])
            for j, o in enumerate(members):
                y[o] = ys[j]
        y = bn_pr(jnp.stack(y), train)
        if residual(g):
            y = y + x[None]
        return y


def _mbconv_branch(ops, o: int, ctx: BranchContext):
    """Op ``o`` of :class:`MBConvFamily` on one edge ``(n, s)``, from its variable slices."""
    g = ctx.group
    lay = Layout(tuple(op.spec for op in ops), g.C_in)
    k, e = lay.specs[o]
    P = ctx.params
    lo, hi = lay.offsets[o], lay.offsets[o] + lay.hidden[o]
    klo = lay.offset_in_kernel(o)
    j = lay.by_expansion[e].index(o)
    res = residual(g)

    def branch(xe, n, s, stats):
        h = jnp.einsum('bhwc,cd->bhwd', xe, P['expand'][n, s][:, lo:hi])
        h, stats = batch_norm_slot(h, stats, 'expand_bn', (n, s, slice(lo, hi)), ctx.train)
        h = jax.nn.relu6(h)
        w = P[f'depthwise_{k}x{k}'][n, s][..., klo:klo + lay.hidden[o]]
        h = depthwise(h, w[None], k=k, stride=g.stride, dilations=(1,))[0]
        h, stats = batch_norm_slot(h, stats, 'depthwise_bn', (n, s, slice(lo, hi)), ctx.train)
        h = jax.nn.relu6(h)
        y = jnp.einsum('bhwc,cd->bhwd', h, P[f'project_e{e}'][j, n, s])
        y, stats = batch_norm_slot(y, stats, 'project_bn', (o, n, s), ctx.train)
        return (y + xe if res else y), stats
    return branch


class Identity(nn.Module):
    """``skip_connect``: the identity where shapes match (``(1, Nx, S, ...)``), else nothing."""
    group: EdgeGroup

    @nn.compact
    def __call__(self, x, train: bool):
        return x[None] if residual(self.group) else None


def _identity_branch(ops, o: int, ctx: BranchContext):
    del ops, o
    if residual(ctx.group):
        return lambda xe, n, s, stats: (xe, stats)
    return lambda xe, n, s, stats: (jnp.zeros(ctx.out_shape, xe.dtype), stats)


MBCONVS = Family('mbconvs', lambda ops, group, name: MBConvFamily(group, tuple(op.spec for op in ops), name=name),
                 _mbconv_branch, doc='MobileNetV2 inverted residual blocks (spec: (kernel, expansion))')
IDENTITY = Family(None, lambda ops, group, name: Identity(group, name=name), _identity_branch,
                  doc='identity where the shapes match, nothing elsewhere')


def _evaluation(k: int, e: int):
    def make(C: int, stride: int) -> nn.Module:
        from jaxnas.spaces.mbconv.evalnet import MBConvBlock
        return MBConvBlock(C, C, k, e, stride)
    return make


OPS = tuple(ops_lib.register(OpDef(name, MBCONVS, spec=G.op_spec(name), evaluation=_evaluation(*G.op_spec(name))),
                             space=SPACE_NAME) for name in G.MBCONV_OPS)
OPS += (ops_lib.register(OpDef(G.SKIP, IDENTITY, parameter_free=True, identity=True), space=SPACE_NAME),)
