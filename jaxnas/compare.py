"""``jaxnas compare``: relaxation variants side by side on one space, data set and budget.

Runs every relaxation of ``config.compare.relaxations`` with every seed of
``config.compare.seeds`` (each a normal search in ``workdir/<relaxation>_seed<s>``, so an
interrupted study resumes where it stopped) and writes into ``workdir`` (claimed by
``run.json``, :func:`jaxnas.runs.claim`: a different study there is refused):

- ``compare.md`` / ``compare.csv`` / ``compare.json``: per relaxation, mean ± std over
  seeds of the one supernet metric, ``derived_val_acc`` (:mod:`jaxnas.supernet_metric`:
  the derived genotype's path, BatchNorm recalibrated on training batches; the rows are
  ranked on it), the methods' own supernet accuracies under their explicit names
  (``supernet_val_acc_mixture`` where the mode runs a mixture, ``supernet_val_acc_sampled``),
  skip_connect count of the derived normal cell, dominant Hessian eigenvalue, search wall
  time and step time, and the derived genotype of each seed;
- ``alphas.png``: the relaxed weight of each op (mean over the normal cell's edges)
  over the epochs, one panel per relaxation;
- ``eigenvalue.png``: the dominant eigenvalue over the epochs per relaxation;
- ``collapse.png``: per epoch, the derived normal cell's skip_connect count, the signed
  dominant eigenvalue and the supernet metric (``derived_val_acc``), mean over seeds.
"""
from __future__ import annotations

import json
import os
import time

import ml_collections
import numpy as np

from jaxnas import aggregate, config as config_lib, runs as runs_lib, search, spaces, supernet_metric
from jaxnas.aggregate import Column


def _runs(config):
    for name in config.compare.relaxations:
        for seed in config.compare.seeds:
            c = config.copy_and_resolve_references()
            c.relaxation.name = name
            kwargs = config.compare.kwargs.get(name, {})
            c.relaxation.kwargs = ml_collections.ConfigDict(
                kwargs.to_dict() if isinstance(kwargs, ml_collections.ConfigDict) else dict(kwargs))
            c.seed = int(seed)
            c.name = f'{config.name}_{name}_seed{seed}'
            yield name, int(seed), c


def validate(config) -> None:
    if not config.compare.relaxations:
        raise config_lib.ConfigError('bad config value compare.relaxations=(): name at least one relaxation')
    if not config.compare.seeds:
        raise config_lib.ConfigError('bad config value compare.seeds=(): give at least one seed')
    unknown = [k for k in config.compare.kwargs if k not in config.compare.relaxations]
    if unknown:
        raise config_lib.ConfigError(f'bad config value compare.kwargs: {unknown[0]!r} is not in compare.relaxations')
    for _, _, c in _runs(config):
        config_lib.validate(c)


@runs_lib.releases_locks
def run_compare(config, workdir: str, *, progress: bool = True) -> dict:
    """Run (or resume) the study and write its table and plots; returns the JSON record."""
    validate(config)
    runs_lib.claim(workdir, 'compare', config)
    rows = {}
    for name, seed, c in _runs(config):
        run_dir = os.path.join(workdir, f'{name}_seed{seed}')
        t0 = time.time()
        summary = search.run_search(c, run_dir, progress=progress)
        log = runs_lib.read_jsonl(os.path.join(run_dir, 'log.jsonl'))
        rows.setdefault(name, []).append({
            'seed': seed, 'summary': summary, 'log': log,
            'search_wall_time_s': float(sum(r['epoch_time_s'] for r in log)),
            'step_time_s': float(np.median([r['step_time_s'] for r in log])),
            'call_time_s': time.time() - t0,
        })
    record = {'name': config.name, 'space': config.space, 'data': config.data.name,
              'epochs': config.search.epochs, 'seeds': list(config.compare.seeds), 'relaxations': {}}
    record['metric'] = next(iter(rows.values()))[0]['summary'].get('derived_metric') if rows else None
    for name, runs in rows.items():
        stats = {}
        for key, get in [(k, lambda r, k=k: r['summary'].get(k)) for k in METRICS] + [
                         ('skip_connect_normal', lambda r: r['summary'].get('skip_connect_normal')),
                         ('hessian_eigenvalue', lambda r: r['log'][-1].get('hessian_eigenvalue')),
                         ('entropy', lambda r: r['log'][-1].get('entropy')),
                         ('search_wall_time_s', lambda r: r['search_wall_time_s']),
                         ('step_time_s', lambda r: r['step_time_s'])]:
            mean, std = aggregate.mean_std([get(r) for r in runs])
            stats[key] = {'mean': mean, 'std': std}
        stats['mode'] = runs[0]['summary']['mode']
        stats['genotypes'] = {r['seed']: r['summary']['genotype'] for r in runs}
        if spaces.get(config.space).tabular is not None:
            stats['tabular'] = {r['seed']: r['summary'].get('tabular') for r in runs}
        record['relaxations'][name] = stats
    record['ranking'] = ranking(record['relaxations'])
    _write_table(record, workdir)
    _plot(rows, config, workdir)
    runs_lib.write_json(os.path.join(workdir, 'compare.json'), record)
    return record


# The one metric first (ranked on), then the methods' own supernet accuracies, named as such.
METRICS = (supernet_metric.KEY, supernet_metric.MIXTURE, supernet_metric.SAMPLED)


def ranking(relaxations: dict) -> list:
    """Relaxation names by mean ``derived_val_acc``, best first (missing values last)."""
    key = lambda name: relaxations[name][supernet_metric.KEY]['mean']
    return sorted(relaxations, key=lambda n: (key(n) is None, -(key(n) or 0.0)))


COLUMNS = [(supernet_metric.KEY, 'derived val acc (ranked)', 3),
           (supernet_metric.MIXTURE, 'own: mixture val acc', 3),
           (supernet_metric.SAMPLED, 'own: sampled arch-batch acc', 3),
           ('skip_connect_normal', 'skip_connect (normal)', 1),
           ('hessian_eigenvalue', 'Hessian λ_max', 4), ('entropy', 'entropy', 3),
           ('search_wall_time_s', 'search wall time s', 1), ('step_time_s', 'step time s', 3)]


def table(record) -> tuple:
    """``(columns, rows)`` of the study's table (:mod:`jaxnas.aggregate`'s table code): rank,
    relaxation, mode, then mean ± std per :data:`COLUMNS`, rows in ranking order."""
    columns = [Column('rank', 'rank'), Column('relaxation', 'relaxation'), Column('mode', 'mode')]
    columns += [Column(key, header, digits) for key, header, digits in COLUMNS]
    rel = record['relaxations']
    rows = [{'rank': rank, 'relaxation': name, **rel[name]} for rank, name in enumerate(record['ranking'], 1)]
    return columns, rows


def _write_table(record, workdir):
    rel = record['relaxations']
    columns, rows = table(record)
    lines = [f"# Relaxations compared: {record['space']} space on {record['data']}, "
             f"{record['epochs']} epochs, seeds {record['seeds']}", ''] + aggregate.markdown(columns, rows)
    lines += ['', 'Mean ± std over seeds, ranked on `derived_val_acc`, the one supernet metric, the same for '
              f"every relaxation and mode: {record.get('metric') or 'derived path, BatchNorm recalibrated'}. "
              'The methods\' own accuracies are not comparable across rows: `supernet_val_acc_mixture` is the '
              'soft mixture of the relaxation\'s normalized weights in inference mode with the run\'s running '
              'BatchNorm statistics (DARTS\'s; n/a in single-path mode), `supernet_val_acc_sampled` the '
              'architecture step\'s training-mode accuracy on its arch-val batches with sampled weights, '
              'last epoch (AutoDL\'s GDAS metric).',
              '', 'Wall time excludes the end-of-run evaluation; step time is the '
              'median per-epoch mean (the first epoch includes compilation).', '', '## Derived genotypes', '']
    for name, s in rel.items():
        for seed, g in s['genotypes'].items():
            lines.append(f'- {name}, seed {seed}: `{g}`')
            tab = s.get('tabular', {}).get(seed) if s.get('tabular') else None
            if tab:
                lines.append(f'  - tabular: {json.dumps(tab)}')
    runs_lib.write_text(os.path.join(workdir, 'compare.md'), '\n'.join(lines) + '\n')
    runs_lib.write_text(os.path.join(workdir, 'compare.csv'), aggregate.csv_text(columns, rows))


def _plot(rows, config, workdir):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    space = spaces.get(config.space)
    cell = space.cell_types[0]
    n = len(rows)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.0), sharey=False, squeeze=False)
    for ax, (name, runs) in zip(axes[0], rows.items()):
        log = runs[0]['log']
        w = np.array([np.asarray(r['alphas'][cell]).mean(axis=0) for r in log])   # (epochs, ops)
        epochs = [r['epoch'] for r in log]
        for o, op in enumerate(space.primitives):
            ax.plot(epochs, w[:, o], marker='.', label=op)
        ax.set_title(f'{name} (seed {runs[0]["seed"]})', fontsize=9)
        ax.set_xlabel('epoch')
    axes[0][0].set_ylabel(f'mean relaxed weight ({cell} cell)')
    axes[0][-1].legend(fontsize=6, loc='best')
    fig.tight_layout()
    runs_lib.save_figure(fig, os.path.join(workdir, 'alphas.png'), dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, runs in rows.items():
        ax.plot(*_curve(runs, 'hessian_eigenvalue'), marker='o', label=name)
    ax.set_xlabel('epoch')
    ax.set_ylabel('dominant Hessian eigenvalue (val loss, α)')
    ax.legend(fontsize=7)
    fig.tight_layout()
    runs_lib.save_figure(fig, os.path.join(workdir, 'eigenvalue.png'), dpi=110)
    plt.close(fig)

    # The collapse indicators side by side (Zela et al. 2020): the derived normal cell's
    # skip_connect count, the signed λ_max, and the one supernet metric, per epoch.
    panels = [('skip_connect_normal', 'skip_connect in derived cell'),
              ('hessian_eigenvalue', 'Hessian λ_max (signed)'),
              (supernet_metric.KEY, 'derived val acc (BN recalibrated)')]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.0 * len(panels), 3.2), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        for name, runs in rows.items():
            ax.plot(*_curve(runs, key), marker='.', label=name)
        ax.set_xlabel('epoch')
        ax.set_ylabel(label)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f'{config.space} space on {config.data.name}: mean over seeds {list(config.compare.seeds)}',
                 fontsize=9)
    fig.tight_layout()
    runs_lib.save_figure(fig, os.path.join(workdir, 'collapse.png'), dpi=110)
    plt.close(fig)


def _curve(runs, key):
    """``(epochs, mean over seeds)`` of a logged value (:func:`jaxnas.aggregate.mean_curve`);
    epochs without it (e.g. between Hessian estimates) stay NaN, without a RuntimeWarning."""
    epochs, mean, _ = aggregate.mean_curve([[r.get(key, np.nan) for r in run['log']] for run in runs])
    return epochs, mean


def _command(args, overrides) -> int:
    from jaxnas import cli
    config, workdir = cli.prepare(args, overrides, validate, lambda c: f'{c.name}_compare')
    record = run_compare(config, workdir, progress=not args.no_progress)
    with open(os.path.join(workdir, 'compare.md')) as f:
        print(f.read())
    print(f'table, CSV, JSON and plots in {workdir}')
    return 0 if record['relaxations'] else 2


def register(subparsers) -> None:
    """``jaxnas compare``: relaxations x seeds on one space, data set and budget."""
    from jaxnas import cli
    cli.add_command(subparsers, 'compare', _command, help='compare relaxations over seeds with one budget',
                    description='Run every relaxation in config.compare.relaxations with every seed in '
                    'config.compare.seeds and write a table and plots.',
                    default_config='all six relaxations on the embedded digits (experiments/compare.py)')
