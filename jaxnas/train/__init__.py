"""Training primitives shared by the search, retraining and short-training fitness.

- losses and metrics (:mod:`jaxnas.train.loss`): :func:`cross_entropy` (optional label
  smoothing), :func:`accuracy`, :func:`masked_sums`;
- the DARTS weight optimiser (:mod:`jaxnas.train.optim`): :func:`make_sgd` (clip,
  coupled L2, momentum) and :func:`make_cosine_schedule` (per-epoch cosine);
- padded evaluation (:mod:`jaxnas.train.evaluate`): :func:`padded_batches`, :func:`pad_batches`,
  :func:`evaluate`, :func:`predict`, :func:`scan_evaluate`.
"""
from jaxnas.train.evaluate import Batches, evaluate, pad_batches, padded_batches, predict, scan_evaluate
from jaxnas.train.loss import accuracy, cross_entropy, masked_sums
from jaxnas.train.optim import make_cosine_schedule, make_sgd

__all__ = ['Batches', 'accuracy', 'cross_entropy', 'evaluate', 'make_cosine_schedule', 'make_sgd',
           'masked_sums', 'pad_batches', 'padded_batches', 'predict', 'scan_evaluate']
