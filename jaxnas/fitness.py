"""Fitness of discrete candidates: how good a ``(genotype, hyperparameters)`` pair is.

A fitness mode is a factory ``make(config, space, *, dataset, workdir) ->``
:class:`FitnessFunction`, whose ``evaluate(candidates)`` returns one dict of metrics per
candidate (accuracy, loss, cost such as ``params``). An objective (:data:`OBJECTIVES`)
turns a metrics dict into the scalar fitness the searchers maximise, optionally trading
the metric against a cost: ``linear``, MnasNet's soft and hard constraints (``mnas``,
``mnas_hard``), TuNAS's absolute reward (``tunas``) and hard-constraint rejection
(``constrained``, or ``discrete.fitness.max_cost`` with any objective); see the objectives
section below. Hardware-aware fitness plugs in as one more cost: ``cost`` / ``cost:<model>``
is the genotype's cost from the same cost table as the gradient search's cost term
(:func:`with_cost_metrics`, :mod:`jaxnas.costs`), in every fitness mode.

Modes (:data:`FITNESS_MODES`):

- ``short_training``: train each candidate from scratch for a few SGD steps on the
  weight-train split and score it on the arch-val split (the proxy of Real et al. 2019
  and Zoph & Le 2017, much shortened). The candidate network is the space's search
  network (``SearchSpace.search_network``) with the candidate's one-hot mix as its input, so every
  candidate of one width and depth has the same parameter shapes and one compiled
  program (per (width, cells) shape) trains them all; the genotype, learning rate and
  weight decay are its inputs. ``short_training.execution`` chooses how:

  - ``single_path`` (default): the network runs only the chosen op of each edge
    (``lax.switch``), one candidate per call. Candidates are *not* vmapped: under
    ``vmap`` a switch with a batched index becomes a select that runs every branch.
  - ``dense``: every op of every edge runs, weighted by the one-hot mix, and
    ``discrete.batch_size`` candidates train at once under ``vmap`` (kept for
    comparison: see ``benchmarks/discrete_speed.py``).

  ``short_training.seeds`` > 1 trains each candidate from that many initialisations and
  minibatch orders at once under ``vmap`` (the genotype is shared, so the switch index
  is not batched and stays a switch) and reports the mean metrics (``val_acc_std``
  too): the vmap that truly batches same-shaped work. A candidate seen before is not
  trained again (the fitness is deterministic). A step with a non-finite loss or
  gradient is skipped (:mod:`jaxnas.train.guard`; ``skipped_steps`` in the metrics); a
  candidate with ``short_training.max_nonfinite_steps`` skips in a row (e.g. a searched
  learning rate that diverges) gets NaN metrics, which the searchers rank last.
- ``weight_sharing``: random search with weight sharing (Li & Talwalkar 2019): train
  one supernet (``jaxnas search`` with the ``weight_sharing.relaxation``, by default
  uniformly random single paths) once, cached by its config and reused by later runs
  (:func:`supernet_dir`), then rank candidates by the supernet's arch-val accuracy under
  each candidate's one-hot mix (single-path forward, ``weight_sharing.execution``),
  without any training per candidate.
- ``tabular``: cells looked up in the space's tabular benchmark (``SearchSpace.tabular``;
  NAS-Bench-201 / NATS-Bench through the official ``nats_bench`` API). Cells the
  benchmark file lacks get NaN fitness.
"""
from __future__ import annotations

import copy
import math
import os
import time
from typing import Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnas import costs, data as data_lib, runs, spaces, train
from jaxnas.costs import models as cost_models
from jaxnas.nn import init_variables
from jaxnas.errors import JaxnasError
from jaxnas.spaces.choices import Candidate


class FitnessError(JaxnasError):
    """A fitness mode or objective that cannot be used with this config."""


class FitnessFunction(NamedTuple):
    evaluate: Callable  # list[Candidate] -> list[dict] of metrics
    metrics: tuple      # names of the metrics it reports
    hparams: tuple      # hyperparameter choices it understands


# ----------------------------------------------------------------------------- objectives
#
# An objective maps a candidate's metrics dict to the scalar fitness the searchers
# maximise. ``metric`` is the accuracy-like metric (``discrete.fitness.metric``), ``cost``
# the cost metric (``discrete.fitness.cost``: a metric of the fitness mode such as
# ``params``, or ``cost`` / ``cost:<model>``, the genotype's cost from the cost table of
# :mod:`jaxnas.costs`, :func:`with_cost_metrics`), ``T`` = ``cost_target`` in the cost's
# unit. ``cost_weight`` > 0 is the size of the penalty in every form (the papers' negative
# exponents and coefficients are ``-cost_weight``).
#
# - MnasNet (Tan et al., "MnasNet: Platform-Aware Neural Architecture Search for Mobile",
#   CVPR 2019, eq. 2): ``acc * (C / T) ** w`` with ``w = alpha`` if ``C <= T`` else
#   ``beta``. Soft constraint (``mnas``): ``alpha = beta = -cost_weight`` (the paper: -0.07);
#   hard constraint (``mnas_hard``): ``alpha = 0``, ``beta = -cost_weight`` (the paper: -1),
#   so a candidate under the target is ranked by accuracy alone.
# - TuNAS (Bender et al., "Can weight sharing outperform random architecture search? An
#   investigation with TuNAS", CVPR 2020, the absolute reward): ``acc + beta * |C / T - 1|``
#   with ``beta = -cost_weight < 0`` (``tunas``): a candidate is pulled towards the target
#   from both sides, symmetrically in ``C / T``.
# - Hard-constraint rejection (``constrained``, or ``discrete.fitness.max_cost`` > 0 with any
#   objective): a candidate with ``C > T`` (``C > max_cost``) is rejected: its fitness is
#   ``-inf``, the searchers rank it last, the loop counts it and never keeps it as the best.

def metric_objective(metric: str, **unused) -> Callable:
    """The metric itself."""
    return lambda m: float(m[metric])


def linear_objective(metric: str, cost: str, cost_weight: float, **unused) -> Callable:
    """``metric - cost_weight * cost``."""
    return lambda m: float(m[metric]) - cost_weight * float(m[cost])


def mnas_objective(metric: str, cost: str, cost_weight: float, cost_target: float, **unused) -> Callable:
    """MnasNet's soft constraint (Tan et al., CVPR 2019): ``metric * (cost / target) ** -cost_weight``
    (``alpha = beta = -cost_weight``; the paper's -0.07 is ``cost_weight = 0.07``)."""
    return lambda m: float(m[metric]) * (float(m[cost]) / cost_target) ** (-cost_weight)


def mnas_hard_objective(metric: str, cost: str, cost_weight: float, cost_target: float, **unused) -> Callable:
    """MnasNet's hard constraint (Tan et al., CVPR 2019): ``metric`` when ``cost <= target``,
    else ``metric * (cost / target) ** -cost_weight`` (``alpha = 0``, ``beta = -cost_weight``;
    the paper's -1 is ``cost_weight = 1``)."""
    def value(m):
        ratio = float(m[cost]) / cost_target
        return float(m[metric]) * (ratio ** (-cost_weight) if ratio > 1 else 1.0)
    return value


def tunas_objective(metric: str, cost: str, cost_weight: float, cost_target: float, **unused) -> Callable:
    """TuNAS's absolute reward (Bender et al., CVPR 2020): ``metric + beta * |cost / target - 1|``
    with ``beta = -cost_weight``."""
    return lambda m: float(m[metric]) - cost_weight * abs(float(m[cost]) / cost_target - 1.0)


def constrained_objective(metric: str, **unused) -> Callable:
    """Hard-constraint rejection: the metric; a candidate with ``cost > target`` is rejected
    (``-inf``, by :func:`make_objective`)."""
    return lambda m: float(m[metric])


OBJECTIVES = {'metric': metric_objective, 'linear': linear_objective, 'mnas': mnas_objective,
              'mnas_hard': mnas_hard_objective, 'tunas': tunas_objective, 'constrained': constrained_objective}
TARGETED = ('mnas', 'mnas_hard', 'tunas', 'constrained')   # objectives that read cost_target
WEIGHTED = ('mnas', 'mnas_hard', 'tunas')                  # objectives that need cost_weight > 0


def cost_limit(kind: str, cost_target: float, max_cost: float = 0.0) -> float:
    """The largest cost a candidate may have before it is rejected (``inf``: none):
    ``cost_target`` for ``constrained``, ``max_cost`` if > 0, the smaller of the two."""
    limits = ([cost_target] if kind == 'constrained' else []) + ([max_cost] if max_cost > 0 else [])
    return min(limits, default=math.inf)


def check_objective(kind: str, cost: str = '', cost_weight: float = 0.0, cost_target: float = 1.0,
                    max_cost: float = 0.0) -> None:
    """One-line errors for objective settings that cannot work (field names of ``discrete.fitness``)."""
    if kind not in OBJECTIVES:
        raise FitnessError(f"unknown objective {kind!r}; choose one of {', '.join(OBJECTIVES)}")
    if (kind != 'metric' or max_cost) and not cost:
        raise FitnessError(f'objective {kind}' + (' with max_cost' if kind == 'metric' else '') +
                           ' needs a cost (discrete.fitness.cost), e.g. params or cost')
    if kind in TARGETED and not cost_target > 0:
        raise FitnessError(f'the {kind} objective needs cost_target > 0 (in the cost\'s unit), got {cost_target}')
    if kind in WEIGHTED and not cost_weight > 0:
        raise FitnessError(f'the {kind} objective needs cost_weight > 0 (its penalty exponent or coefficient is '
                           f'-cost_weight), got {cost_weight}')
    if max_cost < 0:
        raise FitnessError(f'max_cost must be >= 0 (0: no hard limit), got {max_cost}')


def make_objective(kind: str, metric: str, cost: str = '', cost_weight: float = 0.0,
                   cost_target: float = 1.0, available: Sequence[str] = (), max_cost: float = 0.0) -> Callable:
    """An objective ``metrics -> float`` (larger is better); ``-inf`` for a candidate whose
    cost is over :func:`cost_limit` (rejected). The callable's ``feasible(metrics)`` tells
    whether a candidate is within the limit, ``limit`` is the limit and ``target`` the
    cost target it reports against (``None`` for objectives without one)."""
    if kind not in OBJECTIVES:
        raise FitnessError(f"unknown objective {kind!r}; choose one of {', '.join(OBJECTIVES)}")
    uses_cost = kind != 'metric' or max_cost > 0
    names = [metric] + ([cost] if uses_cost and cost else [])
    for field, name in zip(('metric', 'cost'), names):
        if available and name not in available:
            raise FitnessError(f"fitness {field} {name!r} is not reported by this fitness mode; choose one of "
                               f"{', '.join(available)}")
    check_objective(kind, cost, cost_weight, cost_target, max_cost)
    value = OBJECTIVES[kind](metric=metric, cost=cost, cost_weight=cost_weight, cost_target=cost_target)
    limit = cost_limit(kind, cost_target, max_cost)
    feasible = (lambda m: True) if math.isinf(limit) else (lambda m: not float(m[cost]) > limit)

    def objective(m):
        return value(m) if feasible(m) else -math.inf

    objective.feasible = feasible
    objective.limit = limit
    objective.target = cost_target if kind in TARGETED else (max_cost if max_cost > 0 else None)
    return objective


COST_METRIC = 'cost'   # discrete.fitness.cost: 'cost' (config.cost.model) or 'cost:<model>'


def cost_model_of(name: str, config) -> Optional[str]:
    """The cost model a fitness cost name asks for (``cost``: ``config.cost.model``;
    ``cost:<model>``: that model), or ``None`` for a fitness mode's own metric."""
    if name == COST_METRIC:
        model = config.get('cost', {}).get('model', '')
        if not model:
            raise FitnessError("discrete.fitness.cost='cost' is the genotype's cost under cost.model, which is "
                               "not set: set --config.cost.model=MODEL or use cost:MODEL (e.g. cost:xla)")
        return model
    if name.startswith(COST_METRIC + ':'):
        model = name.split(':', 1)[1]
        if model not in cost_models.names():
            raise FitnessError(f"unknown cost model {model!r} in discrete.fitness.cost={name!r}; choose one of "
                               f"{', '.join(cost_models.names())}")
        return model
    return None


class CostMetrics(NamedTuple):
    """Cost-table metrics of candidates (:func:`make_cost_metrics`)."""
    add: Callable      # (candidates, results) -> None: adds each name's cost to each result
    names: tuple       # the metric names it adds
    units: dict        # name -> the cost model's unit


def make_cost_metrics(config, names: Sequence[str]) -> Optional[CostMetrics]:
    """The cost-table metrics among ``names`` (``cost`` / ``cost:<model>``, see
    :func:`cost_model_of`; ``None`` if there are none): each candidate's genotype cost under
    that model (:meth:`jaxnas.costs.table.CostTable.genotype_cost`), from the same table
    as the gradient search's cost term (:func:`jaxnas.costs.table_for_config`). The table of
    the config's search network is built here, once (so a model without data fails before
    a run starts); a candidate whose ``channels`` / ``layers`` hyperparameters are searched
    is costed in its own network's table, built once per shape."""
    wanted = {n: cost_model_of(n, config) for n in names if n}
    wanted = {n: m for n, m in wanted.items() if m is not None}
    if not wanted:
        return None
    tables = {}
    m0 = (int(config.model.channels), int(config.model.layers))

    def table(model, channels, layers):
        key = (model, int(channels), int(layers))
        if key not in tables:
            c = copy.deepcopy(config)
            c.model.channels, c.model.layers = int(channels), int(layers)
            tables[key] = costs.table_for_config(c, model)
        return tables[key]

    for model in wanted.values():
        table(model, *m0)

    def add(candidates, results):
        for c, r in zip(candidates, results):
            shape = (c.hparams.get('channels', m0[0]), c.hparams.get('layers', m0[1]))
            for name, model in wanted.items():
                r[name] = table(model, *shape).genotype_cost(c.genotype)

    return CostMetrics(add, tuple(wanted), {n: cost_models.unit(m) for n, m in wanted.items()})


def with_cost_metrics(fn: FitnessFunction, extra: Optional[CostMetrics]) -> FitnessFunction:
    """``fn`` whose every candidate's metrics also hold ``extra``'s cost-table metrics (in
    every fitness mode); ``fn.evaluate``'s attributes are kept, ``cost_units`` added."""
    if extra is None:
        return fn

    def evaluate(candidates):
        results = fn.evaluate(candidates)
        extra.add(candidates, results)
        return results

    evaluate.__dict__.update(getattr(fn.evaluate, '__dict__', {}))
    evaluate.cost_units = dict(extra.units)
    return FitnessFunction(evaluate, tuple(fn.metrics) + tuple(n for n in extra.names if n not in fn.metrics),
                           fn.hparams)


# ----------------------------------------------------------------------------- helpers

def stack_mixes(space, genotypes) -> dict:
    """The one-hot mixes of ``genotypes`` stacked on a leading axis."""
    mixes = [space.one_hot(g) for g in genotypes]
    return {c: np.stack([m[c] for m in mixes]) for c in space.cell_types}


def _model(config, channels: int, layers: int):
    """``config.model`` with the width and depth hyperparameters of a candidate."""
    m = copy.deepcopy(config.model)
    m.channels, m.layers = int(channels), int(layers)
    return m


def _val_batches(data, limit: int, batch_size: int) -> tuple:
    """The first ``limit`` arch-val examples as padded, stacked batches on the device."""
    return tuple(jnp.asarray(v) for v in train.pad_batches(data.val_x, data.val_y, batch_size, limit))


def _scored(net, variables, mix, xs, ys, masks, train_mode_bn: bool):
    """``(loss, accuracy, predictions)`` over batches ``xs`` (scan), inference mode or batch statistics."""
    def logits(x):
        if train_mode_bn:
            return net.apply(variables, x, mix, train=True, mutable=['batch_stats'])[0]
        return net.apply(variables, x, mix, train=False)

    means, preds = train.scan_evaluate(logits, xs, ys, masks)
    return means['loss'], means['correct'], preds


def _f1(preds, ys, masks, num_classes: int) -> float:
    """Macro F1 of the unpadded predictions (:func:`jaxnas.metrics.classification_metrics`)."""
    from jaxnas.metrics import classification_metrics
    keep = np.asarray(masks).ravel() > 0
    return classification_metrics(np.asarray(ys).ravel()[keep], np.asarray(preds).ravel()[keep],
                                  num_classes)['f1']


def _group_pad(items: list, size: int) -> list:
    """``items`` padded with copies of the last to a multiple of ``size`` (fixed vmap shape)."""
    return items + [items[-1]] * (-len(items) % size)


def _load_data(config, dataset):
    d = config.data
    return dataset or data_lib.load_dataset(d.name, data_dir=d.data_dir, train_portion=d.train_portion,
                                            seed=config.seed, limit=d.limit or None)


# ----------------------------------------------------------------------------- short training

SHORT_TRAINING_HPARAMS = ('lr', 'weight_decay', 'channels', 'layers')
EXECUTIONS = ('single_path', 'dense')


def _option(section, name, default):
    """``section.name``, or ``default`` for configs written before the field existed."""
    return section[name] if name in section else default


def _check_execution(value, field):
    if value not in EXECUTIONS:
        raise FitnessError(f"bad config value discrete.{field}={value!r}: choose one of {', '.join(EXECUTIONS)}")


def make_short_training(config, space, *, dataset=None, workdir=None) -> FitnessFunction:
    """Train each candidate from scratch for ``short_training.steps`` steps (see module doc)."""
    del workdir
    st = config.discrete.short_training
    if st.network == 'evalnet':
        return _short_training_evalnet(config, _load_data(config, dataset))
    if st.network != 'supernet':
        raise FitnessError(f"bad config value discrete.short_training.network={st.network!r}: "
                           "choose supernet or evalnet")
    cell_space = spaces.get(config.space)
    execution = _option(st, 'execution', 'single_path')
    _check_execution(execution, 'short_training.execution')
    seeds = _option(st, 'seeds', 1)
    if not isinstance(seeds, int) or seeds < 1:
        raise FitnessError(f'bad config value discrete.short_training.seeds={seeds!r}: must be an integer >= 1')
    max_skips = _option(st, 'max_nonfinite_steps', 10)
    if not isinstance(max_skips, int) or max_skips < 0:
        raise FitnessError(f'bad config value discrete.short_training.max_nonfinite_steps={max_skips!r}: '
                           'must be an integer >= 0 (0: never fail a candidate)')
    m = config.model
    data = _load_data(config, dataset)
    if len(data.train_x) < st.batch_size:
        raise FitnessError(f'discrete.short_training.batch_size={st.batch_size} is larger than the weight-train '
                           f'split ({len(data.train_x)} examples)')
    group = config.discrete.batch_size if execution == 'dense' else 1
    steps = st.steps
    # One minibatch order per seed; seed 0 keeps the order of a single-seed run.
    orders = [np.random.default_rng((config.seed, 7) if r == 0 else (config.seed, 7, r)).permutation(
        np.resize(np.arange(len(data.train_x)), steps * st.batch_size)).reshape(steps, st.batch_size)
        for r in range(seeds)]
    train_idx = jnp.asarray(np.stack(orders))
    train_x, train_y = jnp.asarray(data.train_x), jnp.asarray(data.train_y)
    val = _val_batches(data, st.eval_examples, config.data.eval_batch_size)
    programs = {}
    memo = {}
    timings = []   # trace and compile seconds of each program built

    def build(channels, layers):
        net = cell_space.search_network(_model(config, channels, layers), data.num_classes, mode=execution)
        mix0 = {k: jnp.asarray(v) for k, v in cell_space.one_hot(cell_space.sample(jax.random.PRNGKey(0))).items()}
        sample = jnp.zeros((2,) + data.train_x.shape[1:])
        inits = [init_variables(net, config.seed + r, sample, mix0, train=True) for r in range(seeds)]
        variables = jax.tree.map(lambda *v: jnp.stack(v), *inits)

        def train_one(variables, idx_steps, mix, lr, wd):
            opt = train.make_sgd(train.make_cosine_schedule(lr, 0.0, steps), momentum=st.momentum,
                                 weight_decay=wd, grad_clip=st.grad_clip)   # cosine per step, to 0
            params, stats = variables['params'], variables['batch_stats']

            def loss(p, s, x, y):
                logits, upd = net.apply({'params': p, 'batch_stats': s}, x, mix, train=True, mutable=['batch_stats'])
                return train.cross_entropy(logits, y), upd['batch_stats']

            def step(carry, idx):
                p, s, o, skips = carry
                (value, new_s), g = jax.value_and_grad(loss, has_aux=True)(p, s, train_x[idx], train_y[idx])
                updates, new_o = opt.update(g, o, p)
                new_p = optax.apply_updates(p, updates)
                ok = train.all_finite(value, optax.tree.norm(g), new_p, new_s)   # else skipped
                p, s, o = train.keep_if(ok, (new_p, new_s, new_o), (p, s, o))
                return (p, s, o, train.count_skips(skips, ok)), value

            (params, stats, _, skips), losses = jax.lax.scan(
                step, (params, stats, opt.init(params), train.init_skips()), idx_steps)
            val_loss, val_acc, preds = _scored(net, {'params': params, 'batch_stats': stats}, mix, *val, False)
            return {'val_loss': val_loss, 'val_acc': val_acc, 'train_loss': jnp.mean(losses[-5:]), 'preds': preds,
                    'skipped_steps': skips.skipped, 'consecutive_skips': skips.consecutive}

        # Seeds of one candidate share its genotype: the mix (and so every switch index
        # of the single-path network) is not batched, and the switches stay switches.
        per_seed = jax.vmap(train_one, in_axes=(0, 0, None, None, None))
        mix_shape = {k: jax.ShapeDtypeStruct(v.shape, jnp.float32) for k, v in mix0.items()}
        scalar = jax.ShapeDtypeStruct((), jnp.float32)
        if execution == 'dense':   # a group of candidates at once: every op of every edge runs anyway
            fn = jax.vmap(per_seed, in_axes=(None, None, 0, 0, 0))
            mix_shape, scalar = jax.tree.map(lambda s: jax.ShapeDtypeStruct((group,) + s.shape, s.dtype),
                                             (mix_shape, scalar))
        else:                      # one candidate per call, one compiled program for all of them
            fn = lambda v, i, mix, lr, wd: jax.tree.map(lambda a: a[None], per_seed(v, i, mix, lr, wd))
        t0 = time.perf_counter()
        lowered = jax.jit(fn).lower(variables, train_idx, mix_shape, scalar, scalar)
        t1 = time.perf_counter()
        program = lowered.compile()
        timings.append({'channels': channels, 'layers': layers, 'execution': execution, 'group': group,
                        'seeds': seeds, 'trace_s': t1 - t0, 'compile_s': time.perf_counter() - t1})
        return lambda mixes, lr, wd: program(variables, train_idx, mixes, lr, wd)

    def run_chunk(key, cs):
        channels, layers = key
        if key not in programs:
            programs[key] = build(channels, layers)
        mixes = {k: jnp.asarray(v) for k, v in stack_mixes(cell_space, [c.genotype for c in cs]).items()}
        lr = jnp.asarray([float(c.hparams.get('lr', st.lr)) for c in cs], jnp.float32)
        wd = jnp.asarray([float(c.hparams.get('weight_decay', st.weight_decay)) for c in cs], jnp.float32)
        if execution != 'dense':
            mixes, lr, wd = jax.tree.map(lambda a: a[0], (mixes, lr, wd))
        out = jax.device_get(programs[key](mixes, lr, wd))   # (candidates, seeds, ...)
        preds = out.pop('preds')
        # a seed that ended in max_skips skipped steps in a row diverged: NaN metrics (ranked last)
        failed = out.pop('consecutive_skips') >= max_skips if max_skips else np.zeros(preds.shape[:2], bool)
        for k in ('val_loss', 'val_acc'):
            out[k] = np.where(failed, np.nan, out[k])
        results = []
        for b, c in enumerate(cs):
            r = {k: float(np.mean(v[b])) for k, v in out.items()}
            r['val_f1'] = float(np.mean([_f1(preds[b, s], val[1], val[2], data.num_classes) if not failed[b, s]
                                         else np.nan for s in range(seeds)]))
            if seeds > 1:
                r['val_acc_std'] = float(np.std(out['val_acc'][b]))
            r['params'] = candidate_params(c.genotype, config, data, channels, layers)
            results.append(r)
        return results

    def evaluate(candidates: Sequence[Candidate]) -> list:
        results = [None] * len(candidates)
        shapes = {}
        for i, c in enumerate(candidates):
            name = (str(c.genotype), tuple(sorted(c.hparams.items())))
            if name in memo:       # deterministic: a repeated candidate is not trained again
                results[i] = dict(memo[name])
                continue
            key = (int(c.hparams.get('channels', m.channels)), int(c.hparams.get('layers', m.layers)))
            shapes.setdefault(key, []).append(i)
        for key, idx in shapes.items():
            padded = _group_pad(idx, group)
            for start in range(0, len(padded), group):
                chunk = padded[start:start + group]
                for i, r in zip(chunk, run_chunk(key, [candidates[i] for i in chunk])):
                    if results[i] is None:
                        results[i] = r
                        memo[(str(candidates[i].genotype), tuple(sorted(candidates[i].hparams.items())))] = dict(r)
        return results

    evaluate.timings = timings
    return FitnessFunction(evaluate, ('val_acc', 'val_f1', 'val_loss', 'train_loss', 'params', 'skipped_steps'),
                           SHORT_TRAINING_HPARAMS)


EVALNET_HPARAMS = {'lr': 'lr', 'weight_decay': 'weight_decay', 'drop_path': 'drop_path_prob',
                   'channels': 'channels', 'layers': 'layers'}


def _short_training_evalnet(config, data) -> FitnessFunction:
    """Short training of the genotype's own evaluation network (:func:`jaxnas.retrain.score_genotype`,
    ``config.retrain`` with ``short_training.epochs`` and the candidate's hyperparameters).
    Every genotype is a different network, so each candidate compiles its own step: this
    is the faithful but slow backend; the ``supernet`` one shares one compiled program."""
    from jaxnas import retrain
    st = config.discrete.short_training

    def evaluate(candidates: Sequence[Candidate]) -> list:
        out = []
        for c in candidates:
            cfg = copy.deepcopy(config)
            cfg.retrain.epochs = int(st.epochs)
            cfg.retrain.max_nonfinite_steps = int(_option(st, 'max_nonfinite_steps', 10))
            for name, value in c.hparams.items():
                cfg.retrain[EVALNET_HPARAMS[name]] = type(cfg.retrain[EVALNET_HPARAMS[name]])(value)
            try:
                score = retrain.score_genotype(c.genotype, cfg, seeds=(config.seed,), split='val', dataset=data)[0]
            except train.NonfiniteError:   # diverged: a failed evaluation, ranked last
                score = {'accuracy': math.nan, 'f1': math.nan}
            params = candidate_params(c.genotype, cfg, data, int(cfg.retrain.channels), int(cfg.retrain.layers))
            out.append({'val_acc': score['accuracy'], 'val_f1': score['f1'], 'params': params})
        return out

    return FitnessFunction(evaluate, ('val_acc', 'val_f1', 'params'), tuple(EVALNET_HPARAMS))


_PARAMS_CACHE = {}


def candidate_params(genotype, config, data, channels: int, layers: int) -> int:
    """Trainable parameters of the genotype's evaluation network (no auxiliary head) at
    width ``channels`` and depth ``layers`` (``retrain.channels`` / ``retrain.layers``),
    from shapes only."""
    shape = tuple(data.train_x.shape[1:])
    key = (str(genotype), data.num_classes, shape, channels, layers)
    if key not in _PARAMS_CACHE:
        retrain = copy.deepcopy(config.retrain)
        retrain.channels, retrain.layers, retrain.auxiliary_weight = int(channels), int(layers), 0.0
        net = spaces.of_genotype(genotype).eval_network(genotype, retrain, data.num_classes)
        _PARAMS_CACHE[key] = costs.param_counts(net, shape)['network']
    return _PARAMS_CACHE[key]


# ----------------------------------------------------------------------------- weight sharing

SUPERNET_SECTIONS = ('seed', 'space', 'data', 'model', 'relaxation', 'search', 'optim')


def supernet_config(config):
    """The ``jaxnas search`` config of the weight-sharing supernet: the sections that shape
    it (:data:`SUPERNET_SECTIONS`) from ``config``, the relaxation and epochs from
    ``discrete.weight_sharing``, everything else at its default, so searchers and
    fitness settings that differ only in ``discrete`` share one supernet."""
    from jaxnas import config as config_lib
    ws = config.discrete.weight_sharing
    s = config_lib.base_config()
    for name in SUPERNET_SECTIONS:
        value = config[name]
        s[name] = copy.deepcopy(value) if hasattr(value, 'to_dict') else value
    s.name = 'weight_sharing_supernet'
    s.relaxation.name = ws.relaxation
    s.relaxation.kwargs = type(config.relaxation.kwargs)()
    s.search.epochs = ws.epochs
    s.search.mode = ''
    s.search.hessian_every = 0     # a diagnostic of gradient search, not needed to rank candidates
    return s


def supernet_dir(config, workdir: str) -> str:
    """Where the supernet of ``config`` is trained: ``discrete.weight_sharing.cache_dir``
    (default: ``supernets/`` beside ``workdir``), in a folder keyed by a hash of
    :func:`supernet_config`, so every discrete run with the same supernet reuses it."""
    import hashlib
    s = supernet_config(config)
    digest = hashlib.sha1(s.to_json_best_effort(sort_keys=True).encode()).hexdigest()[:12]
    root = _option(config.discrete.weight_sharing, 'cache_dir', '') or \
        os.path.join(os.path.dirname(os.path.abspath(workdir)), 'supernets')
    return os.path.join(os.path.expanduser(root), f'{config.data.name}_{s.relaxation.name}_{digest}')


def shared_supernet(sconfig, sdir: str, data) -> tuple:
    """``(summary, reused, state)`` of the supernet of ``sconfig`` in ``sdir``, trained
    there once: under ``sdir``'s lock (waiting while another process holds it, e.g. trains
    it), reused when its ``summary.json`` is complete, else trained or resumed. A final
    checkpoint that turns out unreadable (restored to an earlier epoch) is trained again."""
    from jaxnas import search
    with runs.locked(sdir, wait=True, purpose='training the shared supernet'):
        summary = runs.read_json(os.path.join(sdir, 'summary.json'), default={})
        reused = bool(summary.get('complete'))
        if not reused:
            summary = search.run_search(sconfig, sdir, progress=False, dataset=data)
        searcher = search.Searcher(sconfig, data)
        template = searcher.init_state()
        step, state = runs.restore(os.path.join(sdir, 'checkpoints'), template)
        if step != sconfig.search.epochs:   # the last checkpoint was unreadable (set aside): train it again
            summary, reused = search.run_search(sconfig, sdir, progress=False, dataset=data), False
            _, state = runs.restore(os.path.join(sdir, 'checkpoints'), template)
    return summary, reused, state


def make_weight_sharing(config, space, *, dataset=None, workdir=None) -> FitnessFunction:
    """Rank candidates by a trained supernet's arch-val accuracy under their one-hot mix.

    The supernet is trained (or resumed) in :func:`supernet_dir` on first use and reused
    by every later run with the same supernet config; ``workdir/supernet.json`` records
    which one a run used. Runs started together share it: the first trains it, holding
    the folder's lock, and the others wait for it (one-line note) and then reuse it
    (:func:`shared_supernet`).
    """
    cell_space = spaces.get(config.space)
    ws = config.discrete.weight_sharing
    if ws.batch_norm not in ('batch', 'running'):
        raise FitnessError(f"bad config value discrete.weight_sharing.batch_norm={ws.batch_norm!r}: "
                           "choose batch or running")
    execution = _option(ws, 'execution', 'single_path')
    _check_execution(execution, 'weight_sharing.execution')
    if workdir is None:
        raise FitnessError('the weight_sharing fitness needs a work directory (its supernet is cached beside it)')
    sconfig = supernet_config(config)
    data = _load_data(config, dataset)
    sdir = supernet_dir(config, workdir)
    t0 = time.perf_counter()
    summary, reused, state = shared_supernet(sconfig, sdir, data)
    runs.write_json(os.path.join(workdir, 'supernet.json'),
                    {'dir': sdir, 'reused': reused, 'seconds': time.perf_counter() - t0, 'summary': summary})
    net = cell_space.search_network(config.model, data.num_classes, mode=execution)
    variables = {'params': state.params, 'batch_stats': state.batch_stats}
    val = _val_batches(data, ws.eval_examples, config.data.eval_batch_size)
    group = config.discrete.batch_size if execution == 'dense' else 1
    train_mode_bn = ws.batch_norm == 'batch'

    def score_one(variables, mix):
        return _scored(net, variables, mix, *val, train_mode_bn)

    if execution == 'dense':    # a group at once under vmap: every op runs anyway
        score = jax.jit(jax.vmap(score_one, in_axes=(None, 0)))
    else:                       # one candidate per call: only its ops run
        score = jax.jit(lambda v, mix: jax.tree.map(lambda a: a[None], score_one(v, mix)))
    num_classes = data.num_classes

    def evaluate(candidates: Sequence[Candidate]) -> list:
        results = []
        padded = _group_pad(list(candidates), group)
        for start in range(0, len(padded), group):
            chunk = padded[start:start + group]
            mixes = {k: jnp.asarray(v) for k, v in stack_mixes(cell_space, [c.genotype for c in chunk]).items()}
            if execution != 'dense':
                mixes = jax.tree.map(lambda a: a[0], mixes)
            loss, acc, preds = jax.device_get(score(variables, mixes))
            results += [{'val_loss': float(l), 'val_acc': float(a), 'val_f1': _f1(p, val[1], val[2], num_classes)}
                        for l, a, p in zip(loss, acc, preds)]
        results = results[:len(candidates)]
        for c, r in zip(candidates, results):
            r['params'] = candidate_params(c.genotype, config, data, config.model.channels, config.model.layers)
        return results

    evaluate.supernet_summary = summary
    evaluate.supernet_dir = sdir
    return FitnessFunction(evaluate, ('val_acc', 'val_f1', 'val_loss', 'params'), ())


# ----------------------------------------------------------------------------- tabular

def make_tabular(config, space, *, dataset=None, workdir=None) -> FitnessFunction:
    """Lookups in the space's tabular benchmark (NAS-Bench-201 / NATS-Bench)."""
    del dataset, workdir
    bench_def = spaces.get(config.space).tabular
    if bench_def is None:
        with_tabular = [n for n in spaces.names() if spaces.get(n).tabular is not None]
        raise FitnessError(f"the tabular fitness needs a space with a tabular benchmark "
                           f"({', '.join(with_tabular)}); space {config.space!r} has none")
    tb = config.discrete.tabular
    if not tb.path:
        raise FitnessError('the tabular fitness needs discrete.tabular.path, the NATS-Bench topology '
                           'file or directory (NATS-tss-v1_0-3ffb9-simple)')
    bench = bench_def.open(tb.path)

    def evaluate(candidates: Sequence[Candidate]) -> list:
        out = []
        for c in candidates:
            try:
                r = bench_def.query(bench, c.genotype, dataset=tb.dataset, hp=tb.hp)
            except JaxnasError:
                r = None
            if r is None:
                out.append({k: math.nan for k in TABULAR_METRICS})
            else:
                out.append({k: float(r[k]) for k in TABULAR_METRICS})
        return out

    return FitnessFunction(evaluate, TABULAR_METRICS, ())


TABULAR_METRICS = ('val_acc', 'test_acc', 'params', 'flops', 'latency')


FITNESS_MODES = {
    'short_training': make_short_training,
    'weight_sharing': make_weight_sharing,
    'tabular': make_tabular,
}


def make_fitness(config, space, *, dataset=None, workdir: Optional[str] = None) -> FitnessFunction:
    mode = config.discrete.fitness.mode
    if mode not in FITNESS_MODES:
        raise FitnessError(f"unknown fitness mode {mode!r}; choose one of {', '.join(FITNESS_MODES)}")
    fn = FITNESS_MODES[mode](config, space, dataset=dataset, workdir=workdir)
    unknown = [n for n, _ in space.hparams if n not in fn.hparams]
    if unknown:
        raise FitnessError(f"fitness mode {mode} cannot use hyperparameter {unknown[0]!r}; it understands "
                           f"{', '.join(fn.hparams) or 'none (it scores architectures only)'}")
    return fn
