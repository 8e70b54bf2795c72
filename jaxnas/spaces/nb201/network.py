"""NAS-Bench-201 networks: the weight-sharing search network and the evaluation network.

Dong & Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural Architecture
Search", ICLR 2020. Macro skeleton: stem conv 3x3 (``C``) + BN; three stages of ``N``
cells with ``C``, ``2C``, ``4C`` channels, separated by a ResNet basic block with stride
2 (ReLU-conv3x3-BN twice, shortcut 2x2 average pool + 1x1 conv); BN-ReLU, global average
pool, linear. Cell ops: ``nor_conv_kxk`` = ReLU-Conv-BN, ``avg_pool_3x3`` (stride 1,
padding excluded from the average, no BN), ``skip_connect``, ``none``. Inputs are NHWC.

Init and BatchNorm follow PyTorch as :mod:`jaxnas.ops` (``torch_uniform``, momentum
0.1, eps 1e-5, unbiased running variance). Search cells use BN without affine
parameters; the stem, the residual blocks, the last BN and the evaluation cells use it
with affine parameters, as the benchmark's networks.

Compile time (DESIGN.md §2): the ``N`` cells of a stage have identical shapes, so each
stage is one ``nn.scan`` over its cells (one cell body per stage). Inside a cell, the
edges leaving one node share their input, so all 3x3 (1x1) convs of those edges run as
one convolution with the targets' kernels concatenated on the output channels, and
the average pool runs once per source node. On XLA:CPU the cell convs are im2col
matmuls (:func:`cell_conv`): a conv's backward inside the scan was ~25x slower.

:class:`NB201SearchNetwork` execution modes (same variables for ``dense`` and
``single_path``):

- ``dense``: every op of every edge, weighted by ``mix['cell'][edge]`` and summed.
- ``single_path`` (GDAS, Dong & Yang, CVPR 2019): per edge only ``argmax(mix[e])`` runs,
  through ``lax.switch`` (never under ``vmap``, where a switch runs every branch), and
  the edge outputs ``mix[e, idx] * op_idx(x)``: with a straight-through one-hot mix the
  gradient reaches every logit of the edge through ``mix[e, idx]``. Only the selected
  op's BatchNorm statistics are updated, as in the reference GDAS. An edge that selects
  `none` outputs zero and passes no gradient.
- ``partial_channel`` (PC-DARTS, Xu et al., ICLR 2020): on each edge only the first
  ``C / K`` channels go through the mixed op (ops built with ``C / K`` channels), the
  rest bypass it, then a channel shuffle with ``K`` groups. ``K = 1`` equals ``dense``.
  Edge normalisation is a relaxation concern (see ``nb201.EDGE_TARGETS``).
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxnas import ops
from jaxnas.costs import xla
from jaxnas.errors import JaxnasError
from jaxnas.spaces import nb201

MODES = ('dense', 'single_path', 'partial_channel')
CONV_KERNELS = {'nor_conv_1x1': 1, 'nor_conv_3x3': 3}
KNOWN_OPS = ('none', 'skip_connect', 'avg_pool_3x3') + tuple(CONV_KERNELS)


class NB201NetError(JaxnasError):
    """A NAS-Bench-201 network configuration that cannot be built."""


def conv(x, w, stride: int = 1):
    """PyTorch-style conv of ``x (B, H, W, Ci)`` with ``w (k, k, Ci, Co)``, padding ``k // 2``."""
    p = w.shape[0] // 2
    return lax.conv_general_dilated(x, w, (stride, stride), ((p, p), (p, p)),
                                    dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def cell_conv(x, w):
    """Stride-1 conv with padding ``k // 2`` as used inside the scanned cells.

    On XLA:CPU (jax 0.10.2) a ``conv_general_dilated`` inside a loop body (the cell scan)
    ran its backward pass about 25x slower than the same conv outside a loop (measured:
    0.39 s vs 0.016 s for a 16x32x32x16 -> 48 channel 3x3 conv); written as im2col -- the
    ``k * k`` shifted slices concatenated on channels, then one matmul -- it runs as fast
    as the plain conv, in or out of the loop. Other backends use the conv.
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


def avg_pool_2x2(x):
    """2x2 average pool with stride 2 (the residual block's shortcut)."""
    return lax.reduce_window(x, 0.0, lax.add, (1, 2, 2, 1), (1, 2, 2, 1), 'VALID') / 4.0


def channel_shuffle(x, groups: int):
    """PC-DARTS channel shuffle: ``(..., groups, C / groups)`` channels transposed."""
    C = x.shape[-1]
    return x.reshape(x.shape[:-1] + (groups, C // groups)).swapaxes(-1, -2).reshape(x.shape)


def batch_norm(x, stats, train: bool, momentum: float = 0.1, eps: float = 1e-5):
    """Affine-free BN of ``x (B, H, W, C)`` with stats ``(mean, var)``: ``(y, new_stats)``.

    The functional form of :class:`jaxnas.ops.BatchNorm` (same PyTorch semantics), for
    use inside ``lax.switch`` branches.
    """
    mean, var = stats
    if train:
        m = jnp.mean(x, (0, 1, 2))
        v = jnp.mean(jnp.square(x - m), (0, 1, 2))
        n = x.shape[0] * x.shape[1] * x.shape[2]
        stats = ((1 - momentum) * mean + momentum * lax.stop_gradient(m),
                 (1 - momentum) * var + momentum * lax.stop_gradient(v) * n / max(n - 1, 1))
        mean, var = m, v
    return (x - mean) * lax.rsqrt(var + eps), stats


def _check_primitives(primitives):
    unknown = [p for p in primitives if p not in KNOWN_OPS]
    if unknown or not primitives:
        raise NB201NetError(f"NAS-Bench-201 networks cannot build op(s) {', '.join(unknown) or '(none given)'}; "
                            f"known ops: {', '.join(KNOWN_OPS)}")


class MixedEdges(nn.Module):
    """The mixed edges from one source node to ``n`` target nodes, ``C`` channels each.

    ``x (B, H, W, C)``, ``mix (n, P)`` -> ``(n, B, H, W, C)``. Conv kernels of the ``n``
    edges are stored concatenated on the output channels (``(k, k, C, n * C)``) with
    one BN statistics vector per conv kind, so ``dense`` runs one convolution per kind.
    """
    C: int
    n: int
    primitives: Sequence[str]
    single_path: bool = False

    @nn.compact
    def __call__(self, x, mix, train: bool):
        C, n = self.C, self.n
        convs = {}
        for name, k in CONV_KERNELS.items():
            if name in self.primitives:
                w = self.param(f'conv{k}x{k}', ops.torch_uniform(k * k * C), (k, k, C, n * C))
                mean = self.variable('batch_stats', f'bn{k}x{k}_mean', jnp.zeros, (n * C,), jnp.float32)
                var = self.variable('batch_stats', f'bn{k}x{k}_var', jnp.ones, (n * C,), jnp.float32)
                convs[name] = (w, mean, var)
        update = train and not self.is_initializing()
        if self.single_path and not self.is_initializing():
            return self._single_path(x, mix, train, convs, update)
        h = jax.nn.relu(x)
        total = jnp.zeros((n,) + x.shape, x.dtype)
        for p, name in enumerate(self.primitives):
            if name == 'none':
                continue
            if name in convs:
                w, mean, var = convs[name]
                y, stats = batch_norm(cell_conv(h, w), (mean.value, var.value), train)
                if update:
                    mean.value, var.value = stats
                y = jnp.moveaxis(y.reshape(x.shape[:-1] + (n, C)), -2, 0)
            elif name == 'skip_connect':
                y = x[None]
            else:  # avg_pool_3x3: parameter-free, computed once for all targets
                y = ops.pool(x, 'avg', 1)[None]
            total = total + mix[:, p].reshape(n, 1, 1, 1, 1) * y
        return total

    def _single_path(self, x, mix, train, convs, update):
        C = self.C
        names = list(self.primitives)

        def branch(name):
            def run(x, kernels, stats):
                if name == 'none':
                    return jnp.zeros_like(x), stats
                if name == 'skip_connect':
                    return x, stats
                if name == 'avg_pool_3x3':
                    return ops.pool(x, 'avg', 1), stats
                y, new = batch_norm(cell_conv(jax.nn.relu(x), kernels[name]), stats[name], train)
                return y, {**stats, name: new}
            return run

        branches = [branch(name) for name in names]
        outs = []
        for t in range(self.n):
            cut = slice(t * C, (t + 1) * C)
            kernels = {name: w[..., cut] for name, (w, _, _) in convs.items()}
            stats = {name: (mean.value[cut], var.value[cut]) for name, (_, mean, var) in convs.items()}
            idx = jnp.argmax(mix[t])
            y, stats = lax.switch(idx, branches, x, kernels, stats)
            if update:
                for name, (_, mean, var) in convs.items():
                    mean.value = mean.value.at[cut].set(stats[name][0])
                    var.value = var.value.at[cut].set(stats[name][1])
            outs.append(mix[t, idx] * y)
        return jnp.stack(outs)


class SearchCell(nn.Module):
    """A NAS-Bench-201 search cell (``C`` channels); a scan body: ``(x, mix) -> (x', None)``."""
    C: int
    primitives: Sequence[str]
    mode: str
    partial_channels: int
    train: bool

    @nn.compact
    def __call__(self, x, mix):
        K = self.partial_channels if self.mode == 'partial_channel' else 1
        Cp = self.C // K
        nodes, acc = [x], {}
        for s in range(nb201.NUM_NODES - 1):
            targets = list(range(s + 1, nb201.NUM_NODES))
            rows = np.array([nb201.edge_index(t, s) for t in targets])
            src = nodes[s]
            y = MixedEdges(Cp, len(targets), tuple(self.primitives), self.mode == 'single_path',
                           name=f'edges_from_{s}')(src[..., :Cp], mix[rows], self.train)
            for k, t in enumerate(targets):
                out = y[k]
                if K > 1:
                    out = channel_shuffle(jnp.concatenate([out, src[..., Cp:]], axis=-1), K)
                acc[t] = out if t not in acc else acc[t] + out
            nodes.append(acc[s + 1])
        return nodes[-1], None


class InferCell(nn.Module):
    """A fixed NAS-Bench-201 cell with ``C`` channels (affine BN); a scan body."""
    C: int
    genotype: tuple
    train: bool

    @nn.compact
    def __call__(self, x, _=None):
        g = self.genotype
        nodes, acc = [x], {}

        def add(t, y):
            acc[t] = y if t not in acc else acc[t] + y

        for s in range(nb201.NUM_NODES - 1):
            src = nodes[s]
            edges = [(t, g[nb201.edge_index(t, s)]) for t in range(s + 1, nb201.NUM_NODES)]
            for name, k in CONV_KERNELS.items():
                ts = [t for t, op in edges if op == name]
                if not ts:
                    continue
                w = self.param(f'src{s}_conv{k}x{k}', ops.torch_uniform(k * k * self.C),
                               (k, k, self.C, len(ts) * self.C))
                y = ops.BatchNorm((len(ts) * self.C,), affine=True, name=f'src{s}_bn{k}x{k}')(
                    cell_conv(jax.nn.relu(src), w), self.train)
                for i, t in enumerate(ts):
                    add(t, y[..., i * self.C:(i + 1) * self.C])
            if any(op == 'avg_pool_3x3' for _, op in edges):
                pooled = ops.pool(src, 'avg', 1)
            for t, op in edges:
                if op == 'skip_connect':
                    add(t, src)
                elif op == 'avg_pool_3x3':
                    add(t, pooled)
            nodes.append(acc.get(s + 1, jnp.zeros_like(x)))
        return nodes[-1], None


class ResBlock(nn.Module):
    """ResNet basic block with stride 2: ReLU-Conv3x3-BN twice; shortcut avg pool 2x2 + conv 1x1."""
    C_in: int
    C_out: int

    @nn.compact
    def __call__(self, x, train: bool):
        wa = self.param('conv_a', ops.torch_uniform(9 * self.C_in), (3, 3, self.C_in, self.C_out))
        wb = self.param('conv_b', ops.torch_uniform(9 * self.C_out), (3, 3, self.C_out, self.C_out))
        wd = self.param('shortcut', ops.torch_uniform(self.C_in), (1, 1, self.C_in, self.C_out))
        y = ops.BatchNorm((self.C_out,), affine=True, name='bn_a')(conv(jax.nn.relu(x), wa, 2), train)
        y = ops.BatchNorm((self.C_out,), affine=True, name='bn_b')(conv(jax.nn.relu(y), wb), train)
        return conv(avg_pool_2x2(x), wd) + y


def _scan(cell_cls, N: int, unroll: bool):
    return nn.scan(cell_cls, variable_axes={'params': 0, 'batch_stats': 0}, split_rngs={'params': True},
                   in_axes=(nn.broadcast,), length=N, unroll=N if unroll else 1)


def _macro(module, x, stage, train: bool):
    """The shared skeleton; ``stage(i, C, h)`` runs the ``N`` cells of stage ``i``."""
    C = module.C
    w = module.param('stem_conv', ops.torch_uniform(9 * x.shape[-1]), (3, 3, x.shape[-1], C))
    h = ops.BatchNorm((C,), affine=True, name='stem_bn')(conv(x, w), train)
    for i in range(3):
        if i:
            h = ResBlock(C // 2, C, name=f'reduce_{i}')(h, train)
        h = stage(i, C, h)
        C *= 2
    C //= 2
    h = jax.nn.relu(ops.BatchNorm((C,), affine=True, name='last_bn')(h, train))
    pooled = jnp.mean(h, axis=(1, 2))
    return nn.Dense(module.num_classes, kernel_init=ops.torch_uniform(C), bias_init=ops.torch_uniform(C),
                    name='classifier')(pooled)


class NB201SearchNetwork(nn.Module):
    """The weight-sharing network: ``apply(variables, x, mix, train=...)``, ``mix = {'cell': (6, P)}``.

    ``unroll`` unrolls the scan over each stage's cells (same variables; a longer
    compile, but XLA's cost analysis, which counts a loop body once, sees every cell).
    """
    C: int = 16
    N: int = 5
    num_classes: int = 10
    primitives: Sequence[str] = nb201.PRIMITIVES
    mode: str = 'dense'
    partial_channels: int = 4
    unroll: bool = False

    @nn.compact
    def __call__(self, x, mix, train: bool = True):
        _check_primitives(self.primitives)
        if self.mode not in MODES:
            raise NB201NetError(f"unknown execution mode {self.mode!r}; choose one of {', '.join(MODES)}")
        K = self.partial_channels
        if self.mode == 'partial_channel' and (K < 1 or self.C % K):
            raise NB201NetError(f'partial_channels={K} must be a positive divisor of C={self.C}')
        cell_mix = mix['cell']
        if cell_mix.shape != (nb201.NUM_EDGES, len(self.primitives)):
            raise NB201NetError(f"mix['cell'] has shape {cell_mix.shape}, expected "
                                f'{(nb201.NUM_EDGES, len(self.primitives))} (6 edges x {len(self.primitives)} ops)')

        def stage(i, C, h):
            cells = _scan(SearchCell, self.N, self.unroll)
            return cells(C, tuple(self.primitives), self.mode, K, train, name=f'stage_{i}')(h, cell_mix)[0]
        return _macro(self, x, stage, train)


class NB201Network(nn.Module):
    """The evaluation network of a fixed cell (genotype, architecture string or index);
    ``apply(variables, x, train=...)``. ``unroll`` as in :class:`NB201SearchNetwork`."""
    genotype: Any
    C: int = 16
    N: int = 5
    num_classes: int = 10
    unroll: bool = False

    @nn.compact
    def __call__(self, x, train: bool = True):
        g = tuple(nb201.resolve(self.genotype))

        def stage(i, C, h):
            return _scan(InferCell, self.N, self.unroll)(C, g, train, name=f'stage_{i}')(h, None)[0]
        return _macro(self, x, stage, train)


# --- cost: parameters and multiply-adds (counted by jaxnas.costs.xla) -----------------

def cost_info(genotype, num_classes: int = 10, image_size: int = 32, C: int = 16, N: int = 5,
              whole_program: bool = False) -> dict:
    """Parameters and multiply-adds of the evaluation network at batch 1, inference.

    ``macs`` follows the benchmark's counter (NATS-Bench "flops"): conv and linear
    multiply-adds with padding taps (:func:`jaxnas.costs.xla.conv_linear_macs`) plus one
    per classifier output for the bias. ``xla_conv_macs``: the same as XLA counts them,
    padding taps left out. With ``whole_program``, ``xla_macs`` is the cost-analysis
    flops / 2 of the whole forward with the cell scans unrolled
    (:func:`jaxnas.costs.xla.unroll_scans`; one more compile), and ``xla_other`` its part
    that is not conv/linear (BN, ReLU, pooling, adds).
    """
    x = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
    net = NB201Network(genotype, C, N, num_classes)
    variables = jax.eval_shape(functools.partial(net.init, train=False), jax.random.key(0), x)

    def forward(v, x):
        return net.apply(v, x, train=False)

    info = {
        'params': xla.count_params(variables['params']),
        'macs': round(xla.conv_linear_macs(forward, variables, x)) + num_classes,
        'xla_conv_macs': round(xla.conv_linear_macs(forward, variables, x, count_padding=False)),
    }
    if whole_program:
        info['xla_macs'] = xla.xla_flops(forward, variables, x, unroll=True) / 2
        info['xla_other'] = info['xla_macs'] - info['xla_conv_macs']
    return info
