"""The supernet metric: one number, defined once, for every relaxation and execution mode.

``derived_val_acc`` (and ``derived_val_loss``, ``derived_test_acc``) scores the supernet's
weights on the path of the genotype the search reports: ``space.derive`` of the relaxed
weights, as the one-hot mix ``space.one_hot`` (for DARTS cells: the 8 kept edges, the
others off). First its BatchNorm running statistics are recalibrated on
``search.recalibration_batches`` fixed weight-train batches of ``data.batch_size``
(:func:`jaxnas.train.bn.make_recalibrate`, as SPOS; the run's own statistics are not
touched), then the split is scored in inference mode. The path is an input of the two
compiled programs, so a new genotype does not recompile, and searches of one space and
model share them (:func:`programs` is cached by network).

The network: for dense and single-path searches the space's single-path network (the
same variables; only the path's ops run, about 10x faster than the dense network on the
digits default), so every relaxation gets exactly the same number for the same weights
and genotype. A partial-channel search (PC-DARTS) has variables of its own (its ops have
``C / K`` channels): its path runs in its own network, bypass channels included.

Methods' own metrics are kept beside it under explicit names (never ranked on):

- ``supernet_val_acc_mixture``: the relaxation's ``normalized`` weights as a soft mixture,
  inference mode, the run's running statistics: DARTS's supernet accuracy. Only where the
  execution mode runs a mixture (dense, partial channel).
- ``supernet_val_acc_sampled``: the architecture step's accuracy on its arch-val batches,
  training-mode BatchNorm, the relaxation's sampled weights, mean over the epoch: the
  "valid accuracy" AutoDL's GDAS/SETN code reports (the log's ``val_acc``).
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import bilevel, train
from jaxnas.train.bn import make_recalibrate

KEY = 'derived_val_acc'              # the metric compare ranks on
MIXTURE = 'supernet_val_acc_mixture'
SAMPLED = 'supernet_val_acc_sampled'


def describe(num_batches: int, batch_size: int) -> str:
    return (f'derived path (space.derive, one-hot), BatchNorm recalibrated on {num_batches} '
            f'weight-train batches of {batch_size}, inference mode')


def network_mode(mode: str) -> str:
    """The execution mode the metric runs a search of ``mode`` in (see the module docstring)."""
    return 'partial_channel' if mode == 'partial_channel' else 'single_path'


class PathPrograms(NamedTuple):
    """``recalibrate(params, batch_stats, xs, mix) -> batch_stats`` and
    ``evaluate(params, batch_stats, mix, x, y, mask) -> {'loss', 'correct'}`` sums, jitted."""
    recalibrate: Callable
    evaluate: Callable


@functools.lru_cache(maxsize=16)
def programs(net) -> PathPrograms:
    """The metric's two jitted programs for ``net`` (a hashable Flax module), built once per network."""
    return PathPrograms(jax.jit(make_recalibrate(net)), jax.jit(bilevel.make_eval(net)))


def calibration_batches(x: np.ndarray, num_batches: int, batch_size: int, seed: int) -> np.ndarray:
    """``(num_batches, batch_size, ...)`` weight-train inputs, fixed by ``seed`` (the same
    every epoch, so the metric moves only with the weights and the genotype); examples are
    drawn without replacement while the split lasts."""
    rng = np.random.default_rng([seed, 0x5eed])
    need = num_batches * batch_size
    idx = np.concatenate([rng.permutation(len(x)) for _ in range(-(-need // len(x)))])[:need]
    return np.asarray(x)[idx].reshape((num_batches, batch_size) + x.shape[1:])


def path_scores(progs: PathPrograms, params, batch_stats, mix, calibration_x, splits: dict,
                eval_batch_size: int) -> dict:
    """``{name: {'loss', 'acc'}}`` of the path ``mix`` on each split ``name -> (x, y)``, after
    one recalibration on ``calibration_x``; ``params`` and ``batch_stats`` are only read."""
    mix = jax.tree.map(jnp.asarray, mix)
    stats = progs.recalibrate(params, batch_stats, calibration_x, mix)
    return {name: _scores(progs.evaluate, params, stats, mix, x, y, eval_batch_size)
            for name, (x, y) in splits.items()}


def _scores(evaluate, params, batch_stats, mix, x, y, eval_batch_size) -> dict:
    means = train.evaluate(lambda xb, yb, mask: evaluate(params, batch_stats, mix, xb, yb, mask),
                           x, y, eval_batch_size)
    return {'loss': means['loss'], 'acc': means['correct']}


def mixture_scores(evaluate, params, batch_stats, mix, splits: dict, eval_batch_size: int) -> dict:
    """``{name: {'loss', 'acc'}}`` of the soft mixture ``mix`` with the run's own running
    statistics (the methods' own supernet accuracy, :data:`MIXTURE`)."""
    mix = jax.tree.map(jnp.asarray, mix)
    return {name: _scores(evaluate, params, batch_stats, mix, x, y, eval_batch_size)
            for name, (x, y) in splits.items()}
