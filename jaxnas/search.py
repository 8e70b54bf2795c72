"""The gradient-based search: one straight-line loop around the jitted bilevel step.

``run_search(config, workdir)`` writes into ``workdir``:

- ``run.json``: the kind and config of the run (:func:`jaxnas.runs.claim`: a different
  config in the same directory is refused rather than mixed with, or overwriting, the
  earlier results);
- ``checkpoints/``: orbax checkpoints after every epoch (weights, BatchNorm statistics,
  architecture logits, both optimiser states, step, RNG key); rerunning with the same
  directory resumes from the last one and ends with the same bits as an uninterrupted run;
- ``log.jsonl``: one line per epoch with the metrics, the derived genotype and the
  relaxed architecture weights;
- ``genotype.txt`` / ``genotype.json`` / ``alphas.json`` / ``summary.json`` at the end.
"""
from __future__ import annotations

import itertools
import json
import os
import time
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnas import (bilevel, config as config_lib, costs, data as data_lib, parallel, relax, runs, spaces,
                    supernet_metric, train)
from jaxnas.costs import objective as cost_objective
from jaxnas.nn import convolutions, init_variables

def enable_compilation_cache(path: Optional[str] = None) -> str:
    """Turn on JAX's persistent compilation cache (``$JAXNAS_CACHE_DIR`` or ~/.cache/jaxnas);
    ``JAXNAS_CACHE_DIR=off`` leaves it off (returns ``''``)."""
    path = path or os.environ.get('JAXNAS_CACHE_DIR') or os.path.expanduser('~/.cache/jaxnas/xla')
    if path == 'off':
        return ''
    os.makedirs(path, exist_ok=True)
    jax.config.update('jax_compilation_cache_dir', path)
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)
    jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
    return path


class Searcher:
    """Everything a search needs, built from a config: data, network, step functions."""

    def __init__(self, config, dataset: Optional[data_lib.Dataset] = None):
        config_lib.validate(config)
        self.config = config
        d, m, o = config.data, config.model, config.optim
        self.data = dataset or data_lib.load_dataset(
            d.name, data_dir=d.data_dir, train_portion=d.train_portion, seed=config.seed, limit=d.limit or None)
        if not len(self.data.val_x):   # train_portion=1 (single-level only): the test split monitors
            self.data = self.data._replace(val_x=self.data.test_x, val_y=self.data.test_y)
        if len(self.data.train_x) < d.batch_size or len(self.data.val_x) < d.batch_size:
            raise config_lib.ConfigError(
                f'bad config value data.batch_size={d.batch_size}: larger than the weight-train '
                f'({len(self.data.train_x)}) or arch-val ({len(self.data.val_x)}) split')
        self.space = spaces.get(config.space)
        # Data parallelism (jaxnas.parallel): None on one device, where nothing is placed or sharded.
        self.mesh = parallel.data_mesh(config, d.batch_size, 'data.batch_size')
        self.steps_per_epoch = data_lib.num_batches(len(self.data.train_x), d.batch_size)
        self.relaxation = relax.make_relaxation(
            config.relaxation.name, space=self.space, total_steps=config.search.epochs * self.steps_per_epoch,
            **config.relaxation.kwargs.to_dict())
        r = self.relaxation
        self.mode = config.search.mode or r.mode
        K = r.partial_channels if self.mode == 'partial_channel' else 1
        build = lambda mode: self.space.search_network(m, self.data.num_classes, mode=mode, partial_channels=K)
        self.net = build(self.mode)
        # Same variables, every op computed: the Hessian diagnostic and dense evaluation.
        self.dense_net = self.net if self.mode == 'partial_channel' else build('dense')
        # The supernet metric (jaxnas.supernet_metric): the derived genotype's path, BatchNorm
        # recalibrated on fixed weight-train batches; the same network for every relaxation.
        metric_mode = supernet_metric.network_mode(self.mode)
        self.metric_net = self.net if metric_mode == self.mode else build(metric_mode)
        self.path_programs = supernet_metric.programs(self.metric_net)
        n_cal = config.search.recalibration_batches
        self.calibration_x = supernet_metric.calibration_batches(self.data.train_x, n_cal, d.batch_size, config.seed)
        self.metric = supernet_metric.describe(n_cal, d.batch_size)
        self.schedule = train.make_cosine_schedule(o.w_lr, o.w_lr_min, config.search.epochs, self.steps_per_epoch)
        self.w_tx = train.make_sgd(self.schedule, momentum=o.w_momentum, weight_decay=o.w_weight_decay,
                                   grad_clip=o.grad_clip)
        warmup = relax.warmup_steps(r, config.search.epochs, self.steps_per_epoch)
        a_lr = o.a_lr
        if o.a_schedule == 'cosine':   # per architecture step, from a_lr to 0 over the steps taken
            a_lr = optax.cosine_decay_schedule(o.a_lr, max(config.search.epochs * self.steps_per_epoch - warmup, 1))
        self.a_tx = bilevel.make_arch_optimizer(
            lr=a_lr, b1=o.a_b1, b2=o.a_b2, weight_decay=relax.arch_weight_decay(r, o.a_weight_decay),
            warmup_steps=warmup)
        augment = None
        if self.data.augment:
            flip = self.data.flip
            augment = lambda key, x: data_lib.augment_batch(key, x, pad=4, flip=flip)
        # Hardware cost (jaxnas.costs): the search network's per-op table under cost.model, built
        # before the step (a search never compiles for the cost model inside its loop); with
        # cost.weight > 0 the architecture update descends the cost form of its loss.
        self.cost_table = self.cost_term = None
        k = config.cost
        if k.model:
            self.cost_table = costs.build_table(self.space, m, self.data.train_x.shape[1:], k.model,
                                                batch=k.batch or None, dtype=k.dtype or None)
            if k.weight > 0:
                self.cost_term = cost_objective.make_cost_term(self.cost_table, r, form=k.form, target=k.target,
                                                               weight=k.weight, exponent=k.exponent)
        step = bilevel.make_step(self.net, self.relaxation, self.w_tx, self.a_tx, self.schedule,
                                 order=config.search.order, momentum=o.w_momentum,
                                 weight_decay=o.w_weight_decay, penalty_weight=config.relaxation.penalty_weight,
                                 augment=augment, fuse_phases=config.search.fuse_phases,
                                 single_level=r.single_level, cost=self.cost_term,
                                 compute_dtype=jnp.dtype(config.search.compute_dtype))
        # model.conv_impl (jaxnas.nn.convolutions): bound into the step, and the thread's choice
        # for the other programs traced from here (evaluation, supernet metric, Hessian)
        sharded = self.mesh is not None
        self.conv_impl = convolutions.set_impl(m.conv_impl, sharded)
        self.step = jax.jit(convolutions.bind_conv_impl(m.conv_impl, step, sharded), donate_argnums=0)
        self.compile_s = self.memory = None
        # The methods' own soft-mixture accuracy, where the mode runs a mixture (not single path).
        self.evaluate = None if self.mode == 'single_path' else supernet_metric.programs(self.net).evaluate
        self.hessian_eigenvalue = jax.jit(convolutions.bind_conv_impl(m.conv_impl, bilevel.make_hessian_eigenvalue(
            self.dense_net, r, config.search.hessian_iters), sharded))

    def init_state(self) -> bilevel.SearchState:
        key = jax.random.PRNGKey(self.config.seed)
        k_arch, k_params, k_run = jax.random.split(key, 3)
        arch = self.relaxation.init(k_arch, self.space.arch_shapes)
        sample = jnp.zeros((2,) + self.data.train_x.shape[1:], jnp.float32)
        seed = int(jax.random.randint(k_params, (), 0, 2 ** 31 - 1))
        variables = init_variables(self.net, seed, sample, self.relaxation.normalized(arch), train=True)
        params, batch_stats = variables['params'], variables['batch_stats']
        return self.place(bilevel.SearchState(jnp.zeros((), jnp.int32), params, batch_stats, arch,
                                              self.w_tx.init(params), self.a_tx.init(arch), k_run, train.init_skips()))

    def place(self, state: bilevel.SearchState) -> bilevel.SearchState:
        """``state`` replicated over the mesh's devices (unchanged on one device)."""
        return parallel.replicate(self.mesh, state)

    def compile_step(self, state: bilevel.SearchState):
        """The step compiled ahead of time for ``state`` and one pair of batches, after the
        memory check (``search.check_memory``: :func:`jaxnas.train.memory.check_fits`
        against the machine's available memory, a one-line error if it does not fit).
        Sets ``compile_s`` and ``memory`` (the compiled step's bytes); call the returned
        executable instead of :attr:`step`, which would compile again."""
        batches = next(iter(self.epoch_batches(0)))
        t0 = time.perf_counter()
        compiled = self.step.lower(state, *batches).compile()
        self.compile_s = time.perf_counter() - t0
        if self.config.search.check_memory:
            self.memory = train.memory.check_fits(
                compiled, what='search step', disable='search.check_memory',
                lower=f'data.batch_size ({self.config.data.batch_size}), model.channels '
                      f'({self.config.model.channels}) or model.layers ({self.config.model.layers})')
        else:
            self.memory = train.memory.step_bytes(compiled)
        return compiled

    def epoch_batches(self, epoch: int):
        """Pairs of (train batch, val batch); the order depends only on (seed, epoch).

        An epoch is one pass over the weight-train split; validation batches come from
        their own shuffled stream, restarted as often as needed.
        """
        d, seed = self.config.data, self.config.seed
        train_batches = data_lib.batches(self.data.train_x, self.data.train_y, d.batch_size, seed=seed, epoch=epoch)
        val = itertools.chain.from_iterable(
            data_lib.batches(self.data.val_x, self.data.val_y, d.batch_size, seed=seed + 1, epoch=epoch * 1000 + e)
            for e in itertools.count())
        pairs = zip(train_batches, val)
        if parallel.is_parallel(self.mesh):   # each batch split over the data axis
            return ((parallel.shard_batch(self.mesh, t), parallel.shard_batch(self.mesh, v)) for t, v in pairs)
        return pairs

    def split(self, name: str) -> tuple:
        """``(x, y)`` of the split ``name`` (``train``, ``val`` or ``test``)."""
        return getattr(self.data, f'{name}_x'), getattr(self.data, f'{name}_y')

    def genotype_scores(self, state, genotype, splits: dict) -> dict:
        """The supernet metric of ``genotype`` (:mod:`jaxnas.supernet_metric`): its one-hot
        path in :attr:`metric_net`, BatchNorm recalibrated on :attr:`calibration_x` (the
        state is only read), inference mode; ``{name: {'loss', 'acc'}}`` per split
        ``name -> (x, y)``, in padded batches of ``data.eval_batch_size``."""
        return supernet_metric.path_scores(self.path_programs, state.params, state.batch_stats,
                                           self.space.one_hot(genotype), self.calibration_x, splits,
                                           self.config.data.eval_batch_size)

    def mixture_scores(self, state, splits: dict) -> Optional[dict]:
        """The soft mixture of the relaxation's normalized weights, inference mode, the run's
        running statistics (the methods' own supernet accuracy); ``None`` in single-path mode."""
        if self.evaluate is None:
            return None
        return supernet_metric.mixture_scores(self.evaluate, state.params, state.batch_stats,
                                              self.relaxation.normalized(state.arch), splits,
                                              self.config.data.eval_batch_size)

    def eval_splits(self, state, genotype, names=('val',)) -> dict:
        """The log's and summary's evaluation keys on the named splits: ``derived_<split>_acc``
        / ``_loss`` (the supernet metric) and, where the mode runs a mixture,
        ``supernet_<split>_acc_mixture`` / ``supernet_<split>_loss_mixture``."""
        splits = {n: self.split(n) for n in names}
        out = {}
        for n, s in self.genotype_scores(state, genotype, splits).items():
            out[f'derived_{n}_acc'], out[f'derived_{n}_loss'] = s['acc'], s['loss']
        for n, s in (self.mixture_scores(state, splits) or {}).items():
            out[f'supernet_{n}_acc_mixture'], out[f'supernet_{n}_loss_mixture'] = s['acc'], s['loss']
        return out

    def weights(self, state) -> dict:
        return jax.tree.map(np.asarray, self.relaxation.normalized(state.arch))

    def derive(self, weights: dict):
        """The genotype of the normalized weights (the space's rule; FairDARTS' threshold)."""
        return self.space.derive(weights, threshold=self.relaxation.threshold)

    def dominant_eigenvalue(self, state, epoch: int) -> float:
        """Largest eigenvalue (signed, Zela et al.) of the validation-loss Hessian w.r.t. the
        architecture, on ``search.hessian_batches`` arch-val batches fixed by (seed, epoch)."""
        bs = self.config.data.batch_size
        n = max(1, min(self.config.search.hessian_batches, len(self.data.val_x) // bs))
        rng = np.random.default_rng([self.config.seed, epoch, 7])
        idx = rng.choice(len(self.data.val_x), size=n * bs, replace=False)
        x, y = self.data.val_x[idx], self.data.val_y[idx]
        if n > 1:
            x, y = x.reshape((n, bs) + x.shape[1:]), y.reshape(n, bs)
        key = jax.random.fold_in(jax.random.PRNGKey(self.config.seed + 1), epoch)
        return float(self.hessian_eigenvalue(state.params, state.batch_stats, state.arch, x, y, key))

    def cost_record(self, genotype) -> dict:
        """The derived genotype's cost under ``cost.model`` (``{}`` without one)."""
        if self.cost_table is None:
            return {}
        return {'genotype_cost': self.cost_table.genotype_cost(genotype, self.space)}

    def cost_summary(self, genotype) -> Optional[dict]:
        """The summary's ``cost`` entry: model, unit, the derived genotype's cost and the target."""
        t = self.cost_table
        if t is None:
            return None
        k = self.config.cost
        value = t.genotype_cost(genotype, self.space)
        out = {'model': t.model, 'unit': t.unit, 'batch': t.batch, 'dtype': t.dtype, 'genotype_cost': value,
               'form': k.form, 'weight': k.weight, 'target': k.target if k.target > 0 else None}
        if k.target > 0:
            out['meets_target'] = bool(value <= k.target)
        return out

    def diagnostics(self, state, weights: dict, genotype, epoch: int) -> dict:
        """Collapse indicators: skip / parameter-free op counts, entropy, Hessian eigenvalue."""
        out = {**self.space.diagnostics(weights, genotype, self.relaxation.threshold),
               'entropy': relax.entropy(weights, self.relaxation)}
        every = self.config.search.hessian_every
        if every and (epoch % every == 0 or epoch == self.config.search.epochs):
            out['hessian_eigenvalue'] = self.dominant_eigenvalue(state, epoch)
        return out


def _progress(total, initial, disable):
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, disable=disable, unit='step', dynamic_ncols=True)


@runs.releases_locks
def run_search(config, workdir: str, *, progress: bool = True, dataset=None, max_epochs: Optional[int] = None) -> dict:
    """Run (or resume) a search into ``workdir`` and return the summary dict.

    ``max_epochs`` stops early after that many epochs of this call (used to test resume).
    With ``search.seeds`` non-empty, every seed in one compiled program, each into
    ``workdir/seed<s>/`` (:func:`jaxnas.multiseed.run_seeds`; returns ``seeds.json``'s dict).
    """
    if config.search.get('seeds', ()) not in ((), []):
        from jaxnas import multiseed
        return multiseed.run_seeds(config, workdir, progress=progress, dataset=dataset, max_epochs=max_epochs)
    searcher = Searcher(config, dataset)
    fresh = not os.path.exists(os.path.join(workdir, runs.IDENTITY))

    t_start = time.time()
    state = searcher.init_state()
    # A new run's step is compiled (and refused if it does not fit) before anything is written.
    step = searcher.compile_step(state) if fresh else None
    runs.claim(workdir, 'search', config)
    ckpt_dir = os.path.join(workdir, 'checkpoints')
    ckpt = runs.Checkpointer(ckpt_dir)
    start_epoch, state = ckpt.restore(state)
    state = searcher.place(state)
    start_epoch = start_epoch or 0
    log_path = os.path.join(workdir, 'log.jsonl')
    runs.truncate_jsonl(log_path, 'epoch', start_epoch)

    epochs = config.search.epochs
    last = epochs if max_epochs is None else min(epochs, start_epoch + max_epochs)
    spe = searcher.steps_per_epoch
    if step is None and start_epoch < last:   # resuming: compiled only if there is training left
        step = searcher.compile_step(state)
    step_memory = runs.kept_step_memory(workdir, (searcher.memory or {}).get('total'))
    bar = _progress(epochs * spe, start_epoch * spe, not progress)

    def check_skips(m, at):   # when the host syncs anyway: stop before a poisoned state is saved
        limit = config.optim.max_nonfinite_steps
        if limit and int(m['consecutive_skips']) >= limit:
            latest = ckpt.latest_step()
            bar.close()
            ckpt.close()
            train.check_skips(m['consecutive_skips'], limit, what='search', step=at,
                              checkpoint=f'the last good checkpoint {ckpt_dir}/{latest} (epoch {latest}) is intact'
                              if latest else 'no checkpoint was saved yet',
                              fix='lower optim.w_lr or optim.a_lr, check the data for NaN/inf, or raise '
                                  'optim.max_nonfinite_steps (0: never stop)')

    record = None
    for epoch in range(start_epoch, last):
        t0 = time.time()
        history = []
        for train_batch, val_batch in searcher.epoch_batches(epoch):
            state, metrics = step(state, train_batch, val_batch)
            history.append(metrics)
            bar.update(1)
            if len(history) % 5 == 1 or len(history) == spe:
                m = jax.device_get(metrics)
                check_skips(m, epoch * spe + len(history))
                bar.set_postfix_str(f"epoch {epoch + 1}/{epochs} train {m['train_loss']:.3f}/{m['train_acc']:.2f} "
                                    f"val {m['val_loss']:.3f}/{m['val_acc']:.2f}")
        history = jax.device_get(history)
        step_time = (time.time() - t0) / max(len(history), 1)
        means = {k: float(train.finite_mean([h[k] for h in history]))   # the steps not skipped
                 for k in history[0] if k != 'consecutive_skips'}
        weights = searcher.weights(state)
        genotype = searcher.derive(weights)
        scores = searcher.eval_splits(state, genotype, ('val',))
        train_time = time.time() - t0
        record = {
            'epoch': epoch + 1, 'step': int(state.step), **means,
            **scores, supernet_metric.SAMPLED: means['val_acc'],
            'epoch_time_s': train_time, 'step_time_s': step_time,
            'skipped_steps': int(state.skips.skipped), 'consecutive_skips': int(state.skips.consecutive),
            **searcher.diagnostics(state, weights, genotype, epoch + 1),
            **searcher.cost_record(genotype),
            'genotype': str(genotype),
            'alphas': {k: np.round(v, 6).tolist() for k, v in weights.items()},
        }
        runs.append_jsonl(log_path, record)
        ckpt.save(epoch + 1, state)
        mixture = scores.get(supernet_metric.MIXTURE)
        cost_text = '' if 'genotype_cost' not in record else f", cost {record['genotype_cost']:.4g}"
        bar.write(f"epoch {epoch + 1}/{epochs}: train acc {means['train_acc']:.3f}, derived val acc "
                  f"{scores[supernet_metric.KEY]:.3f}" + ('' if mixture is None else f' (mixture {mixture:.3f})')
                  + f"{cost_text}, {genotype}")
    bar.close()
    ckpt.close()
    return finish_search(searcher, state, workdir, record, t_start, searcher.compile_s, step_memory, note=bar.write)


def finish_search(searcher: Searcher, state, workdir: str, record: Optional[dict], t_start: float,
                  compile_s: Optional[float], step_memory: Optional[int], note=lambda text: None) -> dict:
    """The summary of a search into ``workdir`` and, once complete, its end-of-run files
    (``genotype.txt`` / ``.json``, ``alphas.json``, ``cost_table.json``, ``summary.json``);
    ``record`` is the last epoch's log record of this call (``None``: read from ``log.jsonl``),
    ``note`` prints a skipped tabular score. Shared by :func:`run_search` and
    :mod:`jaxnas.multiseed` (one call per seed)."""
    config, spe = searcher.config, searcher.steps_per_epoch
    epochs = config.search.epochs
    done = int(state.step) // spe
    weights = searcher.weights(state)
    genotype = searcher.derive(weights)
    summary = {
        'name': config.name, 'workdir': os.path.abspath(workdir), 'epochs_done': done, 'epochs': epochs,
        'complete': done >= epochs, 'genotype': str(genotype), 'space': config.space,
        'relaxation': config.relaxation.name, 'mode': searcher.mode, 'order': config.search.order,
        'data': config.data.name, 'seed': config.seed,
        'wall_time_s_this_call': time.time() - t_start, 'step_compile_s': compile_s,
        'step_memory_bytes': step_memory, 'skipped_steps': int(state.skips.skipped),
    }
    if done >= epochs:
        last = record or runs.read_jsonl(os.path.join(workdir, 'log.jsonl'))[-1]
        summary.update({'derived_metric': searcher.metric, **searcher.eval_splits(state, genotype, ('val', 'test')),
                        supernet_metric.SAMPLED: last.get(supernet_metric.SAMPLED),
                        **searcher.space.diagnostics(weights, genotype, searcher.relaxation.threshold),
                        'num_params': costs.count_params(state.params)})
        cost = searcher.cost_summary(genotype)
        if cost is not None:
            summary['cost'] = cost
            runs.write_json(os.path.join(workdir, 'cost_table.json'), searcher.cost_table.to_json())
        if searcher.space.tabular is not None:
            summary['tabular'] = searcher.space.tabular.score(config.tabular.path, genotype)
            if 'error' in summary['tabular']:
                note(f"tabular scores skipped: {summary['tabular']['error']}")
        runs.write_text(os.path.join(workdir, 'genotype.txt'), str(genotype) + '\n')
        runs.write_json(os.path.join(workdir, 'genotype.json'), searcher.space.to_json(genotype))
        runs.write_json(os.path.join(workdir, 'alphas.json'), {k: v.tolist() for k, v in weights.items()})
        runs.write_json(os.path.join(workdir, 'summary.json'), summary)
    return summary


def _command(args, overrides) -> int:
    from jaxnas import cli
    config, workdir = cli.prepare(args, overrides, config_lib.validate, lambda c: c.name)
    summary = run_search(config, workdir, progress=not args.no_progress)
    print(json.dumps(summary, indent=2))
    if summary['complete'] and 'seeds' not in summary:
        print(f"\nfinal genotype ({workdir}/genotype.txt):\n{summary['genotype']}")
    return 0


def register(subparsers) -> None:
    """``jaxnas search``: run or resume one differentiable search."""
    from jaxnas import cli
    cli.add_command(subparsers, 'search', _command, help='differentiable search (bilevel) on a data set',
                    description='Run or resume a differentiable architecture search.',
                    default_config='DARTS on the embedded digits')
