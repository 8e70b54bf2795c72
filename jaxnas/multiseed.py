"""Several seeds of one search config in one compiled program (``search.seeds``).

``run_seeds(config, workdir)`` (what :func:`jaxnas.search.run_search` calls when
``config.search.seeds`` is non-empty) runs each seed ``s`` exactly as
``jaxnas search --config.seed=s`` would: its own initialisation, its own batch order and
its own data split (:func:`jaxnas.data.load_dataset` permutes the split with the seed; the
splits have the same sizes, so the batches have the same shapes). The network, relaxation,
optimisers, cost table and the evaluation programs are built once
(:class:`jaxnas.search.Searcher` for the first seed, shallow copies with the other seeds'
data); the seeds' states are stacked on a leading axis and ONE compiled step advances all
of them: ``jit(lax.map(step))`` (``search.seed_batching='map'``, the default: the seeds in
turn inside one program, the same computation per seed as a single run) or
``jit(vmap(step))`` (``'vmap'``: batched convolutions, for accelerators; float results
then differ from the single runs by reduction order only).

Each seed writes its own normal, resumable run directory ``workdir/seed<s>/`` with the
files of :func:`jaxnas.search.run_search` (``run.json`` with that seed's config and
``search.seeds=()``, so ``jaxnas search --config.seed=s --workdir workdir/seed<s>`` would
claim and resume the same directory; ``checkpoints/`` every epoch, ``log.jsonl``, and at
the end ``genotype.txt`` / ``genotype.json`` / ``alphas.json`` / ``summary.json``), and
``workdir/seeds.json`` summarises the seeds. In the seeds' logs and summaries
``step_time_s``, ``step_compile_s`` and ``step_memory_bytes`` are those of the one program
that advances every seed. Rerunning resumes every seed from the latest epoch all of them
have checkpointed.
"""
from __future__ import annotations

import copy
import os
import time
from typing import Optional

import jax
import numpy as np

from jaxnas import config as config_lib, data as data_lib, runs, supernet_metric, train
from jaxnas.errors import JaxnasError

SEED_BATCHING = ('map', 'vmap')


def check_seeds(config) -> tuple:
    """``config.search.seeds`` as a tuple of distinct non-negative ints, or a one-line
    :class:`jaxnas.config.ConfigError`."""
    seeds = config.search.seeds

    def bad(msg):
        return config_lib.ConfigError(f'bad config value search.seeds={seeds!r}: {msg}')

    if not isinstance(seeds, (tuple, list)):
        raise bad('give distinct non-negative integer seeds, e.g. --config.search.seeds=0,1,2,3')
    if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 for s in seeds):
        raise bad('each seed must be a non-negative integer, e.g. --config.search.seeds=0,1,2,3')
    if len(set(int(s) for s in seeds)) != len(seeds):
        raise bad('the seeds must be distinct')
    if config.search.seed_batching not in SEED_BATCHING:
        raise config_lib.ConfigError(f'bad config value search.seed_batching={config.search.seed_batching!r}: '
                                     f"choose one of {', '.join(SEED_BATCHING)}")
    return tuple(int(s) for s in seeds)


def seed_config(config, seed: int):
    """The config of one seed: ``config`` with ``seed``, no ``search.seeds`` and the default
    ``search.seed_batching`` (the config ``jaxnas search --config.seed=<seed>`` runs)."""
    c = copy.deepcopy(config)
    c.seed = int(seed)
    c.search.seeds = ()
    c.search.seed_batching = config_lib.base_config().search.seed_batching
    return c


def _seed_searcher(base, config, dataset):
    """``base`` (a Searcher) with the data, split and calibration batches of ``config.seed``;
    every built network, optimiser and jitted program is shared."""
    s = copy.copy(base)
    s.config = config
    d = config.data
    if dataset is None:   # as Searcher.__init__ loads it
        data = data_lib.load_dataset(d.name, data_dir=d.data_dir, train_portion=d.train_portion, seed=config.seed,
                                     limit=d.limit or None)
        if not len(data.val_x):
            data = data._replace(val_x=data.test_x, val_y=data.test_y)
        s.data = data
    s.calibration_x = supernet_metric.calibration_batches(s.data.train_x, config.search.recalibration_batches,
                                                          d.batch_size, config.seed)
    if data_lib.num_batches(len(s.data.train_x), d.batch_size) != base.steps_per_epoch:
        raise JaxnasError(f'seed {config.seed}: the weight-train split has another number of batches than '
                          f'seed {base.config.seed} (search.seeds needs same-sized splits)')
    return s


def _stack(trees):
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


def _slice(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


def make_step(searcher, seed_batching: str):
    """One jitted (donating) step over stacked states and batches: ``vmap`` or ``lax.map``
    of the searcher's step."""
    raw = getattr(searcher.step, '__wrapped__', searcher.step)
    if seed_batching == 'vmap':
        return jax.jit(jax.vmap(raw), donate_argnums=0)
    return jax.jit(lambda st, t, v: jax.lax.map(lambda a: raw(*a), (st, t, v)), donate_argnums=0)


def _epoch_batches(searchers, epoch):
    for pairs in zip(*[s.epoch_batches(epoch) for s in searchers]):
        yield _stack([p[0] for p in pairs]), _stack([p[1] for p in pairs])


def _record(searcher, state, history, epoch, t0, step_time):
    """The log line of one seed (as :func:`jaxnas.search.run_search` writes it)."""
    means = {k: float(train.finite_mean([h[k] for h in history])) for k in history[0] if k != 'consecutive_skips'}
    weights = searcher.weights(state)
    genotype = searcher.derive(weights)
    scores = searcher.eval_splits(state, genotype, ('val',))
    return {
        'epoch': epoch + 1, 'step': int(state.step), **means,
        **scores, supernet_metric.SAMPLED: means['val_acc'],
        'epoch_time_s': time.time() - t0, 'step_time_s': step_time,
        'skipped_steps': int(state.skips.skipped), 'consecutive_skips': int(state.skips.consecutive),
        **searcher.diagnostics(state, weights, genotype, epoch + 1),
        **searcher.cost_record(genotype),
        'genotype': str(genotype),
        'alphas': {k: np.round(v, 6).tolist() for k, v in weights.items()},
    }, scores, genotype


def _finish(searcher, state, workdir, record, t_start, compile_s, step_memory):
    """The seed's summary (and end-of-run files when complete), as :func:`run_search`."""
    from jaxnas.search import finish_search
    return finish_search(searcher, state, workdir, record, t_start, compile_s, step_memory)


@runs.releases_locks
def run_seeds(config, workdir: str, *, progress: bool = True, dataset=None, max_epochs: Optional[int] = None) -> dict:
    """Run (or resume) every seed of ``config.search.seeds`` in one compiled program; each
    seed into ``workdir/seed<s>/``; returns the ``seeds.json`` dict."""
    from jaxnas import search as search_lib
    seeds = check_seeds(config)
    if not seeds:
        raise config_lib.ConfigError('bad config value search.seeds=(): run_seeds needs at least one seed')
    configs = [seed_config(config, s) for s in seeds]
    base = search_lib.Searcher(configs[0], dataset)
    if base.mesh is not None:
        raise config_lib.ConfigError('bad config value search.seeds: seeds in one program run on one device '
                                     '(set mesh.shape to one device, or run the seeds one after another)')
    searchers = [base] + [_seed_searcher(base, c, dataset) for c in configs[1:]]
    dirs = [os.path.join(workdir, f'seed{s}') for s in seeds]
    fresh = [not os.path.exists(os.path.join(d, runs.IDENTITY)) for d in dirs]
    t_start = time.time()
    step_fn = make_step(base, config.search.seed_batching)
    spe, epochs = base.steps_per_epoch, config.search.epochs
    compiled, compile_s, memory = None, None, None

    def compile_for(state):
        nonlocal compile_s, memory
        batches = next(iter(_epoch_batches(searchers, 0)))
        t0 = time.perf_counter()
        out = step_fn.lower(state, *batches).compile()
        compile_s = time.perf_counter() - t0
        if config.search.check_memory:
            memory = train.memory.check_fits(
                out, what=f'search step of {len(seeds)} seeds', disable='search.check_memory',
                lower=f'the number of search.seeds ({len(seeds)}), data.batch_size ({config.data.batch_size}) '
                      f'or model.channels ({config.model.channels})')
        else:
            memory = train.memory.step_bytes(out)
        return out

    states = [s.init_state() for s in searchers]
    state = _stack(states)
    if all(fresh):   # a new run's step is compiled (and refused if it does not fit) before anything is written
        compiled = compile_for(state)
    runs.claim(workdir, 'search-seeds', config)
    for d, c in zip(dirs, configs):
        runs.claim(d, 'search', c)
    ckpts = [runs.Checkpointer(os.path.join(d, 'checkpoints')) for d in dirs]
    latest = [c.latest_step() or 0 for c in ckpts]
    start_epoch = min(latest)
    if start_epoch:   # every seed from the latest epoch all of them have (two are kept)
        states = [c.restore(st, step=start_epoch)[1] for c, st in zip(ckpts, states)]
        state = _stack(states)
    del states
    for d in dirs:
        runs.truncate_jsonl(os.path.join(d, 'log.jsonl'), 'epoch', start_epoch)
    last = epochs if max_epochs is None else min(epochs, start_epoch + max_epochs)
    if compiled is None and start_epoch < last:
        compiled = compile_for(state)
    step_memory = [runs.kept_step_memory(d, (memory or {}).get('total')) for d in dirs]
    bar = search_lib._progress(epochs * spe, start_epoch * spe, not progress)

    def check_skips(m, at):
        limit = config.optim.max_nonfinite_steps
        worst = np.asarray(m['consecutive_skips'])
        if limit and int(worst.max()) >= limit:
            i = int(worst.argmax())
            latest_i = ckpts[i].latest_step()
            bar.close()
            for c in ckpts:
                c.close()
            train.check_skips(worst[i], limit, what=f'search (seed {seeds[i]})', step=at,
                              checkpoint=f'the last good checkpoint {dirs[i]}/checkpoints/{latest_i} '
                                         f'(epoch {latest_i}) is intact' if latest_i else 'no checkpoint was saved yet',
                              fix='lower optim.w_lr or optim.a_lr, check the data for NaN/inf, or raise '
                                  'optim.max_nonfinite_steps (0: never stop)')

    records = [None] * len(seeds)
    step_times = []
    for epoch in range(start_epoch, last):
        t0 = time.time()
        history = []
        for train_batch, val_batch in _epoch_batches(searchers, epoch):
            state, metrics = compiled(state, train_batch, val_batch)
            history.append(metrics)
            bar.update(1)
            if len(history) % 5 == 1 or len(history) == spe:
                m = jax.device_get(metrics)
                check_skips(m, epoch * spe + len(history))
                bar.set_postfix_str(f"epoch {epoch + 1}/{epochs} train loss "
                                    + ' '.join(f'{v:.3f}' for v in np.asarray(m['train_loss'])))
        history = jax.device_get(history)
        step_time = (time.time() - t0) / max(len(history), 1)
        step_times.append(step_time)
        line = []
        for i, s in enumerate(searchers):
            st = _slice(state, i)
            record, scores, genotype = _record(s, st, [_slice(h, i) for h in history], epoch, t0, step_time)
            runs.append_jsonl(os.path.join(dirs[i], 'log.jsonl'), record)
            ckpts[i].save(epoch + 1, st)
            records[i] = record
            line.append(f"seed {seeds[i]} {scores[supernet_metric.KEY]:.3f}")
        bar.write(f"epoch {epoch + 1}/{epochs}: derived val acc " + ', '.join(line))
    bar.close()
    for c in ckpts:
        c.close()
    summaries = [_finish(s, _slice(state, i), dirs[i], records[i], t_start, compile_s, step_memory[i])
                 for i, s in enumerate(searchers)]
    done = min(x['epochs_done'] for x in summaries)
    out = {
        'name': config.name, 'workdir': os.path.abspath(workdir), 'seeds': list(seeds),
        'seed_batching': config.search.seed_batching, 'epochs': epochs, 'epochs_done': done,
        'complete': done >= epochs, 'wall_time_s_this_call': time.time() - t_start,
        'step_compile_s': compile_s, 'step_memory_bytes': step_memory[0],
        'step_time_s': float(np.median(step_times)) if step_times else None,
        'runs': {str(s): {k: x.get(k) for k in ('workdir', 'complete', 'genotype', supernet_metric.KEY,
                                               'derived_test_acc') if k in x}
                 for s, x in zip(seeds, summaries)},
    }
    runs.write_json(os.path.join(workdir, 'seeds.json'), out)
    return out
