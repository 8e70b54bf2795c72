"""DARTS evaluation networks built from a genotype (Liu et al., "DARTS: Differentiable
Architecture Search", ICLR 2019; macro structure of the public code quark0/darts, which
follows NASNet, Zoph et al., CVPR 2018).

:class:`NetworkCIFAR`: stem conv 3x3 (``stem_multiplier * C`` channels) + BN, ``layers``
cells with reductions at ``layers // 3`` and ``2 * layers // 3`` (channels doubled, edges
from the two cell inputs strided), an auxiliary head on the output of the second
reduction cell, global average pool and a linear classifier.
:class:`NetworkImageNet`: the mobile setting, with its two-part stride-8 stem.

Cells follow the reference ``model.Cell`` for genotypes of any node count and any concat
(NASNet and AmoebaNet of the reference ``genotypes.py`` included): node ``k`` sums the ops
of the ``k``-th two ``(op, input)`` pairs, a reduction cell strides the edges from its two
inputs, and a cell's output has ``len(concat) * C`` channels. Each edge is
``jaxnas.ops.eval_forms.EVAL_FORMS[op](C, stride)``, the full reference op vocabulary.

Differences from the search network (:mod:`jaxnas.spaces.darts.supernet`): one op per
edge, BatchNorm with affine parameters, pools without a BatchNorm after them, and drop
path (per-example dropping of a whole op output, scaled by ``1 / keep``) on every edge
that is not an identity. ``drop_prob`` is a call argument, so the linear ramp over epochs
never recompiles.

Every module is called as ``apply(variables, x, train=..., drop_prob=..., rngs={'drop_path':
key}) -> (logits, aux_logits)`` with ``aux_logits`` ``None`` when there is no auxiliary
head or in inference mode; :mod:`jaxnas.baseline` uses the same contract.

Compile time (DESIGN.md §2): consecutive cells with identical shapes (the normal cells
inside a stage after the first two) run as one ``nn.scan``, so XLA compiles one cell body
per stage. Dense convolutions are written as im2col matmuls, so a ``vmap`` over seeds
(:mod:`jaxnas.retrain`) stays a batched matmul instead of becoming a grouped convolution,
which is slow on XLA:CPU.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxnas.errors import JaxnasError
from jaxnas.nn import classifier
from jaxnas.ops.eval_forms import (EVAL_FORMS, Conv, FactorizedReduce, ReLUConvBN, batch_norm,
                                   is_identity)
from jaxnas.spaces import darts


class NetworkError(JaxnasError):
    """An evaluation network that cannot be built (one line)."""


def drop_path(x, drop_prob, key):
    """Zero whole examples with probability ``drop_prob``, scale the rest by ``1/keep``."""
    keep = 1.0 - jnp.asarray(drop_prob, jnp.float32)
    mask = jax.random.bernoulli(key, keep, (x.shape[0],) + (1,) * (x.ndim - 1))
    return x * (mask / keep).astype(x.dtype)


# ----------------------------------------------------------------------------------------
# Cells
# ----------------------------------------------------------------------------------------

class CellSpec(NamedTuple):
    """Everything that fixes a cell's shapes; cells with equal specs can share a scan."""
    C_pp: int
    C_p: int
    C: int
    reduction: bool
    reduction_prev: bool


class EvalCell(nn.Module):
    """One discrete DARTS cell of any node count, as the reference ``model.Cell``: node
    ``k`` = op1(state j1) + op2(state j2) for the ``k``-th two ``(op, input)`` pairs of
    ``gene``; edges from the two cell inputs are strided in a reduction cell; the output
    is the channel concatenation of the ``concat`` states (``len(concat) * C`` channels).
    Every edge is built through :data:`jaxnas.ops.eval_forms.EVAL_FORMS`."""
    gene: tuple
    concat: tuple
    spec: CellSpec

    @nn.compact
    def __call__(self, s0, s1, drop_prob, train: bool):
        sp = self.spec
        C = sp.C
        if sp.reduction_prev:
            s0 = FactorizedReduce(sp.C_pp, C)(s0, train)
        else:
            s0 = ReLUConvBN(sp.C_pp, C)(s0, train)
        s1 = ReLUConvBN(sp.C_p, C)(s1, train)
        states = [s0, s1]
        dropping = train and not self.is_initializing() and not (isinstance(drop_prob, (int, float)) and drop_prob == 0)
        for i in range(len(self.gene) // 2):
            node = None
            for name, j in self.gene[2 * i:2 * i + 2]:
                stride = 2 if sp.reduction and j < darts.NUM_INPUTS else 1
                if name not in EVAL_FORMS:
                    raise NetworkError(f"genotype op {name!r} has no evaluation-network module; ops with one: "
                                       f"{', '.join(EVAL_FORMS)}")
                h = EVAL_FORMS[name](C, stride)(states[j], train)
                if dropping and not is_identity(name, stride):
                    h = drop_path(h, drop_prob, self.make_rng('drop_path'))
                node = h if node is None else node + h
            states.append(node)
        return jnp.concatenate([states[c] for c in self.concat], axis=-1)


class _ScannedCell(nn.Module):
    gene: tuple
    concat: tuple
    spec: CellSpec
    train: bool

    @nn.compact
    def __call__(self, carry, drop_prob):
        s0, s1 = carry
        out = EvalCell(self.gene, self.concat, self.spec, name='cell')(s0, s1, drop_prob, self.train)
        return (s1, out), None


def cell_specs(genotype: darts.Genotype, C: int, layers: int, C_stem: int, reduction_prev: bool):
    """Per cell ``(CellSpec, gene, concat)``, the channels after the aux cell and the last."""
    C_pp, C_p, C_curr = C_stem, C_stem, C
    reductions = reduction_layers(layers)
    out, C_aux = [], None
    for i in range(layers):
        reduction = i in reductions
        if reduction:
            C_curr *= 2
        cell = genotype.reduce if reduction else genotype.normal
        concat = genotype.reduce_concat if reduction else genotype.normal_concat
        out.append((CellSpec(C_pp, C_p, C_curr, reduction, reduction_prev), tuple(cell), tuple(concat)))
        reduction_prev = reduction
        C_pp, C_p = C_p, len(concat) * C_curr
        if i == reductions[1]:
            C_aux = C_p
    return out, C_aux, C_p


def reduction_layers(layers: int) -> tuple:
    return (layers // 3, 2 * layers // 3)


def runs_of_equal_cells(specs) -> list:
    """Split cell indices into maximal runs of equal ``(spec, gene, concat)``."""
    runs = []
    for i, s in enumerate(specs):
        if runs and specs[runs[-1][0]] == s:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


class CellStack(nn.Module):
    """The cells of an evaluation network; returns ``(last output, aux-head input)``.

    A run of equal cells is one ``nn.scan`` (one compiled cell body); the cell that feeds
    the auxiliary head (the second reduction) is always alone in its run.
    """
    genotype: darts.Genotype
    C: int
    layers: int
    C_stem: int
    reduction_prev: bool = False

    @nn.compact
    def __call__(self, s0, s1, drop_prob, train: bool):
        specs, _, _ = cell_specs(self.genotype, self.C, self.layers, self.C_stem, self.reduction_prev)
        aux_index = reduction_layers(self.layers)[1]
        aux_input = None
        for run in runs_of_equal_cells(specs):
            spec, gene, concat = specs[run[0]]
            if len(run) == 1:
                cell = EvalCell(gene, concat, spec, name=f'cell_{run[0]}')
                s0, s1 = s1, cell(s0, s1, drop_prob, train)
            else:
                scan = nn.scan(_ScannedCell, variable_axes={'params': 0, 'batch_stats': 0},
                               split_rngs={'params': True, 'drop_path': True},
                               in_axes=nn.broadcast, length=len(run))
                (s0, s1), _ = scan(gene, concat, spec, train, name=f'cells_{run[0]}_{run[-1]}')((s0, s1), drop_prob)
            if run[-1] == aux_index:
                aux_input = s1
        return s1, aux_input


# ----------------------------------------------------------------------------------------
# Auxiliary heads
# ----------------------------------------------------------------------------------------

class AuxiliaryHead(nn.Module):
    """ReLU, avg pool 5x5 (stride 3 CIFAR, 2 ImageNet), conv1x1 -> ``channels[0]``, BN,
    ReLU, conv2x2 -> ``channels[1]``, [BN,] ReLU, linear (the reference's heads).

    The reference assumes an 8x8 (CIFAR) or 14x14 (ImageNet) input. For inputs smaller
    than the 5x5 window (e.g. 8x8 digits, 2x2 after two reductions) the pool is sized to
    leave a 2x2 map for the 2x2 conv, so the head has the same parameters at any size.
    The ImageNet head has no BN after the 2x2 conv: the paper's experiments ran without
    it (a note in the reference code).
    """
    num_classes: int
    channels: Sequence[int] = (128, 768)
    stride: int = 3
    final_bn: bool = True

    @nn.compact
    def __call__(self, x, train: bool):
        c1, c2 = self.channels
        x = jax.nn.relu(x)
        H = x.shape[1]
        window, stride = (5, self.stride) if H >= 5 else (max(H - 1, 1), 1)
        x = lax.reduce_window(x, 0.0, lax.add, (1, window, window, 1), (1, stride, stride, 1), 'VALID')
        x = x / (window * window)
        x = Conv(c1, 1)(x)
        x = jax.nn.relu(batch_norm(c1)(x, train))
        if x.shape[1] < 2:
            x = jnp.pad(x, ((0, 0), (0, 2 - x.shape[1]), (0, 2 - x.shape[2]), (0, 0)))
        x = Conv(c2, 2)(x)
        if self.final_bn:
            x = batch_norm(c2)(x, train)
        x = jnp.mean(jax.nn.relu(x), axis=(1, 2))
        return classifier(self.num_classes, c2)(x)


# ----------------------------------------------------------------------------------------
# Networks
# ----------------------------------------------------------------------------------------

class _Network(nn.Module):
    """Fields and output heads shared by the two evaluation networks."""
    genotype: darts.Genotype
    C: int
    num_classes: int
    layers: int
    auxiliary: bool = True
    aux_channels: Sequence[int] = (128, 768)

    def heads(self, out, aux_input, train: bool, aux_stride: int, aux_final_bn: bool):
        """``(logits, aux_logits)``: global average pool + linear, and the auxiliary head
        on the second reduction cell's output (training and init only)."""
        aux = None
        if self.auxiliary and (train or self.is_initializing()):
            aux = AuxiliaryHead(self.num_classes, tuple(self.aux_channels), stride=aux_stride,
                                final_bn=aux_final_bn, name='aux_head')(aux_input, train)
        logits = classifier(self.num_classes, out.shape[-1])(jnp.mean(out, axis=(1, 2)))
        return logits, aux


class NetworkCIFAR(_Network):
    """The DARTS CIFAR evaluation network (C=36, 20 cells in the paper)."""
    stem_multiplier: int = 3

    @nn.compact
    def __call__(self, x, train: bool = False, drop_prob=0.0):
        C_stem = self.stem_multiplier * self.C
        s = Conv(C_stem, 3, padding=1, name='stem_conv')(x)
        s = batch_norm(C_stem, name='stem_bn')(s, train)
        s1, aux_input = CellStack(self.genotype, self.C, self.layers, C_stem, name='cells')(s, s, drop_prob, train)
        return self.heads(s1, aux_input, train, aux_stride=3, aux_final_bn=True)


class NetworkImageNet(_Network):
    """The DARTS ImageNet mobile network (C=48, 14 cells): stride-8 stem of three 3x3 convs."""

    @nn.compact
    def __call__(self, x, train: bool = False, drop_prob=0.0):
        C = self.C
        s0 = Conv(C // 2, 3, stride=2, padding=1, name='stem0_conv1')(x)
        s0 = jax.nn.relu(batch_norm(C // 2, name='stem0_bn1')(s0, train))
        s0 = Conv(C, 3, stride=2, padding=1, name='stem0_conv2')(s0)
        s0 = batch_norm(C, name='stem0_bn2')(s0, train)
        s1 = Conv(C, 3, stride=2, padding=1, name='stem1_conv')(jax.nn.relu(s0))
        s1 = batch_norm(C, name='stem1_bn')(s1, train)
        out, aux_input = CellStack(self.genotype, C, self.layers, C, reduction_prev=True, name='cells')(
            s0, s1, drop_prob, train)
        return self.heads(out, aux_input, train, aux_stride=2, aux_final_bn=False)


NETWORKS = {'cifar': NetworkCIFAR, 'imagenet': NetworkImageNet}


def make_network(genotype: darts.Genotype, *, network: str = 'cifar', C: int, num_classes: int, layers: int,
                 auxiliary: bool = True, aux_channels=(128, 768)) -> nn.Module:
    """The evaluation network ``network`` (``cifar`` | ``imagenet``) of a DARTS genotype."""
    darts.validate(genotype)
    if network not in NETWORKS:
        raise NetworkError(f"unknown evaluation network {network!r}; choose one of {', '.join(NETWORKS)}")
    if layers < 3:
        raise NetworkError(f'an evaluation network needs >= 3 cells (two reductions and a normal one), got {layers}')
    return NETWORKS[network](genotype, C, num_classes, layers, auxiliary, tuple(aux_channels))



