"""Shared building blocks of every space's networks: one BatchNorm, convolutions, pools,
channel shuffle and the host-filled PyTorch-style init.

Depthwise convolutions are written as sums of shifted multiply-adds (``lax.slice`` +
broadcasting) and pointwise convolutions as batched matmuls (``einsum``). On XLA:CPU a
grouped ``conv_general_dilated`` (``feature_group_count``) is many times slower, and a
``vmap`` over per-edge kernels would turn every conv into a grouped conv.

BatchNorm follows PyTorch: ``momentum`` 0.1, ``eps`` 1e-5, biased batch variance for
normalisation and unbiased variance for the running estimate. Inputs are
``(*lead, B, H, W, C)`` (NHWC with optional leading edge axes).
"""
from __future__ import annotations

import contextvars
import math
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax



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


def out_size(size: int, k: int, stride: int, pad: int, dilation: int = 1) -> int:
    return (size + 2 * pad - dilation * (k - 1) - 1) // stride + 1


def _spatial(x, pad: int):
    """Zero-pad the H and W axes of a (..., H, W, C) array."""
    cfg = [(0, 0)] * (x.ndim - 3) + [(pad, pad), (pad, pad), (0, 0)]
    return jnp.pad(x, cfg)


# Name scope of a depthwise tap's multiply-add: jaxnas.costs.xla.conv_linear_macs counts its
# multiplies (no conv primitive to count in this form).
DEPTHWISE_SCOPE = 'depthwise_tap'


def depthwise(x, w, *, k: int, stride: int, dilations: Sequence[int], per_op_input: bool = False):
    """Depthwise k x k convolutions of ``x (*Lx, B, H, W, C)`` for ``O`` stacked ops.

    ``w`` is ``(O, *Lw, k, k, C)``; op ``o`` uses dilation ``dilations[o]`` and the
    reference padding ``dilation * (k - 1) // 2``; ``Lx`` broadcasts against ``Lw``.
    With ``per_op_input`` the input is ``(O, *Lx, B, H, W, C)``, one input per op.
    Returns ``(O, *L, B, H', W', C)``.

    Written as a ``lax.scan`` over the ``k * k`` taps: each step adds a shifted slice of
    the padded input times one tap of the kernel. XLA sees one small loop body per call
    (compile time), no grouped convolution (slow on XLA:CPU), and ``jax.checkpoint`` on
    the body keeps the backward pass from storing one activation per tap.
    """
    O = len(dilations)
    pads = [d * (k - 1) // 2 for d in dilations]
    P = max(pads)
    H, W, C = x.shape[-3], x.shape[-2], x.shape[-1]
    Ho, Wo = out_size(H, k, stride, pads[0], dilations[0]), out_size(W, k, stride, pads[0], dilations[0])
    lead_w = w.shape[1:-3]
    if not per_op_input:
        x = x[None]
    lead_x = x.shape[1:-4]
    if len(lead_x) < len(lead_w):
        x = x.reshape(x.shape[:1] + (1,) * (len(lead_w) - len(lead_x)) + x.shape[1:])
    xp = _spatial(x, P)
    hs, ws = (Ho - 1) * stride + 1, (Wo - 1) * stride + 1
    offsets = jnp.asarray([[(P - p + i * d, P - p + j * d) for d, p in zip(dilations, pads)]
                           for i in range(k) for j in range(k)], jnp.int32)  # (k*k, O, 2)
    taps = jnp.moveaxis(w.reshape((O,) + lead_w + (k * k, C)), -2, 0)
    taps = taps.reshape((k * k, O) + lead_w + (1, 1, 1, C))
    out_lead = jnp.broadcast_shapes(lead_w, x.shape[1:-4])
    zero = jnp.zeros((), jnp.int32)

    @jax.checkpoint
    def tap(acc, inputs):
        off, wk = inputs
        slices = []
        for o in range(O):
            src = xp[o] if per_op_input else xp[0]
            start = (zero,) * (src.ndim - 3) + (off[o, 0], off[o, 1], zero)
            sl = lax.dynamic_slice(src, start, src.shape[:-3] + (hs, ws, C))
            slices.append(sl[..., ::stride, ::stride, :] if stride > 1 else sl)
        with jax.named_scope(DEPTHWISE_SCOPE):   # its multiply is one tap's multiply-adds (costs.xla)
            return acc + jnp.stack(slices) * wk, None

    acc = jnp.zeros((O,) + out_lead + (x.shape[-4], Ho, Wo, C), x.dtype)
    acc, _ = lax.scan(tap, acc, (offsets, taps))
    return acc


def pointwise(x, w):
    """1x1 conv: ``x (..., B, H, W, Ci)`` times ``w (..., Ci, Co)``, batched over the lead axes."""
    lead = w.shape[:-2]
    x = jnp.broadcast_to(x, lead + x.shape[-4:]) if x.shape[:-4] != lead else x
    return jnp.einsum('...bhwc,...cd->...bhwd', x, w)


def batch_norm(x, mean, var, train: bool, momentum: float = 0.1, eps: float = 1e-5):
    """Affine-free BatchNorm of ``x (*lead, B, H, W, C)`` over ``(B, H, W)`` with running
    statistics ``mean``, ``var`` of shape ``(*lead, C)``: ``(y, (mean', var'))``.

    In training mode ``x`` is normalised by its batch statistics and the running ones
    move by ``momentum`` (PyTorch: biased variance to normalise, unbiased for the running
    estimate); otherwise the running statistics normalise and come back unchanged. The
    one BatchNorm computation: :class:`BatchNorm` and the single-path branches (a slot of
    a batched BatchNorm, :func:`jaxnas.ops.batch_norm_slot`) both call it.
    """
    expand = lambda v: v.reshape(v.shape[:-1] + (1, 1, 1, v.shape[-1]))
    if train:
        axes = tuple(range(x.ndim - 4, x.ndim - 1))
        batch_mean = jnp.mean(x, axes)
        batch_var = jnp.mean(jnp.square(x - expand(batch_mean)), axes)
        n = x.shape[-4] * x.shape[-3] * x.shape[-2]
        m = momentum
        mean, var, running = batch_mean, batch_var, (
            (1 - m) * mean + m * lax.stop_gradient(batch_mean),
            (1 - m) * var + m * lax.stop_gradient(batch_var) * n / max(n - 1, 1))
    else:
        running = (mean, var)
    return (x - expand(mean)) * expand(lax.rsqrt(var + eps)), running


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


def conv(x, w, stride: int = 1):
    """PyTorch-style conv of ``x (B, H, W, Ci)`` with ``w (k, k, Ci, Co)``, padding ``k // 2``."""
    p = w.shape[0] // 2
    return lax.conv_general_dilated(x, w, (stride, stride), ((p, p), (p, p)),
                                    dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def cell_conv(x, w):
    """Stride-1 conv of ``x (B, H, W, Ci)`` with ``w (k, k, Ci, Co)``, padding ``k // 2``,
    in the form for loop bodies (scanned cells, single-path edge scans).

    On XLA:CPU (jax 0.10.2) a ``conv_general_dilated`` inside a loop body ran its backward
    pass about 25x slower than the same conv outside a loop (measured: 0.39 s vs 0.016 s
    for a 16x32x32x16 -> 48 channel 3x3 conv); written as im2col -- the ``k * k`` shifted
    slices concatenated on channels, then one matmul -- it runs as fast as the plain conv,
    in or out of the loop. Other backends use the conv.
    """
    k = w.shape[0]
    if jax.default_backend() != 'cpu':
        return conv(x, w)
    if k == 1:
        return jnp.einsum('bhwc,cd->bhwd', x, w[0, 0])
    p, (H, W) = k // 2, x.shape[1:3]
    xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    cols = jnp.concatenate([xp[:, i:i + H, j:j + W] for i in range(k) for j in range(k)], axis=-1)
    return jnp.einsum('bhwk,kd->bhwd', cols, w.reshape(-1, w.shape[-1]))


def edge_conv(x, w):
    """Stride-1 'same' convs (:func:`cell_conv`) of an edge group: ``x (Nx, S, B, H, W, Ci)``
    with per-edge kernels ``w (N, S, k, k, Ci, Co)`` -> ``(N, S, B, H, W, Co)``.

    With ``Nx == 1`` (every target reads the same sources) the ``N`` targets' kernels of
    a source are laid side by side on the output channels: one conv per source.
    """
    N, S, k, Ci, Co = w.shape[0], w.shape[1], w.shape[2], w.shape[4], w.shape[5]
    if x.shape[0] == 1:
        per_source = []
        for s in range(S):
            y = cell_conv(x[0, s], jnp.moveaxis(w[:, s], 0, -2).reshape(k, k, Ci, N * Co))
            per_source.append(jnp.moveaxis(y.reshape(y.shape[:-1] + (N, Co)), -2, 0))
        return jnp.stack(per_source, axis=1)
    return jnp.stack([jnp.stack([cell_conv(x[n, s], w[n, s]) for s in range(S)]) for n in range(N)])


def classifier(num_classes: int, fan_in: int, name: str = 'classifier') -> nn.Dense:
    """The linear classifier with PyTorch's default init (fan-in uniform weight and bias)."""
    return nn.Dense(num_classes, kernel_init=torch_uniform(fan_in), bias_init=torch_uniform(fan_in), name=name)
