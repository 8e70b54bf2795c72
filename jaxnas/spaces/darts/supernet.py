"""The DARTS search network; the mixing weights are a call argument, never module state.

``SearchNetwork(...).apply(variables, x, mix, train=...)`` with ``mix = {'normal': (14, P),
'reduce': (14, P)}``. Macro structure as in the reference code: stem conv 3x3 with
``stem_multiplier * C`` channels + BatchNorm, ``layers`` cells with reductions at
``layers // 3`` and ``2 * layers // 3`` (channels doubled), input 0 of the cell after a
reduction preprocessed by FactorizedReduce (otherwise ReLU-Conv1x1-BN), cell output the
concatenation of the 4 intermediate nodes, global average pool, linear classifier.

Compile time shapes the layout (see DESIGN.md §2). The 14 mixed edges of a cell run as
two batched programs: the 8 edges leaving the two cell inputs at once
(:class:`MixedEdges` with 4 targets x 2 sources), then the 6 edges between intermediate
nodes as a ``scan`` over 3 stages of 2 edges each (:data:`NODE_STAGES`), ordered so
that every stage only reads finished nodes. Inside a mixed op, all conv primitives and
all pool primitives run stacked (:class:`ConvFamily`, :class:`PoolFamily`). XLA thus
compiles 2 mixed-op bodies per cell instead of 14 x 7 op instances.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxnas import ops
from jaxnas.errors import JaxnasError
from jaxnas.spaces import darts


# Rows of the (14, P) mix for the input edges, as (target node, source input).
INPUT_ROWS = np.array([[darts.edge_index(t, j) for j in range(darts.NUM_INPUTS)]
                       for t in range(darts.NUM_NODES)])
# Edges between intermediate nodes, as (source node, target node) pairs, in stages of two:
# stage t only reads nodes that all their incoming edges have reached by then.
NODE_STAGES = (((0, 1), (0, 2)), ((1, 2), (1, 3)), ((0, 3), (2, 3)))
NODE_STAGE_ROWS = np.array([[darts.edge_index(t, darts.NUM_INPUTS + s) for s, t in stage]
                            for stage in NODE_STAGES])
assert sorted(NODE_STAGE_ROWS.ravel().tolist() + INPUT_ROWS.ravel().tolist()) == list(range(darts.NUM_EDGES))


class ConvFamily(nn.Module):
    """All conv primitives of a mixed op, stacked on a leading op axis.

    Each primitive is ``blocks`` x (ReLU, depthwise, pointwise, BN) (see
    :data:`jaxnas.ops.CONV_SPECS`). Depthwise kernels of one size share one tap loop,
    pointwise convs and BatchNorms of all ops run as one batched computation, so the
    mixed op costs XLA a handful of kernels instead of one set per primitive.
    Input ``(S, B, H, W, C)``; output ``(O, N, S, B, H', W', C)`` in ``names`` order.
    """
    C: int
    N: int
    S: int
    stride: int
    names: Sequence[str]

    def _block(self, h, specs, stride, tag, per_op_input, train):
        N, S, C, O = self.N, self.S, self.C, len(specs)
        ks = sorted({sp.k for sp in specs})
        groups = [[i for i, sp in enumerate(specs) if sp.k == k] for k in ks]
        weights = [self.param(f'{tag}_depthwise_{k}x{k}', ops.torch_uniform(k * k), (len(g), N, S, k, k, C))
                   for k, g in zip(ks, groups)]
        pw = self.param(f'{tag}_pointwise', ops.torch_uniform(C), (O, N, S, C, C))
        bn = ops.BatchNorm((O, N, S, C), name=f'{tag}_bn')
        Ho = ops.out_size(h.shape[-3], 3, stride, 1)
        Wo = ops.out_size(h.shape[-2], 3, stride, 1)
        if self.is_initializing():
            bn(h, train)
            return jnp.zeros((O, N, S, h.shape[-4], Ho, Wo, C), h.dtype)
        parts = []
        for k, g, w in zip(ks, groups, weights):
            x = h[np.array(g)] if per_op_input else h
            parts.append(ops.depthwise(x, w, k=k, stride=stride, dilations=[specs[i].dilation for i in g],
                                       per_op_input=per_op_input))
        y = parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=0)
        order = [i for g in groups for i in g]
        if order != list(range(O)):
            y = y[np.argsort(order)]
        y = jnp.einsum('onsbhwc,onscd->onsbhwd', y, pw)
        return bn(y, train)

    @nn.compact
    def __call__(self, x, train: bool):
        specs = [ops.CONV_SPECS[n] for n in self.names]
        y = self._block(jax.nn.relu(x), specs, self.stride, 'block1', False, train)
        second = [i for i, sp in enumerate(specs) if sp.blocks == 2]
        if not second:
            return y
        specs2 = [ops.ConvSpec(specs[i].k, 1, 1) for i in second]
        y2 = self._block(jax.nn.relu(y[np.array(second)]), specs2, 1, 'block2', True, train)
        if len(second) == len(specs):
            return y2
        first = [i for i in range(len(specs)) if i not in second]
        y = jnp.concatenate([y[np.array(first)], y2], axis=0)
        return y[np.argsort(first + second)]


class PoolFamily(nn.Module):
    """Max and average pools then an affine-free BN, stacked: ``(O, *lead, B, H', W', C)``.

    Parameter-free, so an input shared by several targets (lead axis of size 1) is
    pooled once and broadcast over the targets.
    """
    C: int
    stride: int
    names: Sequence[str]

    @nn.compact
    def __call__(self, x, train: bool):
        O = len(self.names)
        bn = ops.BatchNorm((O,) + x.shape[:-4] + (self.C,))
        if self.is_initializing():
            bn(x, train)
            Ho, Wo = ops.out_size(x.shape[-3], 3, self.stride, 1), ops.out_size(x.shape[-2], 3, self.stride, 1)
            return jnp.zeros((O,) + x.shape[:-3] + (Ho, Wo, self.C), x.dtype)
        y = jnp.stack([ops.pool(x, ops.POOL_KINDS[n], self.stride) for n in self.names])
        return bn(y, train)


class MixedEdges(nn.Module):
    """``N x S`` mixed edges: every primitive applied to ``S`` sources for ``N`` targets,
    weighted by ``mix (N, S, P)`` and summed over ops and sources -> ``(N, B, H', W', C)``.

    The input is ``(Nx, S, B, H, W, C)`` with ``Nx`` 1 (sources shared by all targets)
    or ``N`` (one input per edge).

    Execution modes (:data:`jaxnas.relax.MODES`):

    - ``dense``: conv and pool primitives run batched (:class:`ConvFamily`,
      :class:`PoolFamily`); any other registered op runs through its
      :data:`jaxnas.ops.OPS` module.
    - ``single_path``: on each edge only the op ``argmax(mix[n, s])`` runs (a
      ``lax.switch`` inside a ``scan`` over the edges), scaled by ``mix[n, s, argmax]``,
      so a straight-through one-hot mix (GDAS) still sends gradients to every logit.
      Same variables as ``dense``; only the chosen op's BatchNorm statistics move.
    - ``partial_channel`` (PC-DARTS): the first ``C / partial_channels`` channels go
      through the dense mixed op, the others bypass it (2x2 max-pooled on reduction
      edges) scaled by the edge's total weight, then channels are shuffled.
    """
    C: int
    N: int
    S: int
    stride: int
    primitives: Sequence[str] = darts.PRIMITIVES
    mode: str = 'dense'
    partial_channels: int = 1

    @nn.compact
    def __call__(self, x, mix, train: bool):
        if self.mode == 'partial_channel' and self.partial_channels > 1:
            return self._partial_channel(x, mix, train)
        if self.mode == 'single_path' and not self.is_initializing():
            return self._single_path(x, mix, train)
        return self._dense(x, mix, train, self.C)

    def _dense(self, x, mix, train, C):
        prims = list(self.primitives)
        convs = [p for p in prims if p in ops.CONV_SPECS]
        pools = [p for p in prims if p in ops.POOL_KINDS]
        outputs = []
        if convs:
            outputs.append((convs, ConvFamily(C, self.N, self.S, self.stride, convs, name='convs')(x, train)))
        if pools:
            outputs.append((pools, PoolFamily(C, self.stride, pools, name='pools')(x, train)))
        for name in prims:
            if name not in convs and name not in pools:
                y = ops.make_op(name, C, self.stride, self.N, self.S).clone(parent=self, name=name)(x, train)
                if y is not None:
                    outputs.append(([name], y[None]))
        total = None
        for names, y in outputs:
            m = jnp.moveaxis(mix[:, :, np.array([prims.index(n) for n in names])], -1, 0)
            term = (m.reshape(m.shape + (1, 1, 1, 1)) * y).sum(axis=0)
            total = term if total is None else total + term
        return total.sum(axis=1)

    def _partial_channel(self, x, mix, train):
        K, C = self.partial_channels, self.C
        Cp = C // K
        y = self._dense(x[..., :Cp], mix, train, Cp)
        rest = x[..., Cp:]
        if self.stride == 2:
            *lead, H, W, Cr = rest.shape
            rest = rest.reshape(tuple(lead) + (H // 2, 2, W // 2, 2, Cr)).max(axis=(-4, -2))
        w = mix.sum(-1).reshape(mix.shape[:2] + (1, 1, 1, 1))
        bypass = (w * rest).sum(axis=1)
        out = jnp.concatenate([y, bypass], axis=-1)
        return channel_shuffle(out, K)

    def _single_path(self, x, mix, train):
        prims = list(self.primitives)
        N, S, stride = self.N, self.S, self.stride
        params = self.variables['params']
        stats = dict(self.variables.get('batch_stats', {}))
        Ho, Wo = ops.out_size(x.shape[-3], 3, stride, 1), ops.out_size(x.shape[-2], 3, stride, 1)
        out_shape = (x.shape[-4], Ho, Wo, self.C)
        branches = [_single_op(name, prims, params, stride, train, out_shape, x.shape[0] > 1, stats)
                    for name in prims]
        choice = jnp.argmax(lax.stop_gradient(mix), axis=-1)
        scale = jnp.take_along_axis(mix, choice[..., None], axis=-1)[..., 0]
        targets = np.repeat(np.arange(N), S)
        sources = np.tile(np.arange(S), N)
        shared = x.shape[0] == 1

        def edge(carry, inputs):
            acc, st = carry
            n, s, i, w = inputs
            xe = x[0, s] if shared else x[n, s]
            y, st = lax.switch(i, branches, xe, n, s, st)
            return (acc.at[n].add(w * y), st), None

        acc = jnp.zeros((N,) + out_shape, x.dtype)
        (acc, stats), _ = lax.scan(edge, (acc, stats), (jnp.asarray(targets), jnp.asarray(sources),
                                                        choice.reshape(-1), scale.reshape(-1)))
        if train:
            for key, value in stats.items():
                self.put_variable('batch_stats', key, value)
        return acc


def channel_shuffle(x, groups: int):
    """PyTorch's channel shuffle on the last (channel) axis."""
    C = x.shape[-1]
    return x.reshape(x.shape[:-1] + (groups, C // groups)).swapaxes(-1, -2).reshape(x.shape)


def _batch_norm_slice(y, stats, path, index, train, base=None):
    """BatchNorm (no affine) of ``y (B, H, W, C)`` with the running statistics at
    ``stats[path][...][index]``; returns the output and the statistics, updated in
    training mode exactly as :class:`jaxnas.ops.BatchNorm` would.

    ``base`` (the statistics before this step) makes the update idempotent: a slot that
    several edges share (a pool on an input shared by all targets) then moves once per
    step, as in the dense mode, however many edges pick it.
    """
    node = stats
    for p in path:
        node = node[p]
    old = node
    if base is not None:
        old = base
        for p in path:
            old = old[p]
    momentum, eps = ops.BatchNorm.momentum, ops.BatchNorm.eps
    if train:
        mean = jnp.mean(y, axis=(0, 1, 2))
        var = jnp.mean(jnp.square(y - mean), axis=(0, 1, 2))
        n = y.shape[0] * y.shape[1] * y.shape[2]
        new = {'mean': node['mean'].at[index].set((1 - momentum) * old['mean'][index]
                                                  + momentum * lax.stop_gradient(mean)),
               'var': node['var'].at[index].set((1 - momentum) * old['var'][index]
                                                + momentum * lax.stop_gradient(var) * n / max(n - 1, 1))}
        stats = _replace(stats, path, new)
    else:
        mean, var = node['mean'][index], node['var'][index]
    return (y - mean) * lax.rsqrt(var + eps), stats


def _replace(tree, path, value):
    if not path:
        return value
    out = dict(tree)
    out[path[0]] = _replace(tree[path[0]], path[1:], value)
    return out


def _single_op(name, prims, params, stride, train, out_shape, per_target_pool, stats0):
    """One ``lax.switch`` branch of the single-path mixed edge: primitive ``name`` on
    edge ``(n, s)`` with that edge's slice of the dense layout's variables."""
    convs = [p for p in prims if p in ops.CONV_SPECS]
    pools = [p for p in prims if p in ops.POOL_KINDS]

    if name in ops.CONV_SPECS:
        specs = [ops.CONV_SPECS[c] for c in convs]
        o = convs.index(name)
        spec = specs[o]
        second = [i for i, sp in enumerate(specs) if sp.blocks == 2]

        def block(h, block_specs, pos, tag, n, s, st, blk_stride, dilation):
            k = block_specs[pos].k
            group = [i for i, sp in enumerate(block_specs) if sp.k == k]
            P = params['convs']
            dw = P[f'{tag}_depthwise_{k}x{k}'][group.index(pos), n, s]
            y = ops.depthwise(jax.nn.relu(h), dw[None], k=k, stride=blk_stride, dilations=(dilation,))[0]
            y = jnp.einsum('bhwc,cd->bhwd', y, P[f'{tag}_pointwise'][pos, n, s])
            return _batch_norm_slice(y, st, ('convs', f'{tag}_bn'), (pos, n, s), train)

        def branch(xe, n, s, st):
            y, st = block(xe, specs, o, 'block1', n, s, st, stride, spec.dilation)
            if spec.blocks == 2:
                specs2 = [ops.ConvSpec(specs[i].k, 1, 1) for i in second]
                y, st = block(y, specs2, second.index(o), 'block2', n, s, st, 1, 1)
            return y, st
        return branch

    if name in ops.POOL_KINDS:
        o = pools.index(name)

        def branch(xe, n, s, st):
            y = ops.pool(xe, ops.POOL_KINDS[name], stride)
            if per_target_pool:
                return _batch_norm_slice(y, st, ('pools', 'BatchNorm_0'), (o, n, s), train)
            return _batch_norm_slice(y, st, ('pools', 'BatchNorm_0'), (o, 0, s), train, base=stats0)
        return branch

    if name == 'skip_connect':
        if stride == 1:
            return lambda xe, n, s, st: (xe, st)

        def branch(xe, n, s, st):
            P = params['skip_connect']
            h = jax.nn.relu(xe)
            y = jnp.concatenate([jnp.einsum('bhwc,cd->bhwd', h[:, ::2, ::2], P['conv_1'][n, s]),
                                 jnp.einsum('bhwc,cd->bhwd', h[:, 1::2, 1::2], P['conv_2'][n, s])], axis=-1)
            return _batch_norm_slice(y, st, ('skip_connect', 'BatchNorm_0'), (n, s), train)
        return branch

    if name == 'none':
        return lambda xe, n, s, st: (jnp.zeros(out_shape, xe.dtype), st)
    raise JaxnasError(f'op {name!r} has no single-path form; use the dense execution mode')


class _NodeStage(nn.Module):
    """One stage of :data:`NODE_STAGES`: two mixed edges read from and added to ``nodes``."""
    C: int
    train: bool
    primitives: Sequence[str] = darts.PRIMITIVES
    mode: str = 'dense'
    partial_channels: int = 1

    @nn.compact
    def __call__(self, nodes, stage):
        src, tgt, mix = stage
        x = jnp.take(nodes, src, axis=0)[:, None]
        out = MixedEdges(self.C, len(NODE_STAGES[0]), 1, 1, self.primitives, self.mode,
                         self.partial_channels)(x, mix[:, None], self.train)
        return nodes.at[tgt].add(out), None


_NodeStages = nn.scan(_NodeStage, variable_axes={'params': 0, 'batch_stats': 0},
                      split_rngs={'params': True}, length=len(NODE_STAGES))


class SearchCell(nn.Module):
    C: int
    C_pp: int
    C_p: int
    reduction: bool
    reduction_prev: bool
    primitives: Sequence[str] = darts.PRIMITIVES
    mode: str = 'dense'
    partial_channels: int = 1

    @nn.compact
    def __call__(self, s0, s1, mix, train: bool):
        pre0 = ops.FactorizedReduce if self.reduction_prev else ops.ReLUConvBN
        s0 = pre0(self.C_pp, self.C)(s0[None, None], train)[0, 0]
        s1 = ops.ReLUConvBN(self.C_p, self.C)(s1[None, None], train)[0, 0]
        stride = 2 if self.reduction else 1
        nodes = MixedEdges(self.C, darts.NUM_NODES, darts.NUM_INPUTS, stride, self.primitives, self.mode,
                           self.partial_channels, name='input_edges')(jnp.stack([s0, s1])[None], mix[INPUT_ROWS], train)
        src = jnp.asarray([[s for s, _ in stage] for stage in NODE_STAGES], jnp.int32)
        tgt = jnp.asarray([[t for _, t in stage] for stage in NODE_STAGES], jnp.int32)
        nodes, _ = _NodeStages(self.C, train, self.primitives, self.mode, self.partial_channels,
                               name='node_edges')(
            nodes, (src, tgt, mix[NODE_STAGE_ROWS]))
        return jnp.concatenate(list(nodes), axis=-1)


def reduction_layers(layers: int) -> tuple:
    return (layers // 3, 2 * layers // 3)


class SearchNetwork(nn.Module):
    C: int
    num_classes: int
    layers: int
    stem_multiplier: int = 3
    primitives: Sequence[str] = darts.PRIMITIVES
    mode: str = 'dense'
    partial_channels: int = 1

    @nn.compact
    def __call__(self, x, mix, train: bool = True):
        C_curr = self.stem_multiplier * self.C
        stem_w = self.param('stem_conv', ops.torch_uniform(9 * x.shape[-1]), (3, 3, x.shape[-1], C_curr))
        if self.is_initializing():
            s = jnp.zeros(x.shape[:-1] + (C_curr,), x.dtype)
        else:
            s = lax_conv(x, stem_w)
        s = ops.BatchNorm((1, C_curr), affine=True)(s[None], train)[0]
        s0 = s1 = s
        C_pp, C_p, C_curr = C_curr, C_curr, self.C
        reduction_prev = False
        for i in range(self.layers):
            reduction = i in reduction_layers(self.layers)
            if reduction:
                C_curr *= 2
            cell = SearchCell(C_curr, C_pp, C_p, reduction, reduction_prev, self.primitives, self.mode,
                              self.partial_channels)
            s0, s1 = s1, cell(s0, s1, mix['reduce' if reduction else 'normal'], train)
            reduction_prev = reduction
            C_pp, C_p = C_p, darts.NUM_NODES * C_curr
        pooled = jnp.mean(s1, axis=(1, 2))
        return nn.Dense(self.num_classes, kernel_init=ops.torch_uniform(C_p),
                        bias_init=ops.torch_uniform(C_p))(pooled)


def lax_conv(x, w, stride: int = 1):
    return lax.conv_general_dilated(x, w, (stride, stride), 'SAME',
                                    dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def _darts_network(model, num_classes, mode, partial_channels):
    return SearchNetwork(model.channels, num_classes, model.layers, model.stem_multiplier,
                         mode=mode, partial_channels=partial_channels)


def _nb201_network(model, num_classes, mode, partial_channels):
    from jaxnas.spaces.nb201.network import NB201SearchNetwork
    return NB201SearchNetwork(model.channels, model.cells_per_stage, num_classes,
                              mode=mode, partial_channels=partial_channels)


SEARCH_NETWORKS = {'darts': _darts_network, 'nb201': _nb201_network}


def make_search_network(space: str, model, num_classes: int, *, mode: str = 'dense',
                        partial_channels: int = 1) -> nn.Module:
    """The weight-sharing network of search space ``space`` from the ``model`` config."""
    return SEARCH_NETWORKS[space](model, num_classes, mode, partial_channels)
