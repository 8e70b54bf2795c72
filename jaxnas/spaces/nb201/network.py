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

The search network's cells build their edges from :class:`jaxnas.ops.modes.MixedEdges`
(the execution modes written once for every space) over the op registry's NAS-Bench-201
entries (``space='nb201'``: ``nor_conv_kxk`` the ``nor_convs`` family, a bare
``avg_pool_3x3``) and the shared ``skip_connect`` / ``none``; the edges leaving one node
are one edge group (``N`` targets x 1 shared source). Modes:

- ``dense``: every op of every edge, weighted by ``mix['cell'][edge]`` and summed.
- ``single_path`` (GDAS): per edge only ``argmax(mix[e])`` runs (``lax.switch`` in a
  ``scan`` over the edges), scaled by ``mix[e, idx]`` so a straight-through one-hot mix
  sends gradients to every logit; the non-selected ops' weights are added as scalars
  (value 0, gradient 1; ``MixedEdges.straight_through_rest``), as AutoDL's NB201 GDAS
  cell, so an edge that samples ``none`` still gets an architecture gradient; only the
  selected op's BatchNorm statistics move.
- ``partial_channel`` (PC-DARTS): the first ``C / K`` channels of each edge go through
  the mixed op, the rest bypass it scaled by the edge's total weight ``mix[e].sum()``
  (PC-DARTS's code; the same rule as the DARTS space -- before the shared module the
  NB201 bypass was unscaled), then a channel shuffle with ``K`` groups. ``K = 1`` equals
  ``dense``. Edge normalisation is a relaxation concern (see ``nb201.EDGE_TARGETS``).
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
from jaxnas.nn import BatchNorm, pool, torch_uniform
from jaxnas.nn import cell_conv, conv
from jaxnas.ops.modes import MODES, MixedEdges
from jaxnas.spaces import nb201

CONV_KERNELS = {'nor_conv_1x1': 1, 'nor_conv_3x3': 3}


class NB201NetError(JaxnasError):
    """A NAS-Bench-201 network configuration that cannot be built."""


def avg_pool_2x2(x):
    """2x2 average pool with stride 2 (the residual block's shortcut)."""
    return lax.reduce_window(x, 0.0, lax.add, (1, 2, 2, 1), (1, 2, 2, 1), 'VALID') / 4.0


class SearchCell(nn.Module):
    """A NAS-Bench-201 search cell (``C`` channels); a scan body: ``(x, mix) -> (x', None)``.

    The edges leaving node ``s`` are one :class:`~jaxnas.ops.modes.MixedEdges` group
    (``edges_from_{s}``: its ``3 - s`` targets x the one source ``s``).
    """
    C: int
    primitives: Sequence[str]
    mode: str
    partial_channels: int
    train: bool

    @nn.compact
    def __call__(self, x, mix):
        nodes, acc = [x], {}
        for s in range(nb201.NUM_NODES - 1):
            targets = list(range(s + 1, nb201.NUM_NODES))
            rows = np.array([nb201.edge_index(t, s) for t in targets])
            y = MixedEdges(self.C, len(targets), 1, 1, tuple(self.primitives), space='nb201', mode=self.mode,
                           partial_channels=self.partial_channels, scan_edges=False, straight_through_rest=True,
                           name=f'edges_from_{s}')(
                nodes[s][None, None], mix[rows][:, None], self.train)
            for k, t in enumerate(targets):
                acc[t] = y[k] if t not in acc else acc[t] + y[k]
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
                w = self.param(f'src{s}_conv{k}x{k}', torch_uniform(k * k * self.C),
                               (k, k, self.C, len(ts) * self.C))
                y = BatchNorm((len(ts) * self.C,), affine=True, name=f'src{s}_bn{k}x{k}')(
                    cell_conv(jax.nn.relu(src), w), self.train)
                for i, t in enumerate(ts):
                    add(t, y[..., i * self.C:(i + 1) * self.C])
            if any(op == 'avg_pool_3x3' for _, op in edges):
                pooled = pool(src, 'avg', 1)
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
        wa = self.param('conv_a', torch_uniform(9 * self.C_in), (3, 3, self.C_in, self.C_out))
        wb = self.param('conv_b', torch_uniform(9 * self.C_out), (3, 3, self.C_out, self.C_out))
        wd = self.param('shortcut', torch_uniform(self.C_in), (1, 1, self.C_in, self.C_out))
        y = BatchNorm((self.C_out,), affine=True, name='bn_a')(conv(jax.nn.relu(x), wa, 2), train)
        y = BatchNorm((self.C_out,), affine=True, name='bn_b')(conv(jax.nn.relu(y), wb), train)
        return conv(avg_pool_2x2(x), wd) + y


def _scan(cell_cls, N: int, unroll: bool):
    return nn.scan(cell_cls, variable_axes={'params': 0, 'batch_stats': 0}, split_rngs={'params': True},
                   in_axes=(nn.broadcast,), length=N, unroll=N if unroll else 1)


def _macro(module, x, stage, train: bool):
    """The shared skeleton; ``stage(i, C, h)`` runs the ``N`` cells of stage ``i``."""
    C = module.C
    w = module.param('stem_conv', torch_uniform(9 * x.shape[-1]), (3, 3, x.shape[-1], C))
    h = BatchNorm((C,), affine=True, name='stem_bn')(conv(x, w), train)
    for i in range(3):
        if i:
            h = ResBlock(C // 2, C, name=f'reduce_{i}')(h, train)
        h = stage(i, C, h)
        C *= 2
    C //= 2
    h = jax.nn.relu(BatchNorm((C,), affine=True, name='last_bn')(h, train))
    pooled = jnp.mean(h, axis=(1, 2))
    return nn.Dense(module.num_classes, kernel_init=torch_uniform(C), bias_init=torch_uniform(C),
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
        try:
            ops.lookup(self.primitives, 'nb201')
        except JaxnasError as e:
            raise NB201NetError(f'NAS-Bench-201 search network: {e}') from None
        if not self.primitives:
            raise NB201NetError('NAS-Bench-201 search network: no primitives given')
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
