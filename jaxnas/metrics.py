"""Scores of a trained network: classification metrics and computational cost.

Classification (the seed paper's comparison, Mondal & Patil 2024): top-1 accuracy, macro
precision, recall and F1 and the confusion matrix, computed in NumPy with the
definitions of scikit-learn's ``precision_recall_fscore_support(average='macro',
zero_division=0)`` (a class never predicted has precision 0; the macro mean is over all
``num_classes`` classes, present in the labels or not).

Cost, from the compiled forward pass rather than a hand count:

- multiply-adds and bytes accessed from XLA's cost analysis
  (``jit(f).lower(...).compile().cost_analysis()``; XLA counts 2 flops per multiply-add,
  published.md "Conventions"). XLA counts a while-loop body once, whatever its trip
  count, so the forward is lowered with every ``lax.scan`` fully unrolled
  (:func:`unrolled_scans`); the count then includes the elementwise work (BN, ReLU,
  pools, adds) as XLA sees it, which a conv-only hand count leaves out;
- peak memory from ``compile().memory_analysis()`` (arguments + outputs + temporaries,
  or XLA's own ``peak_memory_in_bytes`` where the backend fills it in);
- latency: the median of ``n`` timed calls after ``warmup`` untimed ones, each ended by
  ``block_until_ready``, at a stated batch size.
"""
from __future__ import annotations

import contextlib
import time
from typing import Callable

import jax
import numpy as np


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

def count_params(tree) -> int:
    return int(sum(np.size(x) for x in jax.tree.leaves(tree)))


@contextlib.contextmanager
def unrolled_scans():
    """While active, every ``jax.lax.scan`` traced is fully unrolled (for cost analysis)."""
    original = jax.lax.scan

    def scan(f, init, xs=None, length=None, reverse=False, unroll=1, **kwargs):
        return original(f, init, xs, length=length, reverse=reverse, unroll=True, **kwargs)

    jax.lax.scan = scan
    try:
        yield
    finally:
        jax.lax.scan = original


def _first(analysis):
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else {}
    return dict(analysis or {})


def compile_forward(fn: Callable, *args, unroll: bool = True):
    """``(compiled, compile_seconds)`` of ``jit(fn)`` on ``args`` (scans unrolled)."""
    t0 = time.perf_counter()
    ctx = unrolled_scans() if unroll else contextlib.nullcontext()
    with ctx:
        lowered = jax.jit(fn).lower(*args)
    compiled = lowered.compile()
    return compiled, time.perf_counter() - t0


def xla_cost(compiled, batch_size: int = 1) -> dict:
    """FLOPs, multiply-adds and bytes accessed of a compiled program, also per example."""
    ca = _first(compiled.cost_analysis())
    flops = float(ca.get('flops', 0.0))
    nbytes = float(ca.get('bytes accessed', 0.0))
    return {
        'xla_flops': flops,
        'macs': flops / 2,
        'macs_per_example': flops / 2 / batch_size,
        'bytes_accessed': nbytes,
        'bytes_accessed_per_example': nbytes / batch_size,
    }


def memory(compiled) -> dict:
    """Memory of a compiled program from XLA's buffer assignment."""
    m = compiled.memory_analysis()
    if m is None:
        return {}
    out = {k: int(getattr(m, f'{k}_in_bytes', 0) or 0)
           for k in ('argument_size', 'output_size', 'temp_size', 'alias_size', 'generated_code_size')}
    peak = int(getattr(m, 'peak_memory_in_bytes', 0) or 0)
    out['peak_bytes'] = peak or out['argument_size'] + out['output_size'] + out['temp_size'] - out['alias_size']
    return out


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
    compiled, seconds = compile_forward(fn, *args)
    out = {'batch_size': batch_size, 'forward_compile_s': seconds, 'backend': jax.default_backend()}
    out.update(xla_cost(compiled, batch_size))
    out.update({f'memory_{k}': v for k, v in memory(compiled).items()})
    out.update(latency(compiled, *args, n=n, warmup=warmup))
    return out
