"""``jaxnas run``: search -> derive -> retrain the NAS network and a width-matched manual
baseline over several seeds -> score -> report.

The experiment of the seed paper (Mondal & Patil, IJRAET 13(1), 2024: NAS-optimised vs
manually designed models on accuracy, precision, recall, F1 and efficiency), run under
the DARTS protocol (Liu et al., ICLR 2019): the search's genotype is trained from scratch
(:mod:`jaxnas.retrain`), and so is a hand-designed ResNet (:mod:`jaxnas.baseline`) whose
widths are chosen to match the NAS network's parameter count, with the same protocol,
budget and seeds; both are scored on the held-out test split. Beside them,
``pipeline.random_archs`` architectures drawn uniformly by the space's sampler
(:func:`random_genotypes`, seeded from ``config.seed``) are trained exactly as the NAS
cell (same evaluation network, protocol and seeds), and the report ranks the NAS cell
among them: the check that a search beats sampling from its own space (Li & Talwalkar,
UAI 2019; Yu et al., ICLR 2020).

Stages and their outputs in ``workdir``, each skipped when its output is complete, so an
interrupted run resumes where it stopped (and each training stage resumes from its own
orbax checkpoint):

- ``search/`` (:func:`jaxnas.search.run_search`; ``pipeline.search_epochs`` > 0 shortens
  it) -- skipped with ``--genotype``;
- ``genotype.txt`` (the derived cell);
- ``nas/``, ``manual/`` and ``random_1/`` ... ``random_<K>/`` (:func:`jaxnas.retrain.fit`:
  ``scores.json``, ``scores_seed<k>.json``, checkpoints, logs);
- ``report.md``, ``report.json``, ``comparison.png``, ``cell_normal.png``,
  ``cell_reduce.png`` (:mod:`jaxnas.report`); ``timings.json``.

Everything the user gave is checked before anything is written: a bad genotype or a
missing search directory ends with one line and exit status 2, and a work directory
holding a run with a different config is refused, never overwritten.
"""
from __future__ import annotations

import os
import time
from typing import Optional

import jax

from jaxnas import baseline, config as config_lib, report, retrain, runs, search, spaces
from jaxnas.errors import JaxnasError


class PipelineError(JaxnasError):
    """A pipeline request that cannot run (one line)."""


def validate(config) -> None:
    config_lib.validate(config)
    retrain.validate(config)
    p = config.pipeline
    if p.num_seeds < 1:
        raise PipelineError(f'bad config value pipeline.num_seeds={p.num_seeds!r}: must be >= 1')
    if p.search_epochs < 0:
        raise PipelineError(f'bad config value pipeline.search_epochs={p.search_epochs!r}: must be >= 0 '
                            '(0: search.epochs)')
    if p.random_archs < 0:
        raise PipelineError(f'bad config value pipeline.random_archs={p.random_archs!r}: must be >= 0 '
                            '(0: no random architectures)')


# The stream of the random architectures' draws: fold_in(key(config.seed), RANDOM_STREAM),
# apart from every other use of the seed (initialisation, data order, search).
RANDOM_STREAM = 0x72616E64  # 'rand'


def random_genotypes(config, space=None) -> list:
    """The pipeline's ``pipeline.random_archs`` random architectures: ``space.sample`` (uniform
    over the space) with keys ``fold_in(fold_in(key(seed), RANDOM_STREAM), i)``, i = 0, 1, ...,
    keeping the first distinct ones, so the same seed always draws the same list."""
    space = space or spaces.get(config.space)
    want = int(config.pipeline.random_archs)
    base = jax.random.fold_in(jax.random.key(config.seed), RANDOM_STREAM)
    out, seen = [], set()
    for i in range(100 * want):
        if len(out) == want:
            break
        g = space.sample(jax.random.fold_in(base, i))
        if str(g) not in seen:
            seen.add(str(g))
            out.append(g)
    if len(out) < want:
        raise PipelineError(f'bad config value pipeline.random_archs={want}: the {space.name} space gave only '
                            f'{len(out)} distinct architectures in {100 * want} draws')
    return out


def search_config(config):
    """The config of the pipeline's search stage (``search.epochs`` from the pipeline)."""
    c = config.copy_and_resolve_references()
    if config.pipeline.search_epochs:
        c.search.epochs = int(config.pipeline.search_epochs)
    return c


def _timings(workdir: str, stage: str, seconds: Optional[float] = None) -> dict:
    """The stages' wall seconds in ``timings.json``, ``seconds`` added to ``stage``'s."""
    path = os.path.join(workdir, 'timings.json')
    timings = runs.read_json(path, default={})
    if seconds is not None:
        timings[stage] = timings.get(stage, 0.0) + seconds
        runs.write_json(path, timings)
    return timings


@runs.releases_locks
def run_pipeline(config, workdir: str, *, genotype_spec: Optional[str] = None, progress: bool = True) -> dict:
    """Run (or resume) the whole pipeline into ``workdir``; returns ``report.json``'s dict."""
    validate(config)
    genotype = retrain.resolve_genotype(genotype_spec, config.space) if genotype_spec else None  # fail before writing
    space = spaces.of_genotype(genotype) if genotype is not None else spaces.get(config.space)
    random_archs = random_genotypes(config, space)
    runs.claim(workdir, 'pipeline', config, genotype=genotype_spec)
    report_path = os.path.join(workdir, 'report.json')
    if os.path.exists(report_path):
        return runs.read_json(report_path)
    say = print if progress else (lambda *a, **k: None)

    # ---- search -------------------------------------------------------------------------
    if genotype is None:
        search_dir = os.path.join(workdir, 'search')
        if not os.path.exists(os.path.join(search_dir, 'genotype.txt')):
            say(f'[jaxnas run] search -> {search_dir}')
            t0 = time.time()
            summary = search.run_search(search_config(config), search_dir, progress=progress)
            _timings(workdir, 'search', time.time() - t0)
            if not summary['complete']:
                raise PipelineError(f'the search in {search_dir} did not finish; rerun to resume it')
        genotype = retrain.resolve_genotype(search_dir, config.space)

    # ---- derive -------------------------------------------------------------------------
    runs.write_text(os.path.join(workdir, 'genotype.txt'), str(genotype) + '\n')
    say(f'[jaxnas run] genotype: {genotype}')

    # ---- retrain NAS and manual networks ------------------------------------------------
    data = retrain.load_data(config, 'test')
    seeds = [config.seed + k for k in range(config.pipeline.num_seeds)]
    nas_net = retrain.build_network(genotype, config, data.num_classes)
    say(f'[jaxnas run] retrain the NAS network ({len(seeds)} seeds) -> {workdir}/nas')
    t0 = time.time()
    nas = retrain.fit(nas_net, config, data, seeds, os.path.join(workdir, 'nas'), progress=progress,
                      description={'model': 'nas', 'space': spaces.of_genotype(genotype).name,
                                   'network': type(nas_net).__name__, 'genotype': str(genotype)})
    _timings(workdir, 'retrain_nas', time.time() - t0)
    target = nas['cost']['params']
    manual_net, info = baseline.make_baseline(target, blocks=config.baseline.blocks,
                                              in_channels=data.train_x.shape[-1], num_classes=data.num_classes,
                                              tolerance=config.baseline.tolerance)
    say(f"[jaxnas run] retrain the manual ResNet (widths {info['widths']}, {info['params']} params vs NAS "
        f"{target}) -> {workdir}/manual")
    t0 = time.time()
    manual = retrain.fit(manual_net, config, data, seeds, os.path.join(workdir, 'manual'), progress=progress,
                         description={'model': 'manual', 'network': 'ResNet', **info})
    _timings(workdir, 'retrain_manual', time.time() - t0)

    # ---- retrain random architectures of the same space ---------------------------------
    randoms = []
    for k, g in enumerate(random_archs, 1):
        net = retrain.build_network(g, config, data.num_classes)
        run_dir = os.path.join(workdir, f'random_{k}')
        say(f'[jaxnas run] retrain random architecture {k}/{config.pipeline.random_archs} -> {run_dir}')
        t0 = time.time()
        summary = retrain.fit(net, config, data, seeds, run_dir, progress=progress,
                              description={'model': 'random', 'space': space.name, 'network': type(net).__name__,
                                           'genotype': str(g)})
        _timings(workdir, 'retrain_random', time.time() - t0)
        summary.pop('state', None)
        randoms.append((g, summary))

    # ---- report -------------------------------------------------------------------------
    meta = {'data': config.data.name, 'seeds': seeds, 'timings': _timings(workdir, ''),
            'search_epochs': search_config(config).search.epochs if not genotype_spec else None,
            'genotype_source': genotype_spec or os.path.join(workdir, 'search'),
            'notes': [f"The manual ResNet's widths were chosen to match the NAS network's "
                      f"{target} parameters ({100 * info['relative_difference']:+.2f}%); both trained with "
                      f"config.retrain ({config.retrain.epochs} epochs) on the same seeds."]}
    nas.pop('state', None)
    manual.pop('state', None)
    from jaxnas import cost_report   # the search-network cost columns (cost.report_models)
    nas['genotype_cost'] = cost_report.genotype_costs(config, genotype)
    for g, summary in randoms:
        summary['genotype_cost'] = cost_report.genotype_costs(config, g)
    if randoms:
        meta['notes'].append(f'{len(randoms)} random architectures drawn by the {space.name} space\'s sampler '
                             f'(seed {config.seed}) were trained exactly as the NAS network: same evaluation '
                             'network width and depth, protocol and seeds.')
    label = f'NAS ({space.label})'
    out = report.write_report(workdir, genotype, {label: nas, 'Manual (ResNet)': manual}, meta,
                              random=randoms or None)
    say(f'[jaxnas run] report: {workdir}/report.md')
    return out


def _command(args, overrides) -> int:
    from jaxnas import cli
    config, workdir = cli.prepare(args, overrides, validate, lambda c: f'{c.name}_pipeline')
    t0 = time.time()
    out = run_pipeline(config, workdir, genotype_spec=args.genotype, progress=not args.no_progress)
    with open(os.path.join(workdir, 'report.md')) as f:
        print(f.read())
    print(f'[jaxnas run] done in {time.time() - t0:.0f} s (this call); outputs in {workdir}')
    del out
    return 0


def register(subparsers) -> None:
    """``jaxnas run``: the whole pipeline, search to report."""
    from jaxnas import cli
    p = cli.add_command(subparsers, 'run', _command,
                        help='search, retrain NAS, manual and random networks over seeds, report',
                        description='Search -> derive -> retrain the NAS network, a parameter-matched ResNet and '
                        'pipeline.random_archs random cells over several seeds -> score on the test split -> Markdown/PNG report.',
                        default_config='DARTS on the embedded digits, 3 seeds')
    cli.add_genotype_option(p, required=False, help_prefix='skip the search and use this genotype')
