"""Training primitives shared by the search, retraining and short-training fitness.

- losses and metrics (:mod:`jaxnas.train.loss`): :func:`cross_entropy` (optional label
  smoothing), :func:`accuracy`, :func:`masked_sums`;
- the DARTS weight optimiser (:mod:`jaxnas.train.optim`): :func:`make_sgd` (clip,
  coupled L2, momentum) and :func:`make_cosine_schedule` (per-epoch cosine);
- padded evaluation (:mod:`jaxnas.train.evaluate`): :func:`padded_batches`, :func:`pad_batches`,
  :func:`evaluate`, :func:`predict`, :func:`scan_evaluate`;
- non-finite guards of the compiled steps (:mod:`jaxnas.train.guard`): :func:`all_finite`,
  :func:`keep_if`, :class:`SkipCounts`, :func:`count_skips`, :func:`finite_mean`, :func:`check_skips`;
- the memory check before training (:mod:`jaxnas.train.memory`): :func:`check_fits`.
"""
from jaxnas.train import memory
from jaxnas.train.evaluate import Batches, evaluate, pad_batches, padded_batches, predict, scan_evaluate
from jaxnas.train.guard import (NO_SKIPS, NonfiniteError, SkipCounts, all_finite, check_skips, count_skips,
                                finite_mean, init_skips, keep_if)
from jaxnas.train.loss import accuracy, cross_entropy, masked_sums
from jaxnas.train.optim import make_cosine_schedule, make_sgd

__all__ = ['Batches', 'NO_SKIPS', 'NonfiniteError', 'SkipCounts', 'accuracy', 'all_finite', 'check_skips',
           'count_skips', 'cross_entropy', 'evaluate', 'finite_mean', 'init_skips', 'keep_if',
           'make_cosine_schedule', 'make_sgd', 'masked_sums', 'memory', 'pad_batches', 'padded_batches', 'predict',
           'scan_evaluate']
