"""The convolutions of every space, in two implementations chosen in one place.

- ``taps`` (XLA:CPU's fastest form): a depthwise conv is a sum of ``k * k`` shifted
  multiply-adds of the padded input with a custom VJP (:func:`_tap_sum`), a pointwise conv
  a batched ``einsum``, a dense conv inside a loop body an im2col matmul.
- ``lax`` (the accelerators' form): every conv is one ``lax.conv_general_dilated`` in
  NHWC / HWIO, depthwise ones with ``feature_group_count`` (cuDNN's and the TPU compiler's
  native depthwise kernels), the edge axes of a batched group folded into channels.

``auto`` (the default) picks ``taps`` on XLA:CPU and ``lax`` elsewhere. The choice is read
when a function is traced: :func:`conv_impl` sets it for a block of code and
:func:`bind_conv_impl` for everything a function traces (wrap a step before ``jax.jit``,
so every retrace sees the same choice); ``model.conv_impl`` in a config does the latter
for the search and retraining steps.

Why the custom VJP of the tap sum (measured on the 2-core CPU, paper-config edge group
``(4, 2) x 64 x 32 x 32 x 16``, forward + backward of the 3x3 / 5x5 kernels):
differentiating the taps lets XLA emit one ``(B, H, W)`` reduction per tap for the
kernel gradient, and XLA:CPU's reductions with a narrow kept channel axis run at about
1 GFLOP/s (3x3: 150 ms for the edge group); here the batch sum is elementwise adds of 8
images' products per loop step into a small accumulator, then one reduction of the
accumulator (20 ms), and the input gradient is one fused sum of padded products. The
``lax.scan`` over taps it replaces took 680 ms (3x3) and 1800 ms (5x5) for the whole
forward and backward pass of the group.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxnas.errors import JaxnasError

CONV_IMPLS = ('auto', 'taps', 'lax')
_IMPL = contextvars.ContextVar('jaxnas_conv_impl', default='auto')
# Whether image_sums loops over the batch; off for a batch sharded over devices, where a loop
# of batch slices would make XLA's SPMD partitioner gather the batch (plain reductions instead).
_LOOP_SUMS = contextvars.ContextVar('jaxnas_loop_sums', default=True)

# Name scope of a depthwise tap's multiply-add: jaxnas.costs.xla.conv_linear_macs counts its
# multiplies (no conv primitive to count in the taps form).
DEPTHWISE_SCOPE = 'depthwise_tap'

# Images per loop step of image_sums (the batch sums of kernel gradients and BatchNorm).
IMAGES_PER_STEP = 8


def check_impl(name: str) -> str:
    if name not in CONV_IMPLS:
        raise JaxnasError(f"unknown conv implementation {name!r}; choose one of {', '.join(CONV_IMPLS)}")
    return name


def resolve(name: str | None = None) -> str:
    """``taps`` or ``lax``: ``name`` (default: the current choice), ``auto`` by backend."""
    name = check_impl(name or _IMPL.get())
    if name == 'auto':
        return 'taps' if jax.default_backend() == 'cpu' else 'lax'
    return name


@contextlib.contextmanager
def conv_impl(name: str):
    """Trace the convolutions of the block with implementation ``name``."""
    token = _IMPL.set(check_impl(name))
    try:
        yield
    finally:
        _IMPL.reset(token)


def set_impl(name: str, sharded_batch: bool = False) -> str:
    """Make ``name`` the current choice of this thread (context) from now on; returns it.
    ``sharded_batch``: the batch is split over devices (see :func:`image_sums`)."""
    _IMPL.set(check_impl(name))
    _LOOP_SUMS.set(not sharded_batch)
    return name


def bind_conv_impl(name: str, fn: Callable, sharded_batch: bool = False) -> Callable:
    """``fn`` whose every trace uses implementation ``name`` (wrap before ``jax.jit``);
    ``sharded_batch`` as :func:`set_impl`."""
    check_impl(name)

    @functools.wraps(fn)
    def bound(*args, **kwargs):
        token = _LOOP_SUMS.set(not sharded_batch)
        try:
            with conv_impl(name):
                return fn(*args, **kwargs)
        finally:
            _LOOP_SUMS.reset(token)
    return bound


def out_size(size: int, k: int, stride: int, pad: int, dilation: int = 1) -> int:
    return (size + 2 * pad - dilation * (k - 1) - 1) // stride + 1


def _spatial(x, pad: int):
    """Zero-pad the H and W axes of a (..., H, W, C) array."""
    cfg = [(0, 0)] * (x.ndim - 3) + [(pad, pad), (pad, pad), (0, 0)]
    return jnp.pad(x, cfg)


# --- sums over the batch and spatial axes ------------------------------------------------------

def image_sums(fn: Callable, arrays: Sequence, axis: int) -> tuple:
    """``sum over (b, h, w)`` of each output of ``fn(*images)``, where ``images`` are the
    arrays' slices at one batch index ``b`` of axis ``axis`` (followed by ``H, W, C``);
    ``fn`` is elementwise and returns a tuple of ``(*lead, H, W, C)`` arrays. Result:
    float32 ``(*lead, C)`` arrays.

    XLA:CPU's reductions with a narrow kept channel axis run at about 1 GFLOP/s; here the
    batch sum is elementwise adds, IMAGES_PER_STEP images per loop step into a ``(*lead, H, W, C)``
    accumulator (vectorised, cache-resident), and only the accumulator is reduced.
    """
    B = arrays[0].shape[axis]
    at = lambda a, q: a[(slice(None),) * axis + (q,)]
    if not _LOOP_SUMS.get():   # a batch split over devices: fn over the whole batch, XLA's reductions
        whole = [jnp.moveaxis(a, axis, 0) for a in arrays]
        outs = jax.vmap(fn)(*whole)
        return tuple(jnp.sum(o.astype(jnp.float32), axis=(0, o.ndim - 3, o.ndim - 2)) for o in outs)
    u = max(c for c in range(1, min(B, IMAGES_PER_STEP) + 1) if B % c == 0)

    def images(t, accs):
        blocks = [lax.dynamic_slice_in_dim(a, t * u, u, axis=axis) for a in arrays]
        total = None
        for q in range(u):
            out = fn(*[at(b, q) for b in blocks])
            total = out if total is None else tuple(a + b for a, b in zip(total, out))
        return tuple(acc + o.astype(acc.dtype) for acc, o in zip(accs, total))

    shapes = jax.eval_shape(fn, *[at(a, 0) for a in arrays])
    accs = tuple(jnp.zeros(sh.shape, jnp.float32) for sh in shapes)
    accs = lax.fori_loop(0, B // u, images, accs) if B > u else images(0, accs)
    # the barrier keeps XLA from fusing these small sums into their consumers, which then
    # recompute them per element (seen: a BatchNorm backward at 2.7 s per call)
    return lax.optimization_barrier(tuple(jnp.sum(acc, axis=(-3, -2)) for acc in accs))


# --- depthwise: the tap sum with its custom VJP -----------------------------------------------

def _tap(xp, a: int, b: int, Ho: int, Wo: int, s: int):
    return xp[..., a:a + (Ho - 1) * s + 1:s, b:b + (Wo - 1) * s + 1:s, :]


def _kernel_at(w, i: int, j: int):
    """Tap ``(i, j)`` of ``w (*L, k, k, C)`` shaped to broadcast over ``(*L, B, H, W, C)``."""
    return w[..., i, j, :].reshape(w.shape[:-3] + (1, 1, 1, w.shape[-1]))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5, 6, 7))
def _tap_sum(xp, w, k: int, s: int, d: int, off: int, Ho: int, Wo: int):
    """``y[*L, b, h, v, c] = sum_ij xp[*Lx, b, off + s h + d i, off + s v + d j, c] w[*Lw, i, j, c]``
    for an input ``xp`` padded already; ``Lx`` and ``Lw`` broadcast to ``L``. Reverse mode
    (any order) only: the VJP is plain JAX, so a gradient of it (second-order DARTS) and a
    forward-mode derivative of a gradient (Hessian-vector products) work."""
    return _tap_sum_impl(xp, w, k, s, d, off, Ho, Wo)


def _tap_sum_impl(xp, w, k, s, d, off, Ho, Wo):
    out = None
    for i in range(k):
        for j in range(k):
            with jax.named_scope(DEPTHWISE_SCOPE):   # one tap's multiply-adds (costs.xla counts them)
                term = _tap(xp, off + d * i, off + d * j, Ho, Wo, s) * _kernel_at(w, i, j)
            out = term if out is None else out + term
    return out


def _tap_sum_fwd(xp, w, k, s, d, off, Ho, Wo):
    return _tap_sum_impl(xp, w, k, s, d, off, Ho, Wo), (xp, w)


def _sum_to(x, shape):
    """Sum the broadcast axes of ``x`` down to ``shape``."""
    if x.ndim > len(shape):
        x = jnp.sum(x, axis=tuple(range(x.ndim - len(shape))))
    axes = tuple(i for i, (a, b) in enumerate(zip(x.shape, shape)) if b == 1 and a != 1)
    return jnp.sum(x, axis=axes, keepdims=True) if axes else x


def _tap_sum_bwd(k, s, d, off, Ho, Wo, res, g):
    xp, w = res
    lead = g.ndim - 4
    Hp, Wp = xp.shape[-3], xp.shape[-2]
    hs, ws = (Ho - 1) * s + 1, (Wo - 1) * s + 1
    # input gradient: every tap's product scattered back by an (interior) pad, one fused sum
    zero = jnp.zeros((), g.dtype)
    dx = None
    for i in range(k):
        for j in range(k):
            a, b = off + d * i, off + d * j
            cfg = [(0, 0, 0)] * (lead + 1) + [(a, Hp - a - hs, s - 1), (b, Wp - b - ws, s - 1), (0, 0, 0)]
            term = lax.pad(g * _kernel_at(w, i, j), zero, cfg)
            dx = term if dx is None else dx + term
    dx = _sum_to(dx, xp.shape)
    # kernel gradient: every tap's product summed over the batch and space (image_sums)
    # kernel gradient: a scan over the taps (one loop body per call: compile time), each tap's
    # product with the output gradient summed over the batch and space by image_sums
    C = g.shape[-1]
    offsets = jnp.asarray([(off + d * i, off + d * j) for i in range(k) for j in range(k)], jnp.int32)
    zero = jnp.zeros((), jnp.int32)

    def tap_grad(_, ab):
        def product(xi, gi):
            win = lax.dynamic_slice(xi, (zero,) * (xi.ndim - 3) + (ab[0], ab[1], zero), xi.shape[:-3] + (hs, ws, C))
            return (win[..., ::s, ::s, :] * gi if s > 1 else win * gi,)
        return None, image_sums(product, (xp, g), lead)[0]

    _, dw = lax.scan(tap_grad, None, offsets)
    dw = jnp.moveaxis(dw, 0, -2)   # (*L, k * k, C)
    dw = _sum_to(dw.reshape(g.shape[:lead] + (k, k, g.shape[-1])), w.shape).astype(w.dtype)
    return dx.astype(xp.dtype), dw


_tap_sum.defvjp(_tap_sum_fwd, _tap_sum_bwd)


def _depthwise_lax(x, w, *, k: int, stride: int, d: int, pad: int):
    """Depthwise conv of ``x (*L, B, H, W, C)`` with ``w (*L, k, k, C)`` (same lead axes) as one
    grouped ``conv_general_dilated``: the lead axes folded into the channels."""
    lead = w.shape[:-3]
    n = int(np.prod(lead, dtype=np.int64))
    B, H, W, C = x.shape[-4:]
    xi = jnp.moveaxis(x.reshape((n, B, H, W, C)), 0, -2).reshape(B, H, W, n * C)
    wi = jnp.moveaxis(w.reshape((n, k, k, C)), 0, -2).reshape(k, k, 1, n * C)
    y = lax.conv_general_dilated(xi, wi, (stride, stride), ((pad, pad), (pad, pad)), rhs_dilation=(d, d),
                                 dimension_numbers=('NHWC', 'HWIO', 'NHWC'), feature_group_count=n * C)
    Ho, Wo = y.shape[1:3]
    return jnp.moveaxis(y.reshape(B, Ho, Wo, n, C), 3, 0).reshape(lead + (B, Ho, Wo, C))


def depthwise(x, w, *, k: int, stride: int, dilations: Sequence[int], per_op_input: bool = False):
    """Depthwise k x k convolutions of ``x (*Lx, B, H, W, C)`` for ``O`` stacked ops.

    ``w`` is ``(O, *Lw, k, k, C)``; op ``o`` uses dilation ``dilations[o]`` and the
    reference padding ``dilation * (k - 1) // 2``; ``Lx`` broadcasts against ``Lw``.
    With ``per_op_input`` the input is ``(O, *Lx, B, H, W, C)``, one input per op.
    Returns ``(O, *L, B, H', W', C)``, in the current implementation (module docstring).
    """
    impl = resolve()
    pads = [d * (k - 1) // 2 for d in dilations]
    P = max(pads)
    H, W = x.shape[-3], x.shape[-2]
    Ho, Wo = out_size(H, k, stride, pads[0], dilations[0]), out_size(W, k, stride, pads[0], dilations[0])
    lead_w = w.shape[1:-3]
    if not per_op_input:
        x = x[None]
    if x.ndim - 5 < len(lead_w):
        x = x.reshape(x.shape[:1] + (1,) * (len(lead_w) - (x.ndim - 5)) + x.shape[1:])
    out_lead = jnp.broadcast_shapes(lead_w, x.shape[1:-4])
    xp = _spatial(x, P) if impl == 'taps' else x
    outs = []
    for o, (d, p) in enumerate(zip(dilations, pads)):
        src = xp[o] if per_op_input else xp[0]
        if impl == 'taps':
            outs.append(_tap_sum(src, w[o].astype(x.dtype), k, stride, d, P - p, Ho, Wo))
        else:
            src = jnp.broadcast_to(src, out_lead + src.shape[-4:])
            wo = jnp.broadcast_to(w[o], out_lead + w.shape[-3:]).astype(x.dtype)
            outs.append(_depthwise_lax(src, wo, k=k, stride=stride, d=d, pad=p))
    return jnp.stack(outs)


def depthwise_conv(x, w, stride: int = 1, dilation: int = 1):
    """One depthwise k x k conv of ``x (B, H, W, C)`` with ``w (k, k, C)``, padding
    ``dilation * (k - 1) // 2`` (the evaluation networks' form of :func:`depthwise`)."""
    return depthwise(x, w[None], k=w.shape[0], stride=stride, dilations=(dilation,))[0]


# --- pointwise and dense convs ---------------------------------------------------------------

def pointwise(x, w):
    """1x1 conv: ``x (..., B, H, W, Ci)`` times ``w (..., Ci, Co)``, batched over the lead axes."""
    lead = w.shape[:-2]
    x = jnp.broadcast_to(x, lead + x.shape[-4:]) if x.shape[:-4] != lead else x
    if resolve() == 'taps':
        return jnp.einsum('...bhwc,...cd->...bhwd', x, w)
    n = int(np.prod(lead, dtype=np.int64))
    B, H, W, Ci = x.shape[-4:]
    Co = w.shape[-1]
    xi = jnp.moveaxis(x.reshape((n, B, H, W, Ci)), 0, -2).reshape(B, H, W, n * Ci)
    wi = jnp.moveaxis(w.reshape((n, Ci, Co)), 0, -2).reshape(1, 1, Ci, n * Co)
    y = lax.conv_general_dilated(xi, wi, (1, 1), 'VALID', dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                 feature_group_count=n)
    return jnp.moveaxis(y.reshape(B, H, W, n, Co), 3, 0).reshape(lead + (B, H, W, Co))


def conv(x, w, stride: int = 1):
    """PyTorch-style conv of ``x (B, H, W, Ci)`` with ``w (k, k, Ci, Co)``, padding ``k // 2``."""
    p = w.shape[0] // 2
    return lax.conv_general_dilated(x, w, (stride, stride), ((p, p), (p, p)),
                                    dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def cell_conv(x, w):
    """Stride-1 conv of ``x (B, H, W, Ci)`` with ``w (k, k, Ci, Co)``, padding ``k // 2``,
    in the form for loop bodies (scanned cells, single-path edge scans).

    ``taps``: on XLA:CPU (jax 0.10.2) a ``conv_general_dilated`` inside a loop body ran its
    backward pass about 25x slower than the same conv outside a loop (0.39 s vs 0.016 s for
    a 16x32x32x16 -> 48 channel 3x3 conv); written as im2col -- the ``k * k`` shifted
    slices concatenated on channels, then one matmul -- it runs as fast as the plain conv,
    in or out of the loop. ``lax``: the conv.
    """
    k = w.shape[0]
    if resolve() == 'lax':
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
