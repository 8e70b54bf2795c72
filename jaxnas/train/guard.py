"""Non-finite guards of the compiled training steps (search, retraining, short training).

A step whose loss or gradient is NaN or inf (a learning rate that diverges, a bad batch)
must not poison the state. Inside the compiled step, without a host sync:

- :func:`all_finite` says whether the loss, the gradient norm and the updated tensors
  are all finite;
- :func:`keep_if` selects, leaf by leaf, the updated state where they are and the
  previous one where they are not (``jnp.where`` over the tree: bit for bit the updated
  values when nothing is non-finite), so weights, BatchNorm statistics, architecture and
  optimiser states keep their previous values in a skipped update;
- :class:`SkipCounts` in the state counts the skipped steps and the current run of
  consecutive skips (:func:`count_skips`); :func:`finite_mean` averages an epoch's
  metrics over the steps that were not skipped.

The host reads the counts when it syncs anyway (progress-bar updates, the end of an
epoch) and :func:`check_skips` stops the run with a one-line :class:`NonfiniteError`
after ``limit`` consecutive skips, before a checkpoint is saved, so the last one stays
the last good state.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.errors import JaxnasError


class NonfiniteError(JaxnasError):
    """A run stopped after too many consecutive non-finite steps (one line)."""


class SkipCounts(NamedTuple):
    skipped: Any        # int32: steps skipped so far
    consecutive: Any    # int32: steps skipped in a row, up to the last one


# The counts of a state that has skipped nothing (numpy scalars: a NamedTuple default that
# traces as int32 like the arrays a step returns).
NO_SKIPS = SkipCounts(np.int32(0), np.int32(0))


def init_skips() -> SkipCounts:
    """Zero counts as device arrays (the state's initial value, a checkpoint template)."""
    return SkipCounts(jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def all_finite(*trees) -> jax.Array:
    """Whether every floating-point element of ``trees`` is finite (a boolean scalar)."""
    leaves = [jnp.asarray(x) for t in trees for x in jax.tree.leaves(t)]
    flags = [jnp.all(jnp.isfinite(x)) for x in leaves if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.stack(flags).all() if flags else jnp.asarray(True)


def keep_if(ok, new, old):
    """``new`` where ``ok`` (a boolean scalar, or one per leading index) else ``old``, leaf by leaf."""
    return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)


def count_skips(counts: SkipCounts, ok) -> SkipCounts:
    """The counts after one more step, skipped unless ``ok``."""
    skipped = jnp.logical_not(ok).astype(jnp.int32)
    return SkipCounts(counts.skipped + skipped, jnp.where(ok, 0, counts.consecutive + 1).astype(jnp.int32))


def finite_mean(values, axis: int = 0) -> np.ndarray:
    """The mean of per-step values over ``axis``, of the finite ones where some are not
    (skipped steps); exactly ``np.mean`` when all are finite, NaN where none is."""
    values = np.asarray(values)
    values = values if values.dtype.kind == 'f' else values.astype(np.float64)
    finite = np.isfinite(values)
    if finite.all():
        return np.mean(values, axis)
    with np.errstate(invalid='ignore'):
        return np.sum(np.where(finite, values, 0), axis) / np.sum(finite, axis)


def check_skips(consecutive, limit: int, *, what: str, step: int, checkpoint: str, fix: str,
                skipped=None) -> None:
    """Raise :class:`NonfiniteError` if ``consecutive`` (one count, or one per seed) has
    reached ``limit`` (0: never). ``checkpoint`` names the last good checkpoint."""
    worst = int(np.max(np.asarray(consecutive)))
    if not limit or worst < limit:
        return
    total = '' if skipped is None else f', {int(np.max(np.asarray(skipped)))} in all'
    raise NonfiniteError(f'{what} stopped at step {step}: the last {worst} steps had a non-finite loss or gradient '
                         f'and were skipped{total}; {checkpoint}; {fix}')
