"""The discrete NAS loop: search space -> searcher -> evaluate -> good enough? -> feedback.

``run_discrete(config, workdir)`` runs one searcher (:mod:`jaxnas.searchers`: random
search, regularized evolution -- Real et al., AAAI 2019 --, REINFORCE -- Williams 1992,
Zoph & Le, ICLR 2017 --) over a choice space (:mod:`jaxnas.spaces.choices`) with a
fitness mode (:mod:`jaxnas.fitness`). Each round asks ``discrete.batch_size`` candidates,
evaluates them together and tells the fitness back. It stops at the first of: the
evaluation budget (``max_evaluations``), the wall-time budget (``max_time_s``, counted
across resumes), or a best fitness ``>= target`` ("good enough").

Outputs in ``workdir``:

- ``run.json``: the kind and config (:func:`jaxnas.runs.claim`); a different config in the
  same directory is refused;
- ``checkpoints/``: orbax checkpoints of the searcher state and the loop counters;
  rerunning resumes, and a resumed run equals an uninterrupted one (the round keys are
  ``fold_in(seed, round)`` and fitness is deterministic);
- ``history.jsonl``: one line per candidate: evaluation index, round, choice vector,
  genotype, hyperparameters, metrics, cost, fitness, whether it was rejected by a hard
  cost limit (``constrained`` / ``max_cost``: fitness NaN, ranked last, never the best),
  best so far, elapsed seconds;
- ``genotype.txt`` / ``genotype.json``: the best genotype, in the format of ``jaxnas
  search``, so ``jaxnas retrain`` takes either directory; ``best.json`` adds its
  hyperparameters and metrics; ``summary.json`` (with a cost objective its ``cost`` entry:
  the cost name, model and unit, the target and hard limit, the best candidate's cost and
  whether it meets the target, and how many candidates were rejected);
- ``best_so_far.png``: best-so-far fitness against evaluations and against wall time.
"""
from __future__ import annotations

import json
import os
import time
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import fitness as fitness_lib, runs, searchers, spaces
from jaxnas.errors import JaxnasError
from jaxnas.spaces import choices

COST_METRICS = ('params', 'macs', 'flops', 'latency')


class DiscreteConfigError(JaxnasError):
    """A bad value in the ``discrete`` section of the config."""


class LoopState(NamedTuple):
    searcher: tuple         # the searcher's state
    round: jax.Array        # rounds completed
    evaluations: jax.Array  # candidates evaluated
    elapsed_s: jax.Array    # wall seconds spent in the loop, across resumes
    best: jax.Array         # best fitness so far


def validate(config) -> None:
    """Reject values of ``config.discrete`` the loop cannot use, naming the field."""
    d = config.discrete

    def check(ok, field, msg):
        if not ok:
            value = d
            for part in field.split('.'):
                value = value[part]
            raise DiscreteConfigError(f'bad config value discrete.{field}={value!r}: {msg}')

    check(d.searcher in searchers.SEARCHERS, 'searcher', f"choose one of {', '.join(searchers.SEARCHERS)}")
    if config.space not in spaces.names():
        raise DiscreteConfigError(f"bad config value space={config.space!r}: choose one of {', '.join(spaces.names())}")
    check(isinstance(d.batch_size, int) and d.batch_size >= 1, 'batch_size', 'must be an integer >= 1')
    check(d.max_evaluations >= 1, 'max_evaluations', 'must be >= 1')
    check(d.max_time_s >= 0, 'max_time_s', 'must be >= 0 (0: no time budget)')
    check(d.checkpoint_every >= 1, 'checkpoint_every', 'must be >= 1')
    check(d.fitness.mode in fitness_lib.FITNESS_MODES, 'fitness.mode',
          f"choose one of {', '.join(fitness_lib.FITNESS_MODES)}")
    check(d.fitness.objective in fitness_lib.OBJECTIVES, 'fitness.objective',
          f"choose one of {', '.join(fitness_lib.OBJECTIVES)}")
    check(d.fitness.objective == 'metric' or d.fitness.cost, 'fitness.cost',
          f'objective {d.fitness.objective} needs a cost, e.g. params or cost (the cost.model table)')
    f = d.fitness
    try:
        fitness_lib.check_objective(f.objective, f.cost, f.cost_weight, f.cost_target, f.get('max_cost', 0.0))
        fitness_lib.cost_model_of(f.cost, config)
    except JaxnasError as e:
        raise DiscreteConfigError(f'bad config value discrete.fitness: {e}') from None
    if d.fitness.mode == 'tabular':   # checked here, before the run claims its directory
        check(spaces.get(config.space).tabular is not None, 'fitness.mode',
              f'space {config.space} has no tabular benchmark; choose short_training or weight_sharing')
        check(bool(d.tabular.path) and os.path.exists(os.path.expanduser(d.tabular.path)), 'tabular.path',
              'give the NATS-Bench topology file or directory (NATS-tss-v1_0-3ffb9-simple) that exists')
    st = d.short_training
    check(st.steps >= 1, 'short_training.steps', 'must be >= 1')
    check(st.batch_size >= 2, 'short_training.batch_size', 'must be >= 2 (BatchNorm needs a batch)')
    check(st.lr > 0, 'short_training.lr', 'must be > 0')
    check(d.weight_sharing.epochs >= 1, 'weight_sharing.epochs', 'must be >= 1')
    space = make_space(config)   # its own one-line error names discrete.hparams / discrete.cells
    try:
        make_searcher(config, space)
    except JaxnasError as e:
        raise DiscreteConfigError(f'bad config value discrete.{d.searcher}: {e}') from None


def make_space(config) -> choices.ChoiceSpace:
    d = config.discrete
    try:
        return choices.make_space(config.space, d.hparams.to_dict(), tuple(d.cells))
    except JaxnasError as e:
        raise DiscreteConfigError(f'bad config value discrete.hparams / discrete.cells: {e}') from None


def make_searcher(config, space) -> searchers.DiscreteSearcher:
    d = config.discrete
    kwargs = d[d.searcher].to_dict() if d.searcher in d else {}
    return searchers.make_searcher(d.searcher, space, batch_size=d.batch_size, **kwargs)


def cost_summary(config, objective, best_line: Optional[dict], rejected: int, units: dict) -> dict:
    """The summary's ``cost`` entry: the cost the objective reads (its model and unit when it
    comes from a cost table), the objective's target and hard limit, the best candidate's
    cost and whether it meets the target (and the limit), and how many were rejected."""
    f = config.discrete.fitness
    model = fitness_lib.cost_model_of(f.cost, config)
    best = best_line['metrics'].get(f.cost) if best_line is not None else None
    limit = objective.limit if np.isfinite(objective.limit) else None
    bounds = [b for b in (objective.target, limit) if b is not None]
    return {'metric': f.cost, 'model': model, 'unit': units.get(f.cost), 'objective': f.objective,
            'target': objective.target, 'max_cost': limit, 'best': best,
            'best_meets_target': None if best is None or not bounds else bool(best <= min(bounds)),
            'rejected': rejected}


def _steady_rate(history: list) -> Optional[float]:
    """Evaluations per minute after the first round (which holds the compile), or None."""
    later = [h for h in history if h['round'] > 0]
    first = [h['elapsed_s'] for h in history if h['round'] == 0]
    if not later or not first:
        return None
    span = later[-1]['elapsed_s'] - max(first)
    return 60.0 * len(later) / span if span > 0 else None


def plot_history(history: list, path: str, title: str = '') -> None:
    """Best-so-far fitness against evaluations and against wall time (PNG)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    evals = [h['evaluation'] + 1 for h in history]
    best = [h['best_so_far'] for h in history]
    times = [h['elapsed_s'] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, x, label in zip(axes, (evals, times), ('evaluations', 'wall time (s)')):
        ax.step(x, best, where='post')
        ax.scatter(x, [h['fitness'] if np.isfinite(h['fitness']) else np.nan for h in history], s=6, alpha=0.4)
        ax.set_xlabel(label)
        ax.set_ylabel('fitness (best so far: line)')
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    runs.save_figure(fig, path, dpi=100)
    plt.close(fig)


@runs.releases_locks
def run_discrete(config, workdir: str, *, progress: bool = True, dataset=None, fitness=None,
                 max_rounds: Optional[int] = None) -> dict:
    """Run (or resume) a discrete search into ``workdir``; returns the summary dict.

    ``fitness`` replaces the config's fitness mode (a :class:`jaxnas.fitness.FitnessFunction`,
    e.g. a toy objective in tests); ``max_rounds`` stops this call after that many rounds
    (to test resume).
    """
    validate(config)
    d = config.discrete
    space = make_space(config)
    searcher = make_searcher(config, space)
    cost_metrics = fitness_lib.make_cost_metrics(config, [d.fitness.cost])   # its table, before the claim
    runs.claim(workdir, 'discrete', config)

    t_setup = time.time()
    fitness = fitness or fitness_lib.make_fitness(config, space, dataset=dataset, workdir=workdir)
    fitness = fitness_lib.with_cost_metrics(fitness, cost_metrics)   # cost / cost:<model>
    setup_s = time.time() - t_setup   # e.g. training (or loading) the weight-sharing supernet
    max_cost = d.fitness.get('max_cost', 0.0)
    objective = fitness_lib.make_objective(d.fitness.objective, d.fitness.metric, d.fitness.cost,
                                           d.fitness.cost_weight, d.fitness.cost_target, fitness.metrics,
                                           max_cost=max_cost)
    key = jax.random.PRNGKey(config.seed)
    k_init, k_run = jax.random.split(key)
    state = LoopState(searcher.init(k_init), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32),
                      jnp.zeros((), jnp.float32), jnp.full((), -jnp.inf, jnp.float32))
    ckpt = runs.Checkpointer(os.path.join(workdir, 'checkpoints'))
    _, state = ckpt.restore(state)
    history_path = os.path.join(workdir, 'history.jsonl')
    # the candidates the checkpoint has seen (a crash may have logged more)
    history = runs.truncate_jsonl(history_path, 'evaluation', int(state.evaluations) - 1)
    evaluations, rnd = int(state.evaluations), int(state.round)
    elapsed0 = float(state.elapsed_s)
    best = max([h['fitness'] for h in history if np.isfinite(h['fitness'])], default=-np.inf)
    best_line = max((h for h in history if np.isfinite(h['fitness'])), key=lambda h: h['fitness'], default=None)

    def stop_reason():
        if d.target is not None and best >= d.target:
            return 'target'
        if evaluations >= d.max_evaluations:
            return 'evaluations'
        if d.max_time_s and elapsed0 + (time.time() - t0) >= d.max_time_s:
            return 'time'
        return None

    from tqdm.auto import tqdm
    bar = tqdm(total=d.max_evaluations, initial=evaluations, disable=not progress, unit='eval', dynamic_ncols=True)
    t0 = time.time()
    rounds_this_call = 0
    reason = stop_reason()
    while reason is None and (max_rounds is None or rounds_this_call < max_rounds):
        cand = searcher.ask(state.searcher, jax.random.fold_in(k_run, rnd))
        vectors = np.asarray(jax.device_get(cand))
        n = min(len(vectors), d.max_evaluations - evaluations)
        decoded = [space.decode(v) for v in vectors[:n]]
        metrics = fitness.evaluate(decoded)
        values = np.asarray([objective(m) for m in metrics], np.float64)
        rejected = [not objective.feasible(m) for m in metrics]   # over the hard cost limit: -inf
        values = np.where(np.isfinite(values), values, np.nan)    # ranked last by the searchers
        elapsed = elapsed0 + time.time() - t0
        lines = []
        for i, (v, c, m, fv, rej) in enumerate(zip(vectors[:n], decoded, metrics, values, rejected)):
            improved = bool(np.isfinite(fv) and fv > best)   # ties keep the earliest
            if improved:
                best = float(fv)
            line = {'evaluation': evaluations + i, 'round': rnd, 'choices': v.tolist(),
                    'genotype': str(c.genotype), 'hparams': c.hparams,
                    'metrics': {k: float(x) for k, x in m.items()},
                    'cost': {k: float(m[k]) for k in m if k in COST_METRICS or k.split(':')[0] == 'cost'},
                    'fitness': float(fv), 'rejected': bool(rej), 'best_so_far': float(best), 'elapsed_s': elapsed}
            if improved:
                best_line = line
            lines.append(line)
        history += lines
        runs.append_jsonl(history_path, lines)
        evaluations += n
        rnd += 1
        rounds_this_call += 1
        if n == len(vectors):   # a truncated last round ends the search: nothing to tell
            new = searcher.tell(state.searcher, cand, jnp.asarray(values, jnp.float32))
        else:
            new = state.searcher
        state = LoopState(new, jnp.asarray(rnd, jnp.int32), jnp.asarray(evaluations, jnp.int32),
                          jnp.asarray(elapsed, jnp.float32), jnp.asarray(best, jnp.float32))
        reason = stop_reason()
        if rnd % d.checkpoint_every == 0 or reason is not None:
            ckpt.save(rnd, state)
        left = ''
        if d.max_time_s:
            left = f', {max(0.0, d.max_time_s - (elapsed0 + time.time() - t0)):.0f}s left'
        bar.update(n)
        bar.set_postfix_str(f'best {best:.4f}{left}')
    bar.close()
    ckpt.close()

    wall = elapsed0 + time.time() - t0
    summary = {
        'name': config.name, 'workdir': os.path.abspath(workdir), 'searcher': d.searcher,
        'fitness_mode': d.fitness.mode, 'objective': d.fitness.objective, 'metric': d.fitness.metric,
        'evaluations': evaluations, 'rounds': rnd, 'stop': reason, 'complete': reason is not None,
        'best_fitness': best if np.isfinite(best) else None, 'wall_time_s': wall,
        'evaluations_per_minute': 60.0 * evaluations / wall if wall > 0 else None,
        'evaluations_per_minute_after_first_round': _steady_rate(history),
        'fitness_setup_s_this_call': setup_s,
        'space_size': space.cardinality(),
        'rejected': sum(bool(h.get('rejected')) for h in history),
    }
    if best_line is not None:
        summary.update({'best_genotype': best_line['genotype'], 'best_hparams': best_line['hparams'],
                        'best_metrics': best_line['metrics'], 'best_evaluation': best_line['evaluation']})
    if d.fitness.cost:
        summary['cost'] = cost_summary(config, objective, best_line, summary['rejected'],
                                       getattr(fitness.evaluate, 'cost_units', {}))
    if reason is not None and history:
        if best_line is not None:
            g = space.decode(np.asarray(best_line['choices'], np.int32)).genotype
            runs.write_text(os.path.join(workdir, 'genotype.txt'), str(g) + '\n')
            runs.write_json(os.path.join(workdir, 'genotype.json'), spaces.of_genotype(g).to_json(g))
            runs.write_json(os.path.join(workdir, 'best.json'), best_line)
        plot_history(history, os.path.join(workdir, 'best_so_far.png'),
                     f'{d.searcher} / {d.fitness.mode} ({config.name})')
        runs.write_json(os.path.join(workdir, 'summary.json'), summary)
    return summary


def _command(args, overrides) -> int:
    from jaxnas import cli
    if args.searcher:
        overrides = list(overrides) + [f'--config.discrete.searcher={args.searcher}']
    if args.fitness:
        overrides = list(overrides) + [f'--config.discrete.fitness.mode={args.fitness}']
    config, workdir = cli.prepare(args, overrides, validate, lambda c: f'{c.name}_{c.discrete.searcher}',
                                  needs_data=lambda c: c.discrete.fitness.mode != 'tabular')
    summary = run_discrete(config, workdir, progress=not args.no_progress)
    print(json.dumps(summary, indent=2))
    if summary.get('best_genotype') and summary['complete']:
        print(f"\nbest genotype ({workdir}/genotype.txt), fitness {summary['best_fitness']:.4f}:\n"
              f"{summary['best_genotype']}")
    return 0


def register(subparsers) -> None:
    """``jaxnas discrete``: random search, regularized evolution or REINFORCE."""
    from jaxnas import cli
    p = cli.add_command(subparsers, 'discrete', _command, help='discrete search (random, evolution, reinforce)',
                        description='Run or resume a discrete architecture (+ hyperparameter) search.',
                        default_config='regularized evolution with short training on the embedded digits')
    p.add_argument('--searcher', choices=tuple(searchers.SEARCHERS), default=None,
                   help='overrides config.discrete.searcher')
    p.add_argument('--fitness', choices=tuple(fitness_lib.FITNESS_MODES), default=None,
                   help='overrides config.discrete.fitness.mode')
