"""BatchNorm recalibration: running statistics re-estimated for fixed weights.

A weight-sharing supernet's running statistics are averages over every path it trained
(in single-path mode each op's statistics move only on the steps that drew it), so one
path in inference mode is normalised by statistics that are not its own. SPOS (Guo et
al., ECCV 2020) recalibrates them before scoring a path: reset the running statistics,
run training-mode forward passes over training batches on that path, then evaluate in
inference mode. :func:`make_recalibrate` is that step as one pure function.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def make_recalibrate(net) -> Callable:
    """``recalibrate(params, batch_stats, xs, *inputs) -> batch_stats``: the running
    statistics of ``net`` re-estimated on the batches ``xs (N, B, ...)``, each seen by one
    training-mode pass ``net.apply(variables, x, *inputs, train=True)`` (``inputs``: e.g. a
    supernet's mixing weights). Pure: ``batch_stats`` is only read.

    Each statistic comes out as the plain mean over the ``N`` batches of that batch's
    statistic (PyTorch's ``momentum=None`` cumulative average, as SPOS recalibrates), for
    any momentum: a pass updates a running value affinely, ``new = a * old + b``
    (``a = 1 - momentum``; ``a = (1 - momentum)^k`` for a slot a pass updates ``k`` times;
    ``a = 1, b = 0`` for a slot it does not run). Every pass starts from zero, which gives
    ``b``; the forward-mode derivative in the direction of ones gives ``a`` exactly; the
    estimate is ``mean(b) / (1 - a)``. Slots the passes do not run (``a == 1``: ops off
    the path) keep their value from ``batch_stats``.
    """
    def recalibrate(params, batch_stats, xs, *inputs):
        zeros = jax.tree.map(jnp.zeros_like, batch_stats)
        ones = jax.tree.map(jnp.ones_like, batch_stats)

        def one_pass(total, x):
            def updated(stats):
                _, new = net.apply({'params': params, 'batch_stats': stats}, x, *inputs, train=True,
                                   mutable=['batch_stats'])
                return new['batch_stats']
            b, a = jax.jvp(updated, (zeros,), (ones,))
            return jax.tree.map(jnp.add, total, b), a

        total, a = jax.lax.scan(one_pass, zeros, xs)
        n = xs.shape[0]
        return jax.tree.map(lambda t, a_, old: jnp.where(a_[0] < 1, t / n / (1 - a_[0]), old), total, a, batch_stats)
    return recalibrate
