"""Retraining from scratch: a genotype's evaluation network (or any network with the same
call contract) trained under the DARTS protocol, then scored on held-out data.

Protocol (Liu et al., DARTS, ICLR 2019, section A.2 and the public code quark0/darts),
every value a field of ``config.retrain`` (defaults in :func:`jaxnas.config.base_config`,
digits-sized where a 2-core CPU needs it; paper values in ``experiments/cifar10_*.py``):
SGD with momentum 0.9, coupled weight decay 3e-4, gradient-norm clip 5, learning rate
0.025 cosine-annealed per epoch to 0, cutout (length 16 on CIFAR), drop path with
probability ``drop_path_prob * epoch / epochs``, auxiliary loss weight 0.4, label smoothing
(0.1 on ImageNet), optional bfloat16 compute (float32 master weights and BN statistics).

Several seeds train at once: the state carries a leading seed axis and one compiled step
advances every seed, ``jit(lax.map(step))`` (seeds in turn inside one program; measured
on a 2-core CPU as fast as, or faster than, ``vmap`` and as fast as separate runs) or
``jit(vmap(step))`` with ``retrain.seed_batching='vmap'`` (for accelerators, where the
seeds then run in parallel). Each seed has its own initialisation, data order
(:func:`jaxnas.data.batches` with ``seed``) and augmentation / drop-path keys
(``fold_in(key, step)``), so a seed trained alone or beside others gives the same run.

Outputs of :func:`fit` in ``workdir``: ``run.json`` (identity; a different run in the
same directory is refused), ``checkpoints/`` (orbax, every ``checkpoint_every`` epochs;
rerunning resumes and ends with the same bits as an uninterrupted run), ``log.jsonl`` (one
line per epoch), ``scores.json`` and ``scores_seed<k>.json`` at the end.

For discrete searchers, :func:`score_genotype` trains a genotype for a few epochs and
returns the per-seed scores on the validation split, without touching the test split.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, NamedTuple, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnas import costs, data as data_lib, metrics, parallel, runs, spaces, train
from jaxnas.nn import convolutions, init_variables
from jaxnas.errors import JaxnasError

SEED_BATCHING = ('map', 'vmap')
COMPUTE_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


class RetrainError(JaxnasError):
    """A retraining request that cannot run (one line)."""


# ----------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------

def validate(config) -> None:
    """Reject ``retrain`` / ``baseline`` values that cannot be used, naming the field."""
    r = config.retrain

    def check(ok, field, msg):
        if not ok:
            value = config
            for part in field.split('.'):
                value = value[part]
            raise RetrainError(f'bad config value {field}={value!r}: {msg}')

    check(r.epochs >= 1, 'retrain.epochs', 'must be >= 1')
    check(r.batch_size >= 2, 'retrain.batch_size', 'must be >= 2 (BatchNorm needs a batch)')
    check(r.eval_batch_size >= 1, 'retrain.eval_batch_size', 'must be >= 1')
    check(r.channels >= 2, 'retrain.channels', 'must be >= 2')
    check(r.cells_per_stage >= 1, 'retrain.cells_per_stage', 'must be >= 1')
    check(r.lr > 0, 'retrain.lr', 'must be > 0')
    check(0 <= r.lr_min <= r.lr, 'retrain.lr_min', 'must be in [0, retrain.lr]')
    check(0 <= r.momentum < 1, 'retrain.momentum', 'must be in [0, 1)')
    check(r.weight_decay >= 0, 'retrain.weight_decay', 'must be >= 0')
    check(r.grad_clip > 0, 'retrain.grad_clip', 'must be > 0')
    check(r.cutout_length >= 0, 'retrain.cutout_length', 'must be >= 0 (0 disables cutout)')
    check(0 <= r.drop_path_prob < 1, 'retrain.drop_path_prob', 'must be in [0, 1)')
    check(r.auxiliary_weight >= 0, 'retrain.auxiliary_weight', 'must be >= 0 (0 removes the auxiliary head)')
    check(len(r.aux_channels) == 2 and min(r.aux_channels) >= 1, 'retrain.aux_channels',
          'must be two positive widths, e.g. (128, 768)')
    check(0 <= r.label_smoothing < 1, 'retrain.label_smoothing', 'must be in [0, 1)')
    check(r.compute_dtype in COMPUTE_DTYPES, 'retrain.compute_dtype', f"choose one of {', '.join(COMPUTE_DTYPES)}")
    check(r.num_seeds >= 1, 'retrain.num_seeds', 'must be >= 1')
    check(r.seed_batching in SEED_BATCHING, 'retrain.seed_batching', f"choose one of {', '.join(SEED_BATCHING)}")
    check(r.checkpoint_every >= 1, 'retrain.checkpoint_every', 'must be >= 1 (epochs)')
    check(r.latency_batch_size >= 1, 'retrain.latency_batch_size', 'must be >= 1')
    check(r.latency_calls >= 1, 'retrain.latency_calls', 'must be >= 1')
    check(r.latency_warmup >= 0, 'retrain.latency_warmup', 'must be >= 0')
    check(r.max_nonfinite_steps >= 0, 'retrain.max_nonfinite_steps', 'must be >= 0 (0: never stop)')
    b = config.baseline
    check(len(b.blocks) == 3 and min(b.blocks) >= 1, 'baseline.blocks', 'must be three positive block counts')
    check(0 < b.tolerance < 1, 'baseline.tolerance', 'must be in (0, 1)')


# ----------------------------------------------------------------------------------------
# Genotypes and networks
# ----------------------------------------------------------------------------------------

def resolve_genotype(spec, prefer: str | None = None):
    """A genotype of any registered space from a spec the space reads (a published name
    such as ``DARTS_V2``, a genotype's text form, a NAS-Bench-201 architecture string or
    index, ...), a genotype ``.json`` / ``.txt`` file, or a search's output directory.
    ``prefer`` (the config's space) is asked first."""
    spec = str(spec).strip()
    if os.path.isdir(spec):
        for name in ('genotype.json', 'genotype.txt'):
            path = os.path.join(spec, name)
            if os.path.isfile(path):
                return resolve_genotype(path, prefer)
        raise RetrainError(f'{spec} has no genotype.txt: the search there has not finished; '
                           f'rerun `jaxnas search --workdir {spec}` with its config to complete it')
    if spec.endswith(('.txt', '.json')):
        if not os.path.isfile(spec):
            raise RetrainError(f'genotype file {spec} does not exist')
        with open(spec) as f:
            text = f.read()
        if spec.endswith('.json'):
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise RetrainError(f'genotype file {spec} is not valid JSON: {e}') from None
            return spaces.parse_any(obj, prefer)[1]
        return resolve_genotype(text, prefer)
    if os.sep in spec.split('(')[0]:
        raise RetrainError(f'search directory or genotype file {spec} does not exist')
    return spaces.parse_any(spec, prefer)[1]


def build_network(genotype, config, num_classes: int) -> nn.Module:
    """The evaluation network of ``genotype``, built by the space the genotype belongs to."""
    space = spaces.of_genotype(genotype)
    space.check_config(config)
    return space.eval_network(genotype, config.retrain, num_classes)


# ----------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------

class RetrainData(NamedTuple):
    """Training examples and the held-out split the scores are computed on."""
    train_x: np.ndarray
    train_y: np.ndarray
    eval_x: np.ndarray
    eval_y: np.ndarray
    num_classes: int
    augment: bool
    flip: bool
    eval_split: str


def load_data(config, split: str = 'test', dataset: Optional[data_lib.Dataset] = None) -> RetrainData:
    """``split='test'``: train on the whole training pool, score on the test split (the
    DARTS evaluation). ``split='val'``: train on weight-train, score on arch-val (a
    fitness that never sees the test split)."""
    d = config.data
    if split not in ('test', 'val'):
        raise RetrainError(f"split must be 'test' or 'val', got {split!r}")
    if dataset is None:
        dataset = data_lib.load_dataset(d.name, data_dir=d.data_dir, seed=config.seed, limit=d.limit or None,
                                        train_portion=1.0 if split == 'test' else d.train_portion)
    if split == 'test':
        train_x, train_y = dataset.train_x, dataset.train_y
        if len(dataset.val_x):
            train_x = np.concatenate([train_x, dataset.val_x])
            train_y = np.concatenate([train_y, dataset.val_y])
        eval_x, eval_y = dataset.test_x, dataset.test_y
    else:
        train_x, train_y, eval_x, eval_y = dataset.train_x, dataset.train_y, dataset.val_x, dataset.val_y
    if len(train_x) < config.retrain.batch_size:
        raise RetrainError(f'bad config value retrain.batch_size={config.retrain.batch_size}: larger than the '
                           f'{len(train_x)} training examples')
    if not len(eval_x):
        raise RetrainError(f'the {split} split of {d.name!r} is empty')
    return RetrainData(train_x, train_y, eval_x, eval_y, dataset.num_classes, dataset.augment, dataset.flip, split)


def cutout(key, images, length: int):
    """Cutout (DeVries & Taylor 2017) as in the DARTS code: per image a ``length`` square,
    centred uniformly in the image and clipped at its border, set to 0 (the mean pixel of
    normalised data)."""
    n, h, w, _ = images.shape
    cy = jax.random.randint(jax.random.fold_in(key, 0), (n, 1, 1), 0, h)
    cx = jax.random.randint(jax.random.fold_in(key, 1), (n, 1, 1), 0, w)
    rows = jnp.arange(h)[None, :, None]
    cols = jnp.arange(w)[None, None, :]
    half = length // 2
    inside = ((rows >= cy - half) & (rows < cy + half) & (cols >= cx - half) & (cols < cx + half))
    return jnp.where(inside[..., None], 0, images).astype(images.dtype)


# ----------------------------------------------------------------------------------------
# The step
# ----------------------------------------------------------------------------------------

class TrainState(NamedTuple):
    """One run's state; in :class:`Trainer` every leaf has a leading seed axis."""
    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    key: jax.Array  # raw uint32 PRNG key, split by fold_in(key, step)
    skips: train.SkipCounts = train.NO_SKIPS   # non-finite steps skipped (jaxnas.train.guard)


def make_optimizer(r, steps_per_epoch: int) -> tuple:
    """``(tx, schedule)``: the reference SGD (clip, coupled L2, momentum), per-epoch cosine."""
    schedule = train.make_cosine_schedule(r.lr, r.lr_min, r.epochs, steps_per_epoch)
    tx = train.make_sgd(schedule, momentum=r.momentum, weight_decay=r.weight_decay, grad_clip=r.grad_clip)
    return tx, schedule


def make_train_step(net: nn.Module, r, tx, *, steps_per_epoch: int, crop: bool, flip: bool):
    """``step(state, x, y) -> (state, metrics)`` for one seed (vmapped by :class:`Trainer`).

    An update whose loss, gradient or result is not finite is skipped (weights, BatchNorm
    statistics and optimiser state keep their values) and counted in ``state.skips``."""
    dtype = COMPUTE_DTYPES[r.compute_dtype]
    epochs, drop_max, aux_w, smoothing = r.epochs, r.drop_path_prob, r.auxiliary_weight, r.label_smoothing
    cut = r.cutout_length

    def cast(tree):
        return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)

    def step(state: TrainState, x, y):
        key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)
        k_aug, k_cut, k_drop = jax.random.split(key, 3)
        if crop:
            x = data_lib.augment_batch(k_aug, x, pad=4, flip=flip)
        if cut:
            x = cutout(k_cut, x, cut)
        epoch = state.step // steps_per_epoch
        drop_prob = drop_max * epoch.astype(jnp.float32) / epochs

        def loss_fn(params):
            (logits, aux), updates = net.apply(
                {'params': cast(params), 'batch_stats': state.batch_stats}, x.astype(dtype), train=True,
                drop_prob=drop_prob, rngs={'drop_path': k_drop}, mutable=['batch_stats'])
            loss = train.cross_entropy(logits, y, smoothing)
            total = loss
            if aux is not None:
                total = total + aux_w * train.cross_entropy(aux, y, smoothing)
            return total, (updates['batch_stats'], logits, loss)

        grads, (batch_stats, logits, loss) = jax.grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        batch_stats = jax.tree.map(lambda new, old: new.astype(old.dtype), batch_stats, state.batch_stats)
        ok = train.all_finite(loss, optax.tree.norm(grads), params, batch_stats)
        params, batch_stats, opt_state = train.keep_if(ok, (params, batch_stats, opt_state),
                                                       (state.params, state.batch_stats, state.opt_state))
        skips = train.count_skips(state.skips, ok)
        acc = train.accuracy(logits, y)
        new = TrainState(state.step + 1, params, batch_stats, opt_state, state.key, skips)
        return new, {'loss': loss, 'acc': acc, 'drop_prob': drop_prob, 'skipped': 1.0 - ok.astype(jnp.float32),
                     'consecutive_skips': skips.consecutive}

    return step


def make_predict(net: nn.Module):
    """``predict(params, batch_stats, x) -> logits`` in inference mode (running BN stats)."""
    def predict(params, batch_stats, x):
        logits, _ = net.apply({'params': params, 'batch_stats': batch_stats}, x, train=False)
        return logits
    return predict


# ----------------------------------------------------------------------------------------
# Trainer
# ----------------------------------------------------------------------------------------

class Trainer:
    """Data, optimiser and the compiled steps for training ``net`` over several seeds at once."""

    def __init__(self, net: nn.Module, config, data: RetrainData, seeds: Sequence[int]):
        validate(config)
        self.net, self.config, self.data, self.seeds = net, config, data, tuple(int(s) for s in seeds)
        r = config.retrain
        self.r = r
        # Data parallelism (jaxnas.parallel): None on one device, where nothing is placed or sharded.
        self.mesh = parallel.data_mesh(config, r.batch_size, 'retrain.batch_size')
        self.steps_per_epoch = data_lib.num_batches(len(data.train_x), r.batch_size)
        self.tx, self.schedule = make_optimizer(r, self.steps_per_epoch)
        step = make_train_step(net, r, self.tx, steps_per_epoch=self.steps_per_epoch, crop=data.augment,
                               flip=data.flip)
        impl = config.model.conv_impl if 'conv_impl' in config.model else 'auto'
        sharded = self.mesh is not None   # model.conv_impl (jaxnas.nn.convolutions), bound into the step too
        convolutions.set_impl(impl, sharded)
        step = convolutions.bind_conv_impl(impl, step, sharded)
        if r.seed_batching == 'vmap':
            self._step = jax.jit(jax.vmap(step), donate_argnums=0)
        else:
            self._step = jax.jit(lambda st, x, y: jax.lax.map(lambda a: step(*a), (st, x, y)), donate_argnums=0)
        self._compiled = None
        self.compile_s = self.memory = None
        self._predict = jax.jit(jax.vmap(make_predict(net), in_axes=(0, 0, None)))

    def init_state(self) -> TrainState:
        sample = jnp.zeros((2,) + self.data.train_x.shape[1:], jnp.float32)
        states = []
        for seed in self.seeds:
            variables = init_variables(self.net, seed, sample, train=True)
            params = variables['params']
            key = jax.random.key_data(jax.random.fold_in(jax.random.key(seed), 1))
            states.append(TrainState(jnp.zeros((), jnp.int32), params, variables.get('batch_stats', {}),
                                     self.tx.init(params), key, train.init_skips()))
        return self.place(jax.tree.map(lambda *xs: jnp.stack(xs), *states))

    def place(self, state):
        """``state`` replicated over the mesh's devices (unchanged on one device)."""
        return parallel.replicate(self.mesh, state)

    def epoch_batches(self, epoch: int):
        """Stacked ``(x, y)`` of shape ``(seeds, batch, ...)``; each seed its own order."""
        r = self.r
        streams = [data_lib.batches(self.data.train_x, self.data.train_y, r.batch_size, seed=s, epoch=epoch)
                   for s in self.seeds]
        for parts in zip(*streams):
            batch = np.stack([p[0] for p in parts]), np.stack([p[1] for p in parts])
            yield parallel.shard_batch(self.mesh, batch, axis=1) if self.mesh is not None else batch

    def compile(self, state, x, y):
        """Compile the step for these shapes, once, after the memory check
        (``retrain.check_memory``: :func:`jaxnas.train.memory.check_fits`, a one-line error
        if XLA's estimate exceeds the available memory); :meth:`step` runs it."""
        if self._compiled is None:
            t0 = time.perf_counter()
            compiled = self._step.lower(state, x, y).compile()
            self.compile_s = time.perf_counter() - t0
            r = self.r
            if r.check_memory:
                self.memory = train.memory.check_fits(
                    compiled, what=f'retraining step ({len(self.seeds)} seeds)', disable='retrain.check_memory',
                    lower=f'retrain.batch_size ({r.batch_size}), retrain.num_seeds ({r.num_seeds}), '
                          f'retrain.channels ({r.channels}) or retrain.layers ({r.layers})')
            else:
                self.memory = train.memory.step_bytes(compiled)
            self._compiled = compiled
        return self._compiled

    def step(self, state, x, y):
        return self.compile(state, x, y)(state, x, y)

    def predict(self, state, x) -> np.ndarray:
        """Class predictions ``(seeds, n)`` for ``x`` in padded batches of ``eval_batch_size``."""
        return train.predict(lambda xb: jnp.argmax(self._predict(state.params, state.batch_stats, xb), -1),
                             x, self.r.eval_batch_size, axis=1)

    def score(self, state) -> list:
        """Per-seed classification metrics on the held-out split."""
        preds = self.predict(state, self.data.eval_x)
        return [dict(seed=s, split=self.data.eval_split,
                     **metrics.classification_metrics(self.data.eval_y, p, self.data.num_classes))
                for s, p in zip(self.seeds, preds)]

    def cost(self, state) -> dict:
        """Params, XLA multiply-adds / bytes, memory and latency of seed 0's network."""
        r = self.r
        params = jax.tree.map(lambda a: a[0], state.params)
        batch_stats = jax.tree.map(lambda a: a[0], state.batch_stats)
        main, aux = costs.split_aux_params(params)
        x = jnp.zeros((r.latency_batch_size,) + self.data.train_x.shape[1:], jnp.float32)
        predict = make_predict(self.net)
        out = {'params': costs.count_params(main), 'aux_head_params': costs.count_params(aux)}
        out.update(metrics.forward_cost(predict, params, batch_stats, x, batch_size=r.latency_batch_size,
                                        n=r.latency_calls, warmup=r.latency_warmup))
        return out


# ----------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------

@runs.releases_locks
def fit(net: nn.Module, config, data: RetrainData, seeds: Sequence[int], workdir: Optional[str] = None, *,
        description: Optional[dict] = None, progress: bool = True, max_epochs: Optional[int] = None,
        with_cost: bool = True) -> dict:
    """Train ``net`` for ``config.retrain.epochs`` over ``seeds`` at once and score it.

    With a ``workdir`` the run checkpoints, logs, resumes and writes its scores there (a
    finished run is read back, not retrained). ``max_epochs`` stops this call after that
    many epochs (to test resume). Returns the summary (see ``scores.json``).
    """
    r = config.retrain
    scores_path = os.path.join(workdir, 'scores.json') if workdir else None
    claim = lambda: runs.claim(workdir, 'retrain', config, description=description or {},
                               seeds=list(map(int, seeds)))
    fresh = bool(workdir) and not os.path.exists(os.path.join(workdir, runs.IDENTITY))
    if fresh:
        # a network that cannot be built for this input fails here, from shapes only,
        # before a new work directory is claimed
        costs.variable_shapes(net, data.train_x.shape[1:])
    elif workdir:
        claim()
        if os.path.exists(scores_path):
            return runs.read_json(scores_path)

    t_start = time.time()
    trainer = Trainer(net, config, data, seeds)
    state = trainer.init_state()
    if fresh or not workdir:   # a step that does not fit is refused before anything is written
        trainer.compile(state, *next(trainer.epoch_batches(0)))
    if fresh:
        claim()
    start = 0
    ckpt = log_path = None
    if workdir:
        ckpt = runs.Checkpointer(os.path.join(workdir, 'checkpoints'))
        start, state = ckpt.restore(state)
        state = trainer.place(state)
        start = start or 0
        log_path = os.path.join(workdir, 'log.jsonl')
        runs.truncate_jsonl(log_path, 'epoch', start)
    spe, epochs = trainer.steps_per_epoch, r.epochs
    last = epochs if max_epochs is None else min(epochs, start + max_epochs)
    from jaxnas.search import _progress
    bar = _progress(epochs * spe, start * spe, not progress)
    label = (description or {}).get('model', 'net')
    step_times = []

    def check_skips(m, at):   # when the host syncs anyway: stop before a poisoned state is saved
        limit = r.max_nonfinite_steps
        if limit and int(np.max(m['consecutive_skips'])) >= limit:
            latest = ckpt.latest_step() if ckpt else None
            bar.close()
            if ckpt:
                ckpt.close()
            where = (f'the last good checkpoint {ckpt.directory}/{latest} (epoch {latest}) is intact' if latest
                     else 'no checkpoint was saved yet' if ckpt else 'this run keeps no checkpoints')
            train.check_skips(m['consecutive_skips'], limit, what=f'retraining of {label}', step=at,
                              checkpoint=where, fix='lower retrain.lr, check the data for NaN/inf, or raise '
                                                    'retrain.max_nonfinite_steps (0: never stop)')

    for epoch in range(start, last):
        t0 = time.time()
        history = []
        for i, (x, y) in enumerate(trainer.epoch_batches(epoch)):
            state, m = trainer.step(state, x, y)
            history.append(m)
            if i % 5 == 0 or i == spe - 1:
                m = jax.device_get(m)
                check_skips(m, epoch * spe + i + 1)
                bar.set_postfix_str(f"{label} epoch {epoch + 1}/{epochs} loss {np.mean(m['loss']):.3f} "
                                    f"acc {np.mean(m['acc']):.2f}")
            bar.update(1)
        history = jax.device_get(history)  # waits for the epoch's last step
        if epoch > start:  # an epoch without the compile and first call: its mean step time
            step_times.append((time.time() - t0) / len(history))
        record = {'epoch': epoch + 1, 'step': int(state.step[0]), 'lr': float(trainer.schedule(epoch * spe)),
                  'drop_prob': float(history[0]['drop_prob'][0]),
                  'train_loss': train.finite_mean([h['loss'] for h in history]).tolist(),
                  'train_acc': train.finite_mean([h['acc'] for h in history]).tolist(),
                  'skipped_steps': np.asarray(state.skips.skipped).tolist(),
                  'consecutive_skips': np.asarray(state.skips.consecutive).tolist(),
                  'epoch_time_s': time.time() - t0}
        if log_path:
            runs.append_jsonl(log_path, record)
        if ckpt and ((epoch + 1) % r.checkpoint_every == 0 or epoch + 1 == last):
            ckpt.save(epoch + 1, state)
    bar.close()
    if ckpt:
        ckpt.close()
    done = int(state.step[0]) // spe
    step_memory = (trainer.memory or {}).get('total')
    if workdir:
        step_memory = runs.kept_step_memory(workdir, step_memory)
    summary = {'description': description or {}, 'seeds': list(map(int, seeds)), 'epochs_done': done,
               'epochs': epochs, 'complete': done >= epochs, 'eval_split': data.eval_split,
               'steps_per_epoch': spe, 'batch_size': r.batch_size, 'compute_dtype': r.compute_dtype,
               'train_wall_time_s_this_call': time.time() - t_start,
               'step_compile_s': trainer.compile_s, 'step_memory_bytes': step_memory,
               'skipped_steps': np.asarray(state.skips.skipped).tolist(),
               'step_time_s_median': float(np.median(step_times)) if step_times else None,
               'seeds_trained_together': len(trainer.seeds), 'backend': jax.default_backend()}
    if not summary['complete']:
        return summary
    summary['scores'] = trainer.score(state)
    if with_cost:
        summary['cost'] = trainer.cost(state)
    if workdir:
        for s in summary['scores']:
            runs.write_json(os.path.join(workdir, f"scores_seed{s['seed']}.json"), s)
        runs.write_json(scores_path, summary)
    summary['state'] = state
    return summary


def score_genotype(genotype, config, *, seeds: Sequence[int] = (0,), split: str = 'val',
                   epochs: Optional[int] = None, dataset: Optional[data_lib.Dataset] = None,
                   progress: bool = False) -> list:
    """Train ``genotype``'s network from scratch (all ``seeds`` at once) and return one
    score dict per seed (``accuracy``, ``precision``, ``recall``, ``f1``, ...).

    The fitness of a discrete searcher: ``split='val'`` trains on weight-train and scores
    on arch-val; ``epochs`` overrides ``config.retrain.epochs`` (a short proxy budget).
    """
    if epochs is not None:
        config = config.copy_and_resolve_references()
        config.retrain.epochs = int(epochs)
    data = load_data(config, split, dataset)
    net = build_network(genotype, config, data.num_classes)
    summary = fit(net, config, data, seeds, None, progress=progress, with_cost=False)
    return summary['scores']


# ----------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------

def run_retrain(config, workdir: str, genotype_spec: str, *, progress: bool = True,
                max_epochs: Optional[int] = None) -> dict:
    """``jaxnas retrain``: the genotype's network over ``retrain.num_seeds`` seeds."""
    validate(config)
    genotype = resolve_genotype(genotype_spec, config.space)
    data = load_data(config, 'test')
    net = build_network(genotype, config, data.num_classes)
    seeds = [config.seed + k for k in range(config.retrain.num_seeds)]
    description = {'model': 'nas', 'genotype': str(genotype), 'network': type(net).__name__}
    summary = fit(net, config, data, seeds, workdir, description=description, progress=progress,
                  max_epochs=max_epochs)
    summary.pop('state', None)
    if summary['complete']:   # the genotype's search-network cost under each of cost.report_models
        from jaxnas import cost_report
        summary['genotype_cost'] = cost_report.genotype_costs(config, genotype)
        runs.write_json(os.path.join(workdir, 'genotype_cost.json'), summary['genotype_cost'])
    return summary


def _command(args, overrides) -> int:
    from jaxnas import cli
    config, workdir = cli.prepare(args, overrides, validate, lambda c: f'{c.name}_retrain')
    summary = run_retrain(config, workdir, args.genotype, progress=not args.no_progress)
    brief = {k: v for k, v in summary.items() if k != 'scores'}
    brief['scores'] = [{k: v for k, v in s.items() if k != 'confusion_matrix'} for s in summary.get('scores', [])]
    print(json.dumps(brief, indent=2))
    return 0


def register(subparsers) -> None:
    """``jaxnas retrain``: train a genotype's evaluation network from scratch and score it."""
    from jaxnas import cli
    p = cli.add_command(subparsers, 'retrain', _command,
                        help='train a genotype from scratch and score it on the test split',
                        description='Train the evaluation network of a genotype from scratch (DARTS protocol, '
                        'config.retrain) and score it on the held-out test split.',
                        default_config='the digits retraining protocol')
    cli.add_genotype_option(p, required=True)
