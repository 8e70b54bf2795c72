"""``jaxnas pareto``: accuracy against hardware cost, searched under several cost targets.

A cost-constrained search (``cost.weight > 0``, :mod:`jaxnas.costs.objective`) must end
with a derived genotype that meets its target. This study shows it and the trade-off it
buys. Into ``workdir`` (claimed by ``run.json``; each search a normal resumable run
directory, so an interrupted study resumes where it stopped):

1. ``free/``: the search without a cost term (``cost.weight = 0``); its derived
   genotype's cost ``C0`` under ``cost.model`` sets the scale;
2. ``target_<f>/`` for each ``f`` in ``pareto.targets``: the same search with target
   ``T = f * C0`` (``cost.form``, ``cost.weight``);
3. ``pareto.random_archs`` genotypes drawn uniformly by ``space.sample`` (seeded by
   ``config.seed``), the reference cloud.

Every genotype (searched and random) is then scored the same way, independently of the
supernets that found them: trained from scratch by the discrete searchers' short-training
fitness (:func:`jaxnas.fitness.make_short_training`, ``discrete.short_training.*``; one
compiled program for all, the genotype an input) and evaluated on the arch-val split.
Written: ``pareto.json`` (every point: genotype, cost, target, whether it is met, the
short-training accuracy and, for searched points, the search's own ``derived_val_acc``),
``pareto.md`` (the table) and ``pareto.png`` (accuracy vs cost: random genotypes grey,
searched genotypes coloured by target with their targets as dotted lines, and the
non-dominated front of all points).
"""
from __future__ import annotations

import os

import jax
import numpy as np

from jaxnas import config as config_lib, costs, data as data_lib, fitness, runs, search, spaces
from jaxnas.spaces.choices import Candidate


def validate(config) -> None:
    # each search gets its own target (a fraction of the unconstrained cost): check one stand-in
    config_lib.validate(_search_config(config, 'check', config.cost.weight, 1e9))
    p = config.pareto
    if not config.cost.model:
        raise config_lib.ConfigError("bad config value cost.model='': the pareto study needs a cost model "
                                     '(use --config experiments/cost_pareto.py, or --config.cost.model=xla)')
    if not p.targets or any(not 0 < f for f in p.targets):
        raise config_lib.ConfigError(f'bad config value pareto.targets={tuple(p.targets)!r}: give fractions > 0 of '
                                     'the unconstrained genotype\'s cost')
    if not config.cost.weight > 0:
        raise config_lib.ConfigError(f'bad config value cost.weight={config.cost.weight!r}: the constrained '
                                     'searches need a weight > 0')
    if p.random_archs < 0:
        raise config_lib.ConfigError(f'bad config value pareto.random_archs={p.random_archs!r}: must be >= 0')


def _search_config(config, name: str, weight: float, target: float):
    c = config.copy_and_resolve_references()
    c.name = f'{config.name}_{name}'
    c.cost.weight = float(weight)
    c.cost.target = float(target)
    return c


def random_genotypes(space, seed: int, n: int) -> list:
    """The first ``n`` distinct genotypes of ``space.sample`` seeded by ``seed``."""
    out, seen, i = [], set(), 0
    key = jax.random.key(seed + 7919)
    while len(out) < n and i < 50 * max(n, 1):
        g = space.sample(jax.random.fold_in(key, i))
        i += 1
        if str(g) not in seen:
            seen.add(str(g))
            out.append(g)
    return out


def pareto_front(points: list) -> list:
    """Indices of the points no other point dominates (lower or equal cost and higher or
    equal accuracy, one strictly), by ascending cost."""
    idx = []
    for i, p in enumerate(points):
        dominated = any((q['cost'] <= p['cost'] and q['acc'] >= p['acc'])
                        and (q['cost'] < p['cost'] or q['acc'] > p['acc']) for q in points)
        if not dominated and np.isfinite(p['acc']):
            idx.append(i)
    return sorted(idx, key=lambda i: points[i]['cost'])


@runs.releases_locks
def run_pareto(config, workdir: str, *, progress: bool = True, dataset=None) -> dict:
    validate(config)
    space = spaces.get(config.space)
    runs.claim(workdir, 'pareto', config)
    d = config.data
    data = dataset or data_lib.load_dataset(d.name, data_dir=d.data_dir, train_portion=d.train_portion,
                                            seed=config.seed, limit=d.limit or None)
    searched = []
    free = search.run_search(_search_config(config, 'free', 0.0, 0.0), os.path.join(workdir, 'free'),
                             progress=progress, dataset=data)
    c0 = free['cost']['genotype_cost']
    searched.append({'name': 'free', 'fraction': None, 'target': None, 'summary': free})
    for f in config.pareto.targets:
        name = f'target_{f:g}'
        s = search.run_search(_search_config(config, name, config.cost.weight, f * c0),
                              os.path.join(workdir, name), progress=progress, dataset=data)
        searched.append({'name': name, 'fraction': float(f), 'target': f * c0, 'summary': s})
    table = costs.build_table(space, config.model, data.train_x.shape[1:], config.cost.model,
                              batch=config.cost.batch or None, dtype=config.cost.dtype or None)
    randoms = random_genotypes(space, config.seed, config.pareto.random_archs)
    genotypes = [space.parse(r['summary']['genotype']) for r in searched] + randoms
    scorer = fitness.make_short_training(config, space, dataset=data)
    scores = scorer.evaluate([Candidate(g, {}) for g in genotypes])
    points = []
    for i, (g, m) in enumerate(zip(genotypes, scores)):
        p = {'kind': 'searched' if i < len(searched) else 'random', 'genotype': str(g),
             'cost': table.genotype_cost(g, space), 'acc': float(m['val_acc'])}
        if i < len(searched):
            r = searched[i]
            p.update({'name': r['name'], 'fraction': r['fraction'], 'target': r['target'],
                      'meets_target': None if r['target'] is None else bool(p['cost'] <= r['target']),
                      'derived_val_acc': r['summary'].get('derived_val_acc'),
                      'derived_test_acc': r['summary'].get('derived_test_acc')})
        points.append(p)
    front = pareto_front(points)
    for i in front:
        points[i]['on_front'] = True
    rand_costs = [p['cost'] for p in points if p['kind'] == 'random']
    record = {'space': config.space, 'data': config.data.name, 'cost_model': table.model, 'unit': table.unit,
              'cost_batch': table.batch, 'cost_dtype': table.dtype, 'form': config.cost.form,
              'weight': config.cost.weight, 'search_epochs': config.search.epochs,
              'relaxation': config.relaxation.name, 'seed': config.seed, 'free_cost': c0,
              'scorer': {'kind': 'short_training', 'steps': config.discrete.short_training.steps,
                         'network': config.discrete.short_training.network, 'metric': 'val_acc (arch-val split)'},
              'random_cost_range': [min(rand_costs), max(rand_costs)] if rand_costs else None,
              'points': points, 'front': front,
              'all_targets_met': all(p['meets_target'] for p in points if p.get('meets_target') is not None)}
    runs.write_json(os.path.join(workdir, 'pareto.json'), record)
    runs.write_text(os.path.join(workdir, 'pareto.md'), markdown(record))
    plot(record, os.path.join(workdir, 'pareto.png'))
    return record


def markdown(record: dict) -> str:
    u = record['unit']
    lines = [f"# Accuracy vs {record['cost_model']} cost: {record['space']} space on {record['data']}", '',
             f"Searches: {record['relaxation']}, {record['search_epochs']} epochs, seed {record['seed']}; cost term "
             f"`{record['form']}` with weight {record['weight']:g}; targets are fractions of the unconstrained "
             f"genotype's cost ({record['free_cost']:.4g} {u}). Accuracy: every genotype trained from scratch by the "
             f"short-training fitness ({record['scorer']['steps']} steps, {record['scorer']['network']} network), "
             'arch-val split; the searches\' own derived_val_acc (supernet metric) beside it.', '',
             f'| search | target ({u}) | derived genotype cost ({u}) | meets target | short-training val acc | '
             'search derived_val_acc | on front |', '|---|---|---|---|---|---|---|']
    for p in record['points']:
        if p['kind'] != 'searched':
            continue
        target = '—' if p['target'] is None else f"{p['target']:.4g} ({p['fraction']:g}·C0)"
        met = '—' if p['meets_target'] is None else ('yes' if p['meets_target'] else '**no**')
        dva = '—' if p.get('derived_val_acc') is None else f"{p['derived_val_acc']:.3f}"
        lines.append(f"| {p['name']} | {target} | {p['cost']:.4g} | {met} | {p['acc']:.3f} | {dva} | "
                     f"{'yes' if p.get('on_front') else ''} |")
    rand = [p for p in record['points'] if p['kind'] == 'random']
    if rand:
        accs = np.array([p['acc'] for p in rand])
        lo, hi = record['random_cost_range']
        n_front = sum(1 for p in rand if p.get('on_front'))
        lines += ['', f'Random genotypes: {len(rand)}, cost {lo:.4g}–{hi:.4g} {u}, short-training val acc '
                      f'{accs.mean():.3f} ± {accs.std():.3f} (min {accs.min():.3f}, max {accs.max():.3f}); '
                      f'{n_front} of them on the front.']
    lines += ['', 'Genotypes:', '']
    lines += [f"- {p['name']}: `{p['genotype']}`" for p in record['points'] if p['kind'] == 'searched']
    return '\n'.join(lines) + '\n'


def plot(record: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    pts = record['points']
    rand = [p for p in pts if p['kind'] == 'random']
    if rand:
        ax.scatter([p['cost'] for p in rand], [p['acc'] for p in rand], c='0.7', s=18, label='random genotypes',
                   zorder=1)
    front = [pts[i] for i in record['front']]
    ax.plot([p['cost'] for p in front], [p['acc'] for p in front], c='k', lw=1, ls='--', label='non-dominated front',
            zorder=2)
    searched = [p for p in pts if p['kind'] == 'searched']
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(searched)))
    for p, col in zip(searched, colors):
        label = 'unconstrained' if p['target'] is None else f"target {p['fraction']:g}·C0"
        ax.scatter([p['cost']], [p['acc']], color=col, s=60, marker='*', edgecolors='k', linewidths=0.5,
                   label=label, zorder=3)
        if p['target'] is not None:
            ax.axvline(p['target'], color=col, ls=':', lw=1)
    ax.set_xlabel(f"{record['cost_model']} cost ({record['unit']})")
    ax.set_ylabel('short-training val acc')
    ax.set_title(f"{record['space']} on {record['data']}: {record['relaxation']} with a {record['form']} cost term",
                 fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    runs.save_figure(fig, path, dpi=110)
    plt.close(fig)


def _command(args, overrides) -> int:
    from jaxnas import cli
    config, workdir = cli.prepare(args, overrides, validate, lambda c: f'{c.name}_pareto')
    record = run_pareto(config, workdir, progress=not args.no_progress)
    with open(os.path.join(workdir, 'pareto.md')) as f:
        print(f.read())
    print(f'table, JSON and plot in {workdir}')
    return 0 if record['all_targets_met'] else 1


def register(subparsers) -> None:
    """``jaxnas pareto``: searches under several cost targets against random genotypes."""
    from jaxnas import cli
    cli.add_command(subparsers, 'pareto', _command, help='accuracy vs hardware cost over several cost targets',
                    description='Search without and with cost targets (fractions of the unconstrained '
                    "genotype's cost), score every genotype and random ones by short training, plot the front.",
                    default_config='the base config, which has no cost model: use experiments/cost_pareto.py')
