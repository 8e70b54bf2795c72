"""The hand-designed comparison network: a small CIFAR-style ResNet (He et al., "Deep
Residual Learning for Image Recognition", CVPR 2016, section 4.2) with its widths chosen to
match a NAS network's parameter count.

Stem conv 3x3 + BN + ReLU, three stages of basic blocks (two 3x3 convs with BN, identity
shortcut, or a 1x1 conv + BN shortcut where the shape changes), stride 2 at the start of
stages 2 and 3, global average pool, linear classifier. Convs have no bias, BN is affine.

Width matching (:func:`match_widths`): the stage widths ``(w1, w2, w3)`` are searched on
integers near the ratio 1 : 2 : 4 (each within ``ratio_slack`` of ``w1 * (1, 2, 4)``) for
the count closest to the target, using the closed-form count :func:`param_count` (checked
against the built module in the tests). Three free widths give a fine grid, so even a
network of a few ten thousand parameters is matched within a fraction of a percent.

Called like the evaluation networks: ``apply(variables, x, train=..., drop_prob=...) ->
(logits, None)`` (no auxiliary head; ``drop_prob`` is ignored).
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnas.errors import JaxnasError
from jaxnas.nn import classifier
from jaxnas.ops.eval_forms import Conv, batch_norm


class BaselineError(JaxnasError):
    """A baseline that cannot be built or matched (one line)."""


class BasicBlock(nn.Module):
    features: int
    stride: int

    @nn.compact
    def __call__(self, x, train: bool):
        y = Conv(self.features, 3, self.stride, 1)(x)
        y = jax.nn.relu(batch_norm(self.features)(y, train))
        y = Conv(self.features, 3, 1, 1)(y)
        y = batch_norm(self.features)(y, train)
        if self.stride != 1 or x.shape[-1] != self.features:
            x = Conv(self.features, 1, self.stride)(x)
            x = batch_norm(self.features)(x, train)
        return jax.nn.relu(x + y)


class ResNet(nn.Module):
    """CIFAR-style ResNet: ``widths`` per stage, ``blocks`` basic blocks per stage."""
    widths: Sequence[int]
    blocks: Sequence[int]
    num_classes: int

    @nn.compact
    def __call__(self, x, train: bool = False, drop_prob=0.0):
        del drop_prob
        x = Conv(self.widths[0], 3, 1, 1, name='stem_conv')(x)
        x = jax.nn.relu(batch_norm(self.widths[0], name='stem_bn')(x, train))
        for s, (w, n) in enumerate(zip(self.widths, self.blocks)):
            for b in range(n):
                x = BasicBlock(w, 2 if (s > 0 and b == 0) else 1, name=f'stage{s + 1}_block{b + 1}')(x, train)
        logits = classifier(self.num_classes, x.shape[-1])(jnp.mean(x, axis=(1, 2)))
        return logits, None


def param_count(widths: Sequence[int], blocks: Sequence[int], in_channels: int, num_classes: int) -> int:
    """Trainable parameters of :class:`ResNet` in closed form."""
    total = 9 * in_channels * widths[0] + 2 * widths[0]
    prev = widths[0]
    for s, (w, n) in enumerate(zip(widths, blocks)):
        for b in range(n):
            stride = 2 if (s > 0 and b == 0) else 1
            total += 9 * prev * w + 2 * w + 9 * w * w + 2 * w
            if stride != 1 or prev != w:
                total += prev * w + 2 * w
            prev = w
    return total + prev * num_classes + num_classes


def match_widths(target: int, blocks: Sequence[int], in_channels: int, num_classes: int,
                 ratio_slack: float = 0.25) -> tuple:
    """``(widths, count)`` with the count closest to ``target`` (see the module docstring)."""
    if target <= 0:
        raise BaselineError(f'cannot match a baseline to {target} parameters')
    if len(blocks) != 3 or any(b < 1 for b in blocks):
        raise BaselineError(f'baseline blocks must be three positive numbers, got {tuple(blocks)}')
    best = None
    # w1 grows until even the narrowest (w2, w3) grid point overshoots by far.
    w1 = 1
    while True:
        lo = [max(1, int(w1 * r * (1 - ratio_slack))) for r in (2, 4)]
        if best is not None and param_count((w1, lo[0], lo[1]), blocks, in_channels, num_classes) > 2 * target:
            break
        for w2 in range(lo[0], int(w1 * 2 * (1 + ratio_slack)) + 1):
            for w3 in range(lo[1], int(w1 * 4 * (1 + ratio_slack)) + 1):
                n = param_count((w1, w2, w3), blocks, in_channels, num_classes)
                key = (abs(n - target), (w1, w2, w3))
                if best is None or key < best[0]:
                    best = (key, (w1, w2, w3), n)
        w1 += 1
        if w1 > 4096:
            break
    return best[1], best[2]


def make_baseline(target_params: int, *, blocks: Sequence[int], in_channels: int, num_classes: int,
                  tolerance: float = 0.05) -> tuple:
    """``(ResNet, info)`` matched to ``target_params`` within ``tolerance`` (relative)."""
    widths, n = match_widths(target_params, tuple(blocks), in_channels, num_classes)
    rel = (n - target_params) / target_params
    if abs(rel) > tolerance:
        raise BaselineError(f'the closest baseline ResNet has {n} parameters, {100 * rel:+.1f}% from the target '
                            f'{target_params}; change baseline.blocks or baseline.tolerance')
    info = {'widths': list(widths), 'blocks': list(blocks), 'params': n, 'target_params': int(target_params),
            'relative_difference': rel}
    return ResNet(tuple(widths), tuple(blocks), num_classes), info
