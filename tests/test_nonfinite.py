"""Non-finite guards of the compiled steps and the memory check before training.

A NaN/inf loss or gradient skips that update inside the step (the state keeps its bits)
and is counted; ``max_nonfinite_steps`` skips in a row stop a run with one line naming
the step and the last good checkpoint, which stays intact. A step whose XLA memory
estimate exceeds the available memory is refused before anything is written.
"""
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, ToyMixed, make_tiny_config

from jaxnas import bilevel, cli, data as data_lib, fitness, relax, retrain, runs, search, searchers, spaces, train
from jaxnas.errors import JaxnasError
from jaxnas.spaces.choices import Candidate
from jaxnas.train import memory

TINY = os.path.join(ROOT, 'experiments', 'tiny.py')


def _bits(tree):
    return [np.asarray(x).tobytes() for x in jax.tree.leaves(tree)]


def _one_line(message: str) -> bool:
    return bool(message) and '\n' not in message


# ------------------------------------------------------------------------------ helpers

def test_guard_helpers():
    ok_tree = {'a': jnp.ones(3), 'b': jnp.arange(2)}
    assert bool(train.all_finite(ok_tree, 1.0))
    assert not bool(train.all_finite(ok_tree, jnp.asarray([1.0, jnp.inf])))
    assert not bool(train.all_finite({'a': jnp.asarray([jnp.nan])}))
    new, old = {'a': jnp.asarray([1.5, -0.0])}, {'a': jnp.asarray([2.0, 3.0])}
    assert _bits(train.keep_if(jnp.asarray(True), new, old)) == _bits(new)
    assert _bits(train.keep_if(jnp.asarray(False), new, old)) == _bits(old)
    counts = train.NO_SKIPS
    for ok in (False, False, True, False):
        counts = train.count_skips(counts, jnp.asarray(ok))
    assert (int(counts.skipped), int(counts.consecutive)) == (3, 1)
    values = np.asarray([[0.5, 1.0], [0.25, np.nan], [2.0, 3.0]], np.float32)
    assert np.array_equal(train.finite_mean(values[[0, 2]]), np.mean(values[[0, 2]], 0))
    np.testing.assert_allclose(train.finite_mean(values), [2.75 / 3, 2.0])
    train.check_skips(2, 3, what='x', step=1, checkpoint='c', fix='f')    # below the limit
    train.check_skips(9, 0, what='x', step=1, checkpoint='c', fix='f')    # 0: never stops
    with pytest.raises(train.NonfiniteError, match='x stopped at step 7: the last 3 steps') as e:
        train.check_skips(np.asarray([0, 3]), 3, what='x', step=7, checkpoint='c', fix='f')
    assert _one_line(str(e.value))


# ------------------------------------------------------------------------------ bilevel step

def _toy_search(order, fuse):
    key = jax.random.PRNGKey(0)
    k1, k2, k3 = jax.random.split(key, 3)
    x_t, x_v = jax.random.normal(k1, (8, 5)), jax.random.normal(k2, (8, 5))
    y = jax.random.randint(k3, (8,), 0, 4)
    arch = {'normal': 0.5 * jax.random.normal(key, (2, 3))}
    net, relaxation = ToyMixed(), relax.softmax()
    variables = net.init(key, x_t, relaxation.normalized(arch))
    schedule = train.make_cosine_schedule(0.1, 0.001, 10, 5)
    w_tx, a_tx = train.make_sgd(schedule), bilevel.make_arch_optimizer(lr=0.1)
    state = bilevel.SearchState(jnp.zeros((), jnp.int32), variables['params'], variables['batch_stats'], arch,
                                w_tx.init(variables['params']), a_tx.init(arch), jax.random.PRNGKey(1))
    step = jax.jit(bilevel.make_step(net, relaxation, w_tx, a_tx, schedule, order=order, fuse_phases=fuse))
    return step, state, (x_t, y), (x_v, y)


WEIGHTS, ARCH = ('params', 'batch_stats', 'w_opt'), ('arch', 'a_opt')


@pytest.mark.parametrize('order,fuse', [('first', True), ('first', False), ('second', False),
                                        ('finite_difference', False)])
def test_search_step_skips_and_counts_nonfinite_updates(order, fuse):
    step, state, train_batch, val_batch = _toy_search(order, fuse)
    nan_train = (train_batch[0].at[3, 1].set(jnp.nan), train_batch[1])
    nan_val = (val_batch[0].at[0, 0].set(jnp.nan), val_batch[1])
    unchanged = lambda a, b, fields: all(_bits(getattr(a, f)) == _bits(getattr(b, f)) for f in fields)

    # a NaN in the training batch: the weight update is skipped (and, where the
    # hypergradient goes through a virtual step on it, the architecture update too)
    after, m = step(state, nan_train, val_batch)
    assert unchanged(after, state, WEIGHTS)
    assert unchanged(after, state, ARCH) == (order != 'first')
    assert float(m['nonfinite_weights']) == 1 and float(m['nonfinite_arch']) == (order != 'first')
    assert (int(after.skips.skipped), int(after.skips.consecutive), int(m['consecutive_skips'])) == (1, 1, 1)
    assert int(after.step) == 1 and bool(train.all_finite(after))

    # a NaN in the validation batch: the architecture update is skipped, the weights train
    again, m = step(after, train_batch, nan_val)
    assert unchanged(again, after, ARCH) and not unchanged(again, after, ('params',))
    assert float(m['nonfinite_arch']) == 1 and float(m['nonfinite_weights']) == 0
    assert (int(again.skips.skipped), int(again.skips.consecutive)) == (2, 2)

    # a clean step updates everything and ends the run of skips
    clean, m = step(again, train_batch, val_batch)
    assert not unchanged(clean, again, ('params',)) and not unchanged(clean, again, ('arch',))
    assert float(m['nonfinite_arch']) == float(m['nonfinite_weights']) == 0
    assert (int(clean.skips.skipped), int(clean.skips.consecutive)) == (2, 0)
    # a skipped step does not change what a clean step computes from the same state
    direct, _ = step(after._replace(skips=train.NO_SKIPS), train_batch, val_batch)
    assert _bits(direct[:-1]) != _bits(after[:-1])


# ------------------------------------------------------------------------------ search loop

def _dataset(config, nan_train=None):
    d = config.data
    data = data_lib.load_dataset(d.name, train_portion=d.train_portion, seed=config.seed, limit=d.limit)
    if nan_train is not None:
        x = data.train_x.copy()
        x[nan_train] = np.nan
        data = data._replace(train_x=x)
    return data


def test_search_skips_counts_and_stops_keeping_the_last_checkpoint(tmp_path):
    config = make_tiny_config(**{'optim.max_nonfinite_steps': 3})
    workdir = str(tmp_path / 'search')
    searcher = search.Searcher(config, _dataset(config))
    spe = searcher.steps_per_epoch
    # one NaN example in the first training batch of epoch 1: that step's weight update is skipped
    first = next(iter(data_lib.batches(np.arange(len(searcher.data.train_x)), np.zeros(len(searcher.data.train_x)),
                                       config.data.batch_size, seed=config.seed, epoch=0)))[0]
    partial = search.run_search(config, workdir, progress=False, max_epochs=1,
                                dataset=_dataset(config, nan_train=[first[0]]))
    log = runs.read_jsonl(os.path.join(workdir, 'log.jsonl'))
    assert partial['skipped_steps'] == 1 and log[0]['skipped_steps'] == 1 and log[0]['consecutive_skips'] == 0
    assert log[0]['nonfinite_weights'] == pytest.approx(1 / spe) and log[0]['nonfinite_arch'] == 0
    assert np.isfinite(log[0]['train_loss'])          # the mean of the steps that were not skipped
    assert partial['step_memory_bytes'] > 0 and partial['step_compile_s'] > 0
    ckpt_dir = os.path.join(workdir, 'checkpoints')
    _, saved = runs.restore(ckpt_dir, searcher.init_state())
    assert bool(train.all_finite(saved)) and int(saved.skips.skipped) == 1

    # resumed on training data that is all NaN: 3 skipped steps in a row stop the run
    with pytest.raises(train.NonfiniteError) as e:
        search.run_search(config, workdir, progress=False, dataset=_dataset(config, nan_train=slice(None)))
    message = str(e.value)
    assert isinstance(e.value, JaxnasError)           # the CLI prints it as one line, exit status 2
    assert _one_line(message) and message.startswith('search stopped at step ')
    assert f'{ckpt_dir}/1 (epoch 1) is intact' in message and 'optim.max_nonfinite_steps' in message
    stopped_at = int(message.split('step ')[1].split(':')[0])
    assert spe + 3 <= stopped_at < 2 * spe + 1        # detected where the host syncs anyway, within the epoch
    assert runs.Checkpointer(ckpt_dir).latest_step() == 1      # nothing of the poisoned epoch saved
    step, restored = runs.restore(ckpt_dir, searcher.init_state())
    assert step == 1 and _bits(restored) == _bits(saved)
    assert [line['epoch'] for line in runs.read_jsonl(os.path.join(workdir, 'log.jsonl'))] == [1]


def test_memory_check_refuses_a_search_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(memory, 'available_memory', lambda device=None: (1 << 20, 'a test limit'))
    workdir = str(tmp_path / 'search')
    rc = cli.main(['search', '--config', TINY, '--workdir', workdir, '--no-progress'])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith('error: the compiled search step needs about ') and _one_line(err)
    assert 'is available (a test limit)' in err and 'data.batch_size (8)' in err and 'search.check_memory=False' in err
    assert not os.path.exists(workdir)
    # the estimate is what XLA's memory analysis says; check_memory=False only reports it
    searcher = search.Searcher(make_tiny_config(**{'search.check_memory': False}))
    searcher.compile_step(searcher.init_state())
    need = searcher.memory
    assert need['total'] == need['temp'] + need['argument'] + need['output'] - need['alias'] > 1 << 20


# ------------------------------------------------------------------------------ retraining

class ToyEvalNet(nn.Module):
    """The evaluation-network contract ``apply(v, x, train, drop_prob) -> (logits, aux)``."""

    @nn.compact
    def __call__(self, x, train=True, drop_prob=0.0):
        del drop_prob
        h = nn.Dense(6)(x.reshape(x.shape[0], -1))
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(h)
        return nn.Dense(10)(jnp.tanh(h)), None


def _retrain_setup(**changes):
    config = make_tiny_config(**{'retrain.epochs': 2, 'retrain.batch_size': 16, 'retrain.checkpoint_every': 1,
                                 'retrain.max_nonfinite_steps': 2, **changes})
    data = retrain.load_data(config, 'val', _dataset(config))
    return config, data


def test_retrain_step_skips_per_seed_and_fit_stops_keeping_the_checkpoint(tmp_path):
    config, data = _retrain_setup()
    net = ToyEvalNet()
    trainer = retrain.Trainer(net, config, data, [0, 1])
    state = trainer.init_state()
    x, y = next(trainer.epoch_batches(0))
    x = x.copy()
    x[0, 2] = np.nan                                  # seed 0's batch only
    before = jax.device_get(state)                    # the step donates its state
    new, m = trainer.step(state, x, y)
    state = before
    seed = lambda tree, s: jax.tree.map(lambda a: a[s], tree)
    for field in ('params', 'batch_stats', 'opt_state'):
        assert _bits(seed(getattr(new, field), 0)) == _bits(seed(getattr(state, field), 0))
        assert _bits(seed(getattr(new, field), 1)) != _bits(seed(getattr(state, field), 1))
    assert new.skips.skipped.tolist() == [1, 0] and m['skipped'].tolist() == [1.0, 0.0]
    assert bool(train.all_finite(new))

    workdir = str(tmp_path / 'retrain')
    first = retrain.fit(net, config, data, [0, 1], workdir, progress=False, max_epochs=1)
    assert first['skipped_steps'] == [0, 0] and first['step_memory_bytes'] > 0
    ckpt_dir = os.path.join(workdir, 'checkpoints')
    _, saved = runs.restore(ckpt_dir, trainer.init_state())
    poisoned = data._replace(train_x=np.full_like(data.train_x, np.nan))
    with pytest.raises(train.NonfiniteError) as e:
        retrain.fit(net, config, poisoned, [0, 1], workdir, progress=False)
    message = str(e.value)
    assert _one_line(message) and message.startswith('retraining of net stopped at step ')
    assert f'{ckpt_dir}/1 (epoch 1) is intact' in message and 'retrain.max_nonfinite_steps' in message
    step, restored = runs.restore(ckpt_dir, trainer.init_state())
    assert step == 1 and _bits(restored) == _bits(saved)
    assert not os.path.exists(os.path.join(workdir, 'scores.json'))


def test_memory_check_refuses_a_retraining_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, 'available_memory', lambda device=None: (1 << 10, 'a test limit'))
    config, data = _retrain_setup()
    workdir = str(tmp_path / 'retrain')
    with pytest.raises(memory.ResourceError) as e:
        retrain.fit(ToyEvalNet(), config, data, [0, 1], workdir, progress=False)
    message = str(e.value)
    assert _one_line(message) and message.startswith('the compiled retraining step (2 seeds) needs about ')
    assert 'retrain.batch_size (16)' in message and 'retrain.check_memory=False' in message
    assert not os.path.exists(workdir)
    config.retrain.check_memory = False
    assert retrain.fit(ToyEvalNet(), config, data, [0], None, progress=False, with_cost=False)['complete']


# ------------------------------------------------------------------------------ discrete search

def test_short_training_candidate_that_diverges_gets_nan_fitness():
    from jaxnas import discrete
    config = _tiny_discrete()
    fn = fitness.make_short_training(config, discrete.make_space(config), dataset=_dataset(config))
    genotype = spaces.get(config.space).sample(jax.random.PRNGKey(0))
    good, diverged = fn.evaluate([Candidate(genotype, {}), Candidate(genotype, {'lr': 1e30})])
    assert good['skipped_steps'] == 0 and np.isfinite(good['val_acc']) and np.isfinite(good['val_f1'])
    assert diverged['skipped_steps'] >= 2
    assert np.isnan(diverged['val_acc']) and np.isnan(diverged['val_loss']) and np.isnan(diverged['val_f1'])


def _tiny_discrete():
    from jaxnas import config as config_lib
    tiny = config_lib.load_config(os.path.join(ROOT, 'experiments', 'digits_discrete.py') + ':tiny')
    tiny.discrete.short_training.max_nonfinite_steps = 2
    return tiny


@pytest.mark.parametrize('name', list(searchers.SEARCHERS))
def test_searchers_rank_nan_fitness_last(name):
    space = searchers.base.choice_sizes([3, 3, 3])
    s = searchers.make_searcher(name, space, batch_size=2)
    key = jax.random.PRNGKey(0)
    state = s.init(key)
    a, b, c = jnp.asarray([[0, 0, 0]]), jnp.asarray([[1, 1, 1]]), jnp.asarray([[2, 2, 2]])
    told = s.tell(state, jnp.concatenate([a, b]), jnp.asarray([np.nan, 0.5], jnp.float32))
    # the NaN candidate has no say: telling another one in its place gives the same state
    other = s.tell(state, jnp.concatenate([c, b]), jnp.asarray([np.nan, 0.5], jnp.float32))
    if name == 'evolution':   # its population keeps the candidate, with the worst fitness of all
        assert told.fitness[:2].tolist() == [-np.inf, 0.5] and _bits(told.population[1:]) == _bits(other.population[1:])
    else:
        leaves = lambda t: [np.asarray(x) for x in jax.tree.leaves(t)]
        assert all(np.array_equal(u, v) for u, v in zip(leaves(told), leaves(other)))
        assert all(np.isfinite(u).all() for u in leaves(told) if u.dtype.kind == 'f')


def test_discrete_loop_keeps_nan_fitness_out_of_the_best(tmp_path):
    from jaxnas import discrete
    config = _tiny_discrete()
    config.discrete.max_evaluations = 4
    config.discrete.searcher = 'random'
    calls = []

    def evaluate(candidates):
        calls.append(len(candidates))
        return [{'val_acc': np.nan if len(calls) == 1 and i == 0 else 0.1 * (i + 1)} for i in range(len(candidates))]

    fake = fitness.FitnessFunction(evaluate, ('val_acc',), ())
    summary = discrete.run_discrete(config, str(tmp_path / 'd'), fitness=fake, progress=False)
    history = [json.loads(line) for line in open(tmp_path / 'd' / 'history.jsonl')]
    assert np.isnan(history[0]['fitness']) and summary['best_fitness'] == pytest.approx(0.2)
    assert all(np.isfinite(h['best_so_far']) for h in history[1:])
