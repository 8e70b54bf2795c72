"""Scores of a trained network: classification metrics and computational cost.

Classification (the seed paper's comparison, Mondal & Patil 2024): top-1 accuracy, macro
precision, recall and F1 and the confusion matrix, computed in NumPy with the
definitions of scikit-learn's ``precision_recall_fscore_support(average='macro',
zero_division=0)`` (a class never predicted has precision 0; the macro mean is over all
``num_classes`` classes, present in the labels or not).

Cost of the compiled forward pass (:func:`forward_cost`): multiply-adds and bytes
accessed from XLA's cost analysis with every scan unrolled, and peak memory
(:mod:`jaxnas.costs.xla`), and latency: the median of ``n`` timed calls after ``warmup``
untimed ones, each ended by ``block_until_ready``, at a stated batch size.
"""
from __future__ import annotations

import time
from typing import Callable

import jax
import numpy as np

from jaxnas.costs import xla


# ----------------------------------------------------------------------------------------
# Classification
# ----------------------------------------------------------------------------------------

def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """``M[i, j]`` = number of examples of class ``i`` predicted as ``j``."""
    y_true = np.asarray(y_true, np.int64).ravel()
    y_pred = np.asarray(y_pred, np.int64).ravel()
    m = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m


def classification_metrics(y_true, y_pred, num_classes: int) -> dict:
    """Top-1 accuracy, macro precision / recall / F1 and the confusion matrix."""
    m = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(m).astype(np.float64)
    predicted, actual = m.sum(0), m.sum(1)
    with np.errstate(divide='ignore', invalid='ignore'):
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
        recall = np.where(actual > 0, tp / np.maximum(actual, 1), 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / np.where(denom > 0, denom, 1), 0.0)
    total = m.sum()
    return {
        'accuracy': float(tp.sum() / total) if total else 0.0,
        'precision': float(precision.mean()),
        'recall': float(recall.mean()),
        'f1': float(f1.mean()),
        'confusion_matrix': m.tolist(),
        'num_examples': int(total),
    }


# ----------------------------------------------------------------------------------------
# Cost of the compiled forward pass
# ----------------------------------------------------------------------------------------

def latency(fn: Callable, *args, n: int = 20, warmup: int = 3) -> dict:
    """Median (and spread) of ``n`` timed calls of ``fn(*args)`` after ``warmup`` calls."""
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    times = np.asarray(times) * 1e3
    return {'latency_ms_median': float(np.median(times)), 'latency_ms_p10': float(np.percentile(times, 10)),
            'latency_ms_p90': float(np.percentile(times, 90)), 'latency_calls': n, 'latency_warmup': warmup}


def forward_cost(fn: Callable, *args, batch_size: int, n: int = 20, warmup: int = 3) -> dict:
    """Cost analysis, memory and latency of one compiled forward ``fn(*args)``.

    The same executable (scans unrolled) is analysed and timed. ``batch_size`` is the
    number of examples in ``args`` (stated in the result).
    """
    compiled, seconds = xla.compile_forward(fn, *args)
    out = {'batch_size': batch_size, 'forward_compile_s': seconds, 'backend': jax.default_backend()}
    out.update(xla.compile_cost(compiled, batch_size))
    out.update({f'memory_{k}': v for k, v in xla.memory(compiled).items()})
    out.update(latency(compiled, *args, n=n, warmup=warmup))
    return out
