"""The execution modes of a mixed op, written once over the op registry's families.

:class:`MixedEdges` is the mixed op of an edge group (:class:`~jaxnas.ops.registry.EdgeGroup`):
``N`` targets x ``S`` sources, every primitive on every edge, weighted by ``mix (N, S, P)``
and summed over ops and sources. Every space's search network builds its edges from it.

- ``dense``: each family of the primitives runs batched over the whole group
  (``Family.dense``), and the family outputs, weighted by their columns of ``mix``, are
  added in family registration order.
- ``single_path`` (GDAS, Dong & Yang, CVPR 2019): on each edge only the op
  ``argmax(mix[n, s])`` runs, through a ``lax.switch`` over the families' single-path
  branches (``Family.single``) inside a ``scan`` over the ``N * S`` edges (never under
  ``vmap``, where a switch runs every branch), scaled by ``mix[n, s, argmax]``: with a
  straight-through one-hot mix the gradient still reaches every logit of the edge. Same
  variables as ``dense``; only the chosen op's BatchNorm statistics move (a slot of a
  parameter-free op shared by all targets moves once per step, as in dense). With
  ``straight_through_rest`` each edge also adds the weights of its non-selected ops as
  scalars of value exactly 0 and gradient 1 (``w - stop_gradient(w)``), as AutoDL's
  NAS-Bench-201 GDAS cell (``sum(w[j] * op_j(x) if j == argmax else w[j])``): an edge
  that picks ``none`` then still sends every logit a gradient (the sum of the node's
  output gradient). Without it (GDAS's paper and AutoDL's DARTS-space cell) an edge
  that picks ``none`` outputs zero and passes no gradient. The forward values are the
  same either way.
- ``partial_channel`` (PC-DARTS, Xu et al., ICLR 2020): the first ``C / K`` channels go
  through the dense mixed op (its ops built with ``C / K`` channels, so variables of
  their own), the other channels bypass it (2x2 max-pooled on strided edges), scaled by
  the edge's total weight ``mix.sum(-1)`` -- as PC-DARTS's code, where the edge weight
  ``beta`` multiplies the whole mixed-op output, bypass included -- then the channels
  are shuffled in ``K`` groups. ``K = 1`` is ``dense``. The same rule for every space.
"""
from __future__ import annotations

import functools
from typing import Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxnas.errors import JaxnasError
from jaxnas.nn import channel_shuffle
from jaxnas.ops import registry
from jaxnas.ops.registry import BranchContext, EdgeGroup

MODES = ('dense', 'single_path', 'partial_channel')


class MixedEdges(nn.Module):
    """``N x S`` mixed edges: ``(x (Nx, S, B, H, W, C), mix (N, S, P), train) -> (N, B, H', W', C_out)``.

    ``Nx`` is 1 (sources shared by all targets) or ``N`` (one input per edge).
    ``primitives`` name the ``P`` columns of ``mix``, looked up in the op registry of
    ``space`` (its own entries, then the shared vocabulary). ``C_out`` defaults to ``C``.
    See the module docstring for the ``mode`` s.

    ``scan_edges`` (single path): the edges run as a ``scan`` (one loop body, traced edge
    indices: for groups of many edges, as DARTS's 4 x 2) or as a Python loop with static
    edge indices (for a few edges, as NB201's 3 per source: the branches then slice their
    variables statically; with traced indices NB201's single-path program was ~1.7x
    larger and compiled ~1.7x slower than its old per-target switches).

    ``straight_through_rest`` (single path): add the non-selected ops' weights as scalars
    (value 0, gradient 1), as AutoDL's NAS-Bench-201 GDAS; see the module docstring.
    """
    C: int
    N: int
    S: int
    stride: int
    primitives: Sequence[str]
    space: Optional[str] = None
    mode: str = 'dense'
    partial_channels: int = 1
    C_out: Optional[int] = None
    scan_edges: bool = True
    straight_through_rest: bool = False

    @nn.compact
    def __call__(self, x, mix, train: bool):
        if self.mode not in MODES:
            raise JaxnasError(f"unknown execution mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.mode == 'partial_channel' and self.partial_channels > 1:
            return self._partial_channel(x, mix, train)
        if self.mode == 'single_path' and not self.is_initializing():
            return self._single_path(x, mix, train)
        return self._dense(x, mix, train, self.C)

    def _group(self, C: int) -> EdgeGroup:
        """The edge group at ``C`` input channels (``C / K`` in partial-channel mode)."""
        C_out = C if self.C_out is None or self.C_out == self.C else self.C_out
        return EdgeGroup(C, C_out, self.N, self.S, self.stride)

    def _defs(self):
        return registry.lookup(self.primitives, self.space)

    def _dense(self, x, mix, train, C):
        defs, group = self._defs(), self._group(C)
        outputs = []
        for family, name, cols in registry.groups(defs):
            y = family.dense(tuple(defs[i] for i in cols), group, name)(x, train)
            if y is not None:
                outputs.append((cols, y))
        total = None
        for cols, y in outputs:
            m = jnp.moveaxis(mix[:, :, np.array(cols)], -1, 0)
            term = (m.reshape(m.shape + (1, 1, 1, 1)) * y).sum(axis=0)
            total = term if total is None else total + term
        if total is None:   # every primitive is `none`
            return registry.zeros_output(x, (self.N,), group.C_out, self.stride)
        return total.sum(axis=1)

    def _partial_channel(self, x, mix, train):
        K, C = self.partial_channels, self.C
        if C % K or (self.C_out is not None and self.C_out != C):
            raise JaxnasError(f'partial_channel needs C_out == C and K={K} dividing C={C}')
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
        defs, group = self._defs(), self._group(self.C)
        N, S = self.N, self.S
        params = self.variables.get('params', {})
        stats = dict(self.variables.get('batch_stats', {}))
        out_shape = (x.shape[-4], -(-x.shape[-3] // self.stride), -(-x.shape[-2] // self.stride), group.C_out)
        shared = x.shape[0] == 1
        branches = [None] * len(defs)
        for family, name, cols in registry.groups(defs):
            ctx = BranchContext(group, params.get(name, {}), stats.get(name, {}), train, shared, out_shape)
            fam_defs = tuple(defs[i] for i in cols)
            for o, col in enumerate(cols):
                branches[col] = _on_subtree(family.single(fam_defs, o, ctx), name)
        choice = jnp.argmax(lax.stop_gradient(mix), axis=-1)
        scale = jnp.take_along_axis(mix, choice[..., None], axis=-1)[..., 0]
        targets = np.repeat(np.arange(N), S)
        sources = np.tile(np.arange(S), N)

        def edge(carry, inputs):
            acc, st = carry
            n, s, i, w = inputs
            xe = x[0, s] if shared else x[n, s]
            y, st = lax.switch(i, branches, xe, n, s, st)
            return (acc.at[n].add(w * y), st), None

        acc = jnp.zeros((N,) + out_shape, x.dtype)
        if self.scan_edges:
            (acc, stats), _ = lax.scan(edge, (acc, stats), (jnp.asarray(targets), jnp.asarray(sources),
                                                            choice.reshape(-1), scale.reshape(-1)))
        else:   # a loop unrolled in Python: each edge's branches index their variables statically
            for n, s in zip(targets.tolist(), sources.tolist()):
                on_edge = [functools.partial(_at_edge, b, n, s) for b in branches]
                y, stats = lax.switch(choice[n, s], on_edge, x[0, s] if shared else x[n, s], stats)
                acc = acc.at[n].add(scale[n, s] * y)
        if self.straight_through_rest:   # value exactly 0, gradient 1 per non-selected weight
            rest = jnp.where(jnp.arange(mix.shape[-1]) == choice[..., None], 0.0, mix - lax.stop_gradient(mix))
            acc = acc + rest.sum(axis=(1, 2)).astype(acc.dtype).reshape((N,) + (1,) * len(out_shape))
        if train:
            for key, value in stats.items():
                self.put_variable('batch_stats', key, value)
        return acc


def _at_edge(branch, n: int, s: int, xe, stats):
    return branch(xe, n, s, stats)


def _on_subtree(branch, name: str):
    """A family's branch over its own statistics ``stats[name]``, as a branch over the
    mixed edge's whole statistics (every ``lax.switch`` branch returns the same tree)."""
    def run(xe, n, s, stats):
        if name not in stats:
            y, _ = branch(xe, n, s, {})
            return y, stats
        y, own = branch(xe, n, s, stats[name])
        return y, {**stats, name: own}
    return run
