"""Padded evaluation: a split in fixed-size batches, so the evaluation compiles once.

:func:`padded_batches` cuts a split into batches of one size, zero-padding the last, each
with a mask (1 for real examples, 0 on the padding). They are consumed either on the
host, one jitted call per batch (:func:`evaluate`: means of per-batch masked sums;
:func:`predict`: per-example outputs without the padding), or stacked
(:func:`pad_batches`) inside a jitted program (:func:`scan_evaluate`: loss, accuracy and
predictions of a logits function, a ``lax.scan`` over the batches).
"""
from __future__ import annotations

from typing import Callable, Iterator, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.train.loss import masked_sums


class Batches(NamedTuple):
    """A split stacked as ``(num_batches, batch_size, ...)`` arrays; ``mask`` is 0 on the padding."""
    x: np.ndarray
    y: np.ndarray
    mask: np.ndarray


def _pad(a, size: int):
    if len(a) == size:
        return a
    return np.concatenate([a, np.zeros((size - len(a),) + a.shape[1:], a.dtype)])


def padded_batches(x, y: Optional[np.ndarray], batch_size: int, limit: int = 0) -> Iterator[tuple]:
    """``(x, y, mask)`` batches of ``batch_size`` over the first ``limit`` examples (all for
    0); the last batch is zero-padded (``y`` may be None)."""
    n = min(len(x), limit) if limit else len(x)
    for i in range(0, n, batch_size):
        j = min(i + batch_size, n)
        mask = np.zeros(batch_size, np.float32)
        mask[:j - i] = 1
        yield _pad(x[i:j], batch_size), None if y is None else _pad(y[i:j], batch_size), mask


def pad_batches(x, y, batch_size: int, limit: int = 0) -> Batches:
    """:func:`padded_batches` stacked: the whole split as ``(num_batches, batch_size, ...)``."""
    xs, ys, masks = zip(*padded_batches(np.asarray(x), np.asarray(y), batch_size, limit))
    return Batches(np.stack(xs), np.stack(ys), np.stack(masks))


def evaluate(fn: Callable, x, y, batch_size: int) -> dict:
    """Means over the examples of ``fn(x, y, mask) -> {name: masked sum}``, one call per
    padded batch (:func:`padded_batches`; sums accumulated on the host in float64)."""
    totals = {}
    for xb, yb, mask in padded_batches(x, y, batch_size):
        for k, v in jax.device_get(fn(xb, yb, mask)).items():
            totals[k] = totals.get(k, 0.0) + float(v)
    return {k: v / len(x) for k, v in totals.items()}


def predict(fn: Callable, x, batch_size: int, axis: int = 0) -> np.ndarray:
    """``fn(x)`` of every padded batch, concatenated along the example ``axis`` of its
    output (e.g. 1 for outputs with a leading seed axis), the padding removed."""
    outs = []
    for xb, _, mask in padded_batches(x, None, batch_size):
        out = np.asarray(fn(xb))
        outs.append(np.take(out, np.flatnonzero(mask), axis=axis))
    return np.concatenate(outs, axis=axis)


def scan_evaluate(logits_fn: Callable, xs, ys, masks):
    """Inside a jitted program: mean loss and accuracy of ``logits_fn(x)`` over stacked
    batches (:func:`pad_batches`) by ``lax.scan``. Returns ``({'loss', 'correct'}`` means over
    the real examples, int32 predictions ``(num_batches, batch_size))``."""
    def body(carry, batch):
        x, y, mask = batch
        logits = logits_fn(x)
        sums = masked_sums(logits, y, mask)
        return {k: carry[k] + sums[k] for k in carry}, jnp.argmax(logits, -1).astype(jnp.int32)

    sums, preds = jax.lax.scan(body, {'loss': 0.0, 'correct': 0.0}, (xs, ys, masks))
    total = jnp.sum(masks)
    return {k: v / total for k, v in sums.items()}, preds
