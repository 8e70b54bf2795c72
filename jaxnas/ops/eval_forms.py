"""Evaluation forms of the DARTS op vocabulary: one op on one edge of a discrete network.

``EVAL_FORMS[name](C, stride)`` returns a Flax module called as ``(x, train) -> y`` with
``x (B, H, W, C)`` and ``y (B, H', W', C)`` (``H' = ceil(H / stride)``), for every op of the
reference code's ``OPS`` dict (quark0/darts ``operations.py``) except ``none``, with the
semantics of the reference evaluation network (``model.py``, which builds every op with
``affine=True``):

- ``max_pool_3x3`` / ``avg_pool_3x3``: bare 3x3 pools, padding 1, no BatchNorm (the search
  network adds an affine-free one); the average excludes the padding
  (``count_include_pad=False``).
- ``skip_connect``: the identity at stride 1; at stride 2 a FactorizedReduce (ReLU, two
  stride-2 1x1 convs on grids offset by one pixel, concatenated, affine BN).
- ``sep_conv_3x3/5x5/7x7``: twice (ReLU, depthwise k x k, pointwise 1x1, affine BN), only
  the first depthwise conv strided, padding ``k // 2``.
- ``dil_conv_3x3/5x5``: ReLU, depthwise k x k with dilation 2, pointwise, affine BN.
- ``conv_7x1_1x7``: ReLU, a 1x7 conv (stride along the width), a 7x1 conv (stride along
  the height), affine BN; both dense ``C -> C`` convs without bias, as the reference.

:data:`IDENTITY_OPS` / :func:`is_identity` say which (op, stride) is a plain identity:
the reference network applies drop path to every edge output except those.

The modules work one edge at a time (the search network's batched edge groups are in
:mod:`jaxnas.ops`). Dense convolutions are im2col matmuls and depthwise ones unrolled sums
of shifted products, so a ``vmap`` over seeds stays a batched matmul instead of a grouped
convolution (slow on XLA:CPU, DESIGN.md section 2). BatchNorm and the PyTorch-style init
come from :mod:`jaxnas.nn`.
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnas.errors import JaxnasError
from jaxnas.nn import BatchNorm, depthwise_conv, pointwise, pool, torch_uniform  # noqa: F401 (depthwise_conv: mbconv)

Pair = Union[int, Tuple[int, int]]


class EvalShapeError(JaxnasError):
    """An input whose spatial size an evaluation-network op cannot take (one line)."""


def _pair(v: Pair) -> Tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


# ----------------------------------------------------------------------------------------
# Convolutions
# ----------------------------------------------------------------------------------------

def conv2d(x, w, stride: Pair = 1, padding: Pair = 0):
    """Dense conv of ``x (B, H, W, Ci)`` with ``w (kh, kw, Ci, Co)`` as an im2col matmul;
    ``stride`` and ``padding`` are an int or an ``(h, w)`` pair."""
    kh, kw = w.shape[0], w.shape[1]
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    if ph or pw:
        x = jnp.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    H, W = x.shape[1], x.shape[2]
    Ho, Wo = (H - kh) // sh + 1, (W - kw) // sw + 1
    if kh == kw == 1:
        patches = x[:, ::sh, ::sw, :][:, :Ho, :Wo]
    else:
        patches = jnp.concatenate(
            [x[:, i:i + (Ho - 1) * sh + 1:sh, j:j + (Wo - 1) * sw + 1:sw, :]
             for i in range(kh) for j in range(kw)], axis=-1)
    return jnp.einsum('bhwk,kd->bhwd', patches, w.reshape(-1, w.shape[-1]))


class Conv(nn.Module):
    """Bias-free dense conv with PyTorch's default init (fan-in uniform); ``k``, ``stride``
    and ``padding`` are an int or an ``(h, w)`` pair."""
    features: int
    k: Pair
    stride: Pair = 1
    padding: Pair = 0

    @nn.compact
    def __call__(self, x):
        cin = x.shape[-1]
        kh, kw = _pair(self.k)
        w = self.param('kernel', torch_uniform(kh * kw * cin), (kh, kw, cin, self.features))
        return conv2d(x, w.astype(x.dtype), self.stride, self.padding)


def batch_norm(C: int, name: Optional[str] = None) -> BatchNorm:
    """Affine BatchNorm (PyTorch semantics) for ``(B, H, W, C)`` activations."""
    return BatchNorm((C,), affine=True, name=name)


# ----------------------------------------------------------------------------------------
# Ops
# ----------------------------------------------------------------------------------------

class DilConv(nn.Module):
    """ReLU, depthwise k x k (dilation d), pointwise 1x1, affine BN (reference DilConv)."""
    C: int
    k: int
    stride: int
    dilation: int

    @nn.compact
    def __call__(self, x, train: bool):
        C, k = self.C, self.k
        dw = self.param('depthwise', torch_uniform(k * k), (k, k, C))
        pw = self.param('pointwise', torch_uniform(C), (C, C))
        y = depthwise_conv(jax.nn.relu(x), dw, self.stride, self.dilation)
        y = jnp.einsum('bhwc,cd->bhwd', y, pw.astype(y.dtype))
        return batch_norm(C)(y, train)


class SepConv(nn.Module):
    """Two DilConv blocks with dilation 1, the first one strided (reference SepConv)."""
    C: int
    k: int
    stride: int

    @nn.compact
    def __call__(self, x, train: bool):
        x = DilConv(self.C, self.k, self.stride, 1)(x, train)
        return DilConv(self.C, self.k, 1, 1)(x, train)


class Conv7x1_1x7(nn.Module):
    """ReLU, 1x7 conv (stride ``(1, s)``, padding ``(0, 3)``), 7x1 conv (stride ``(s, 1)``,
    padding ``(3, 0)``), affine BN: the reference ``conv_7x1_1x7``."""
    C: int
    stride: int

    @nn.compact
    def __call__(self, x, train: bool):
        s = self.stride
        y = Conv(self.C, (1, 7), stride=(1, s), padding=(0, 3), name='conv_1x7')(jax.nn.relu(x))
        y = Conv(self.C, (7, 1), stride=(s, 1), padding=(3, 0), name='conv_7x1')(y)
        return batch_norm(self.C)(y, train)


class FactorizedReduce(nn.Module):
    """ReLU, two stride-2 1x1 convs (the second on the grid offset by one pixel), concat,
    affine BN: halves H and W (the reference FactorizedReduce, ``affine=True``)."""
    C_in: int
    C_out: int

    @nn.compact
    def __call__(self, x, train: bool):
        H, W = x.shape[-3], x.shape[-2]
        if H % 2 or W % 2:
            raise EvalShapeError(
                f'FactorizedReduce (a stride-2 skip_connect, or the input of a cell after a reduction) needs '
                f'even spatial sizes, got {H}x{W}; give the network inputs whose size halves evenly at every '
                'reduction (CIFAR network: divisible by 4; ImageNet network: by 32)')
        half = self.C_out // 2
        init = torch_uniform(self.C_in)
        w1 = self.param('conv_1', init, (self.C_in, half))
        w2 = self.param('conv_2', init, (self.C_in, self.C_out - half))
        x = jax.nn.relu(x)
        y = jnp.concatenate([pointwise(x[..., ::2, ::2, :], w1.astype(x.dtype)),
                             pointwise(x[..., 1::2, 1::2, :], w2.astype(x.dtype))], axis=-1)
        return batch_norm(self.C_out)(y, train)


class ReLUConvBN(nn.Module):
    """ReLU, 1x1 conv ``C_in -> C_out``, affine BN (the cells' input preprocessing)."""
    C_in: int
    C_out: int

    @nn.compact
    def __call__(self, x, train: bool):
        w = self.param('conv', torch_uniform(self.C_in), (self.C_in, self.C_out))
        return batch_norm(self.C_out)(pointwise(jax.nn.relu(x), w.astype(x.dtype)), train)


class Pool(nn.Module):
    """Bare 3x3 max or average pool, padding 1 (average excludes the padding)."""
    kind: str
    stride: int

    @nn.compact
    def __call__(self, x, train: bool):
        del train
        return pool(x, self.kind, self.stride)


class Identity(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        del train
        return x


def _skip(C: int, stride: int) -> nn.Module:
    return Identity() if stride == 1 else FactorizedReduce(C, C)


EVAL_FORMS: dict[str, Callable[[int, int], nn.Module]] = {
    'max_pool_3x3': lambda C, stride: Pool('max', stride),
    'avg_pool_3x3': lambda C, stride: Pool('avg', stride),
    'skip_connect': _skip,
    'sep_conv_3x3': lambda C, stride: SepConv(C, 3, stride),
    'sep_conv_5x5': lambda C, stride: SepConv(C, 5, stride),
    'sep_conv_7x7': lambda C, stride: SepConv(C, 7, stride),
    'dil_conv_3x3': lambda C, stride: DilConv(C, 3, stride, 2),
    'dil_conv_5x5': lambda C, stride: DilConv(C, 5, stride, 2),
    'conv_7x1_1x7': lambda C, stride: Conv7x1_1x7(C, stride),
}

# Ops that are the identity at stride 1 (no drop path there, as the reference's
# ``isinstance(op, Identity)``); at stride 2 they are real modules.
IDENTITY_OPS = frozenset({'skip_connect'})


def is_identity(name: str, stride: int) -> bool:
    """Whether op ``name`` at ``stride`` passes its input through unchanged."""
    return name in IDENTITY_OPS and stride == 1
