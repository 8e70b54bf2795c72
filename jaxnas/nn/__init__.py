"""Shared building blocks of every space's networks: one BatchNorm, convolutions, pools,
channel shuffle and the host-filled PyTorch-style init.

The convolutions (depthwise, pointwise, dense) live in :mod:`jaxnas.nn.conv`, in an
XLA:CPU form (shifted multiply-adds, batched matmuls) and an accelerator form
(``lax.conv_general_dilated``), chosen there in one place (``model.conv_impl``).

BatchNorm follows PyTorch: ``momentum`` 0.1, ``eps`` 1e-5, biased batch variance for
normalisation and unbiased variance for the running estimate. Inputs are
``(*lead, B, H, W, C)`` (NHWC with optional leading edge axes).
"""
from __future__ import annotations

import contextvars
import functools
import math
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxnas.nn.convolutions import (CONV_IMPLS, DEPTHWISE_SCOPE, bind_conv_impl, cell_conv, conv, conv_impl,  # noqa: F401
                            depthwise, depthwise_conv, edge_conv, image_sums, out_size, pointwise,
                            resolve as resolve_conv_impl, _spatial)


def torch_uniform(fan_in: int) -> Callable:
    """PyTorch's default conv/linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    Inside :func:`init_variables` it returns ``-bound`` as a placeholder, filled on the
    host afterwards (see there); otherwise it draws with ``jax.random``.
    """
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        if _HOST_FILL.get():
            return jnp.full(shape, -bound, dtype)
        return jax.random.uniform(key, shape, dtype, -bound, bound)
    return init


_HOST_FILL = contextvars.ContextVar('jaxnas_host_fill', default=False)


def init_variables(module: nn.Module, seed: int, *args, **kwargs) -> dict:
    """``module.init`` for big supernets, deterministic in ``seed``, in about a second.

    Flax's ``init`` draws one XLA random program per parameter: eagerly that compiled
    hundreds of small programs (about a minute for the supernet on a 2-core CPU) and
    jitted it compiled about as long. Here the jitted ``init`` only lays out shapes,
    constants and the ``-bound`` placeholders of :func:`torch_uniform`, and the uniform
    draws are made on the host, one NumPy generator per leaf seeded by ``(seed, leaf
    index)``. Every random leaf of this package comes from :func:`torch_uniform`; other
    initialisers (ones, zeros) are never negative, so the placeholders are unambiguous.
    """
    token = _HOST_FILL.set(True)
    try:
        variables = jax.jit(module.init, static_argnames=tuple(kwargs))(jax.random.key(0), *args, **kwargs)
    finally:
        _HOST_FILL.reset(token)
    params, treedef = jax.tree.flatten(variables.get('params', {}))
    filled = []
    for i, leaf in enumerate(params):
        leaf = np.asarray(leaf)
        if leaf.size and np.all(leaf < 0):
            rng = np.random.default_rng([seed, i])
            leaf = rng.uniform(leaf, -leaf).astype(leaf.dtype)
        filled.append(jnp.asarray(leaf))
    variables = dict(variables)
    variables['params'] = jax.tree.unflatten(treedef, filled)
    return variables


def _expand(v):
    return v.reshape(v.shape[:-1] + (1, 1, 1, v.shape[-1]))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def batch_moments_normalize(x, eps: float):
    """``(x - mean) * rsqrt(var + eps), mean, var`` of ``x (*lead, B, H, W, C)`` over
    ``(B, H, W)`` (biased variance, two passes), with its sums as
    :func:`jaxnas.nn.convolutions.image_sums` (XLA:CPU's own channel reductions and their
    autodiff transposes cost the paper-config search step seconds) and a hand-written VJP."""
    return _moments_fwd(x, eps)[0]


def _moments_fwd(x, eps):
    lead = x.ndim - 4
    n = x.shape[-4] * x.shape[-3] * x.shape[-2]
    (total,) = image_sums(lambda xi: (xi,), (x,), lead)
    mean = total / n
    centred = lambda xi: (jnp.square(xi.astype(jnp.float32) - _expand(mean)[..., 0, :, :, :]),)
    (sq,) = image_sums(centred, (x,), lead)
    var = sq / n
    rstd = lax.rsqrt(var + eps)
    y = ((x - _expand(mean).astype(x.dtype)) * _expand(rstd).astype(x.dtype))
    return (y, mean, var), (x, mean, rstd)


def _moments_bwd(eps, res, cts):
    x, mean, rstd = res
    gy, gmean, gvar = cts
    lead = x.ndim - 4
    n = x.shape[-4] * x.shape[-3] * x.shape[-2]
    m1, r1 = _expand(mean)[..., 0, :, :, :], _expand(rstd)[..., 0, :, :, :]
    sums = lambda gi, xi: (gi.astype(jnp.float32), gi.astype(jnp.float32) * (xi.astype(jnp.float32) - m1) * r1)
    sg, sgx = image_sums(sums, (gy, x), lead)
    xf = x.astype(jnp.float32)
    xhat = (xf - _expand(mean)) * _expand(rstd)
    dx = _expand(rstd) * (gy.astype(jnp.float32) - _expand(sg / n) - xhat * _expand(sgx / n))
    dx = dx + _expand(gmean / n) + _expand(2 * gvar / n) * (xf - _expand(mean))
    return (dx.astype(x.dtype),)


batch_moments_normalize.defvjp(_moments_fwd, _moments_bwd)


def batch_norm(x, mean, var, train: bool, momentum: float = 0.1, eps: float = 1e-5):
    """Affine-free BatchNorm of ``x (*lead, B, H, W, C)`` over ``(B, H, W)`` with running
    statistics ``mean``, ``var`` of shape ``(*lead, C)``: ``(y, (mean', var'))``.

    In training mode ``x`` is normalised by its batch statistics
    (:func:`batch_moments_normalize`) and the running ones move by ``momentum`` (PyTorch:
    biased variance to normalise, unbiased for the running estimate); otherwise the
    running statistics normalise and come back unchanged. The one BatchNorm computation:
    :class:`BatchNorm` and the single-path branches (a slot of a batched BatchNorm,
    :func:`jaxnas.ops.batch_norm_slot`) both call it.
    """
    if train:
        y, batch_mean, batch_var = batch_moments_normalize(x, eps)
        n = x.shape[-4] * x.shape[-3] * x.shape[-2]
        m = momentum
        running = ((1 - m) * mean + m * lax.stop_gradient(batch_mean),
                   (1 - m) * var + m * lax.stop_gradient(batch_var) * n / max(n - 1, 1))
        return y, running
    return (x - _expand(mean)) * _expand(lax.rsqrt(var + eps)), (mean, var)


class BatchNorm(nn.Module):
    """BatchNorm over (B, H, W) of inputs ``(*lead, B, H, W, C)``; stats of shape ``shape``
    (:func:`batch_norm`, then the affine ``scale`` and ``bias`` if ``affine``)."""
    shape: Sequence[int]
    affine: bool = False
    momentum: float = 0.1
    eps: float = 1e-5

    @nn.compact
    def __call__(self, x, train: bool):
        shape = tuple(self.shape)
        ra_mean = self.variable('batch_stats', 'mean', jnp.zeros, shape, jnp.float32)
        ra_var = self.variable('batch_stats', 'var', jnp.ones, shape, jnp.float32)
        if self.affine:
            scale = self.param('scale', nn.initializers.ones, shape)
            bias = self.param('bias', nn.initializers.zeros, shape)
        if self.is_initializing():
            return x
        y, running = batch_norm(x, ra_mean.value, ra_var.value, train, self.momentum, self.eps)
        if train:
            ra_mean.value, ra_var.value = running
        if self.affine:
            expand = lambda v: v.reshape(shape[:-1] + (1, 1, 1, shape[-1]))
            y = y * expand(scale) + expand(bias)
        return y


def pool(x, kind: str, stride: int):
    """3x3 max or average pool (average excludes the padding) of ``(..., B, H, W, C)``."""
    H, W = x.shape[-3], x.shape[-2]
    window = (1,) * (x.ndim - 3) + (3, 3, 1)
    strides = (1,) * (x.ndim - 3) + (stride, stride, 1)
    padding = [(0, 0)] * (x.ndim - 3) + [(1, 1), (1, 1), (0, 0)]
    if kind == 'max':
        return lax.reduce_window(x, -jnp.inf, lax.max, window, strides, padding)
    total = lax.reduce_window(x, 0.0, lax.add, window, strides, padding)
    count = lax.reduce_window(jnp.ones((1, H, W, 1), x.dtype), 0.0, lax.add, (1, 3, 3, 1),
                              (1, stride, stride, 1), [(0, 0), (1, 1), (1, 1), (0, 0)])
    return total / count



def channel_shuffle(x, groups: int):
    """PyTorch's channel shuffle on the last (channel) axis."""
    C = x.shape[-1]
    return x.reshape(x.shape[:-1] + (groups, C // groups)).swapaxes(-1, -2).reshape(x.shape)


def classifier(num_classes: int, fan_in: int, name: str = 'classifier') -> nn.Dense:
    """The linear classifier with PyTorch's default init (fan-in uniform weight and bias)."""
    return nn.Dense(num_classes, kernel_init=torch_uniform(fan_in), bias_init=torch_uniform(fan_in), name=name)
