"""The evaluation network of an MBConv genotype: the mobile macro with one op per layer.

Stem (3x3 conv, affine BN, ReLU6), the genotype's layers stage by stage
(:class:`MBConvBlock` or the identity), head (1x1 conv, affine BN, ReLU6), global average
pool, linear classifier. The macro's widths and strides come from the ``retrain.mbconv``
config section, the layers per stage from the genotype. Convs have no bias and
PyTorch's default init; BatchNorm has PyTorch semantics with affine parameters.

Drop path (per-example dropping of the residual branch, scaled by ``1 / keep``; the
"drop connect" of EfficientNet) applies to every MBConv block with a residual; blocks
that change the shape and the identity layers are never dropped. ``drop_prob`` is a call
argument, so the retraining ramp never recompiles.

Contract: ``apply(variables, x, train=..., drop_prob=..., rngs={'drop_path': key}) ->
(logits, None)`` (no auxiliary head).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnas.nn import torch_uniform
from jaxnas.ops.eval_forms import Conv, batch_norm, depthwise_conv
from jaxnas.spaces.mbconv import genotype as G
from jaxnas.spaces.mbconv import macro as M


def drop_path(x, drop_prob, key):
    """Zero whole examples with probability ``drop_prob``, scale the rest by ``1/keep``."""
    keep = 1.0 - jnp.asarray(drop_prob, jnp.float32)
    mask = jax.random.bernoulli(key, keep, (x.shape[0],) + (1,) * (x.ndim - 1))
    return x * (mask / keep).astype(x.dtype)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand to ``e * C_in`` + BN + ReLU6, depthwise ``k x k``
    (stride) + BN + ReLU6, 1x1 project to ``C_out`` + BN, plus the input when the shapes
    match (the residual branch drop-pathed in training)."""
    C_in: int
    C_out: int
    k: int
    e: int
    stride: int

    @nn.compact
    def __call__(self, x, train: bool, drop_prob=0.0):
        hidden = self.e * self.C_in
        h = jax.nn.relu6(batch_norm(hidden, 'expand_bn')(Conv(hidden, 1, name='expand')(x), train))
        dw = self.param('depthwise', torch_uniform(self.k * self.k), (self.k, self.k, hidden))
        h = jax.nn.relu6(batch_norm(hidden, 'depthwise_bn')(depthwise_conv(h, dw, self.stride), train))
        y = batch_norm(self.C_out, 'project_bn')(Conv(self.C_out, 1, name='project')(h), train)
        if self.stride == 1 and self.C_in == self.C_out:
            if train:
                y = drop_path(y, drop_prob, self.make_rng('drop_path'))
            y = x + y
        return y


class MBConvNetwork(nn.Module):
    genotype: G.Genotype
    macro: M.Macro
    num_classes: int

    @nn.compact
    def __call__(self, x, train: bool = False, drop_prob=0.0):
        m = self.macro
        h = Conv(m.stem_channels, 3, m.stem_stride, 1, name='stem')(x)
        h = jax.nn.relu6(batch_norm(m.stem_channels, 'stem_bn')(h, train))
        shapes = M.plan(m, self.genotype.layers, x.shape[1:3])
        for shape, op in zip(shapes, self.genotype.ops):
            spec = G.op_spec(op)
            if spec is None:
                continue   # the identity: validation keeps it off shape-changing layers
            h = MBConvBlock(shape.c_in, shape.c_out, *spec, shape.stride,
                            name=f'stage{shape.stage}_layer{shape.index}')(h, train, drop_prob)
        h = Conv(m.head_channels, 1, name='head')(h)
        h = jax.nn.relu6(batch_norm(m.head_channels, 'head_bn')(h, train))
        pooled = jnp.mean(h, axis=(1, 2))
        logits = nn.Dense(self.num_classes, kernel_init=torch_uniform(m.head_channels),
                          bias_init=torch_uniform(m.head_channels), name='classifier')(pooled)
        return logits, None


def make_network(genotype: G.Genotype, macro: M.Macro, num_classes: int) -> MBConvNetwork:
    G.validate(genotype)
    if len(genotype.layers) != len(macro.widths):
        raise G.GenotypeError(f'genotype {genotype} has {len(genotype.layers)} stages; the macro '
                              f'(retrain.mbconv) has {len(macro.widths)} widths: give one width and stride per stage')
    return MBConvNetwork(genotype, macro, num_classes)

