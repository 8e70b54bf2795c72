"""The supernet metric (jaxnas.supernet_metric): the derived path, BatchNorm recalibrated.

Properties: a GDAS supernet that running-statistics evaluation puts at chance scores far
above chance; the number depends on the weights and the genotype only (not on the run's
running statistics, not on the relaxation); recalibration is the plain batch average and
leaves the run's state untouched; a new genotype does not recompile; every space.
"""
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import make_tiny_config
from jaxnas import runs, search, supernet_metric
from jaxnas.nn import BatchNorm
from jaxnas.train.bn import make_recalibrate

CHANCE = 0.1   # ten digit classes


def _bits(tree):
    return [np.asarray(x).tobytes() for x in jax.tree.leaves(tree)]


def _garbage(batch_stats):
    """Running statistics that wreck inference mode: every mean 50, every variance 1e-4."""
    return jax.tree_util.tree_map_with_path(
        lambda p, v: jnp.full_like(v, 1e-4 if 'var' in jax.tree_util.keystr(p) else 50.0), batch_stats)


def _gdas_config(**changes):
    return make_tiny_config(**{'relaxation.name': 'gdas', 'model.channels': 4, 'data.limit': 0,
                               'data.batch_size': 32, 'search.epochs': 8, 'optim.w_lr': 0.1, **changes})


@pytest.fixture(scope='module')
def gdas_run(tmp_path_factory):
    """A tiny GDAS search (single path) and its final state."""
    config = _gdas_config()
    workdir = str(tmp_path_factory.mktemp('gdas'))
    summary = search.run_search(config, workdir, progress=False)
    searcher = search.Searcher(config)
    _, state = runs.restore(os.path.join(workdir, 'checkpoints'), searcher.init_state())
    log = [json.loads(line) for line in open(os.path.join(workdir, 'log.jsonl'))]
    return config, summary, log, searcher, state


def test_gdas_supernet_at_chance_on_running_stats_scores_far_above_on_the_derived_path(gdas_run):
    config, summary, log, searcher, state = gdas_run
    genotype = searcher.space.parse(summary['genotype'])
    val = {'val': searcher.split('val')}
    new = searcher.genotype_scores(state, genotype, val)['val']
    assert summary['derived_val_acc'] == new['acc'] == log[-1]['derived_val_acc']
    assert new['acc'] > CHANCE + 0.2
    # the same weights, the path in inference mode with running statistics that are not its
    # own (here: garbage) read as chance; the metric does not read them at all
    mix = searcher.space.one_hot(genotype)
    garbage = state._replace(batch_stats=_garbage(state.batch_stats))
    stale = supernet_metric.mixture_scores(searcher.path_programs.evaluate, garbage.params, garbage.batch_stats,
                                           mix, val, config.data.eval_batch_size)['val']
    assert stale['acc'] < CHANCE + 0.1
    assert searcher.genotype_scores(garbage, genotype, val)['val'] == new
    # log and summary name which number is which; single path runs no mixture
    assert 'supernet_val_acc' not in summary and 'supernet_val_acc_mixture' not in summary
    assert 'recalibrated on 10 weight-train batches of 32' in summary['derived_metric']
    assert summary['supernet_val_acc_sampled'] == log[-1]['supernet_val_acc_sampled'] == log[-1]['val_acc']
    assert 0 <= summary['derived_test_acc'] <= 1


def test_one_metric_for_every_relaxation_and_no_recompile_per_genotype(gdas_run):
    config, summary, _, gdas, state = gdas_run
    val = {'val': gdas.split('val')}
    genotype = gdas.space.parse(summary['genotype'])
    scores = gdas.genotype_scores(state, genotype, val)
    for name in ('darts', 'snas', 'drnas', 'random_path'):
        other = search.Searcher(_gdas_config(**{'relaxation.name': name}))
        assert other.metric_net == gdas.metric_net and other.metric == gdas.metric
        assert other.genotype_scores(state, genotype, val) == scores, name
        assert (other.mixture_scores(state, val) is None) == (other.mode == 'single_path')
    before, traced = _bits(state), [f._cache_size() for f in gdas.path_programs]
    for key in jax.random.split(jax.random.PRNGKey(3), 2):   # other paths: the same programs
        assert gdas.genotype_scores(state, gdas.space.sample(key), val) != scores
    assert [f._cache_size() for f in gdas.path_programs] == traced
    assert _bits(state) == before   # the run's own state is only read


class _Toy(nn.Module):
    """Dense -> BatchNorm; a second BatchNorm exists but never runs after init."""
    momentum: float

    @nn.compact
    def __call__(self, x, scale, train):
        h = nn.Dense(3)(x) * scale
        if self.is_initializing():
            BatchNorm((3,), name='unused')(h, train)
        return BatchNorm((3,), momentum=self.momentum, name='bn')(h, train)


@pytest.mark.parametrize('momentum', [0.1, 0.5])
def test_recalibration_is_the_plain_batch_average_and_keeps_unused_slots(momentum):
    net = _Toy(momentum)
    xs = jax.random.normal(jax.random.PRNGKey(0), (3, 6, 1, 1, 4)) * 2 + 1   # 3 batches of 6
    variables = net.init(jax.random.PRNGKey(1), xs[0], 1.5, True)
    stats = jax.tree.map(lambda v: v + 7.0, variables['batch_stats'])        # far from any batch's
    out = jax.jit(make_recalibrate(net))(variables['params'], stats, xs, 1.5)
    kernel, bias = variables['params']['Dense_0']['kernel'], variables['params']['Dense_0']['bias']
    feats = (np.asarray(xs) @ np.asarray(kernel) + np.asarray(bias)) * 1.5            # (3, 6, 1, 1, 3)
    np.testing.assert_allclose(out['bn']['mean'], feats.mean(axis=(1, 2, 3)).mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out['bn']['var'], feats.var(axis=(1, 2, 3), ddof=1).mean(0), rtol=1e-5, atol=1e-6)
    assert _bits(out['unused']) == _bits(stats['unused'])


@pytest.mark.parametrize('space, changes', [
    ('nb201', {'model.cells_per_stage': 1}),
    ('mbconv', {'model.mbconv.stem_channels': 4, 'model.mbconv.widths': (4, 4, 8), 'model.mbconv.head_channels': 8}),
])
def test_every_space(space, changes):
    configs = {r: make_tiny_config(**{'space': space, 'model.channels': 4, 'relaxation.name': r, **changes})
               for r in ('darts', 'gdas')}
    searchers = {r: search.Searcher(c) for r, c in configs.items()}
    s = searchers['gdas']
    state = s.init_state()
    genotype = s.derive(s.weights(state))
    val = {'val': s.split('val')}
    scores = s.genotype_scores(state, genotype, val)['val']
    assert np.isfinite(scores['loss']) and 0 <= scores['acc'] <= 1
    assert searchers['darts'].genotype_scores(state, genotype, val)['val'] == scores
    garbage = state._replace(batch_stats=_garbage(state.batch_stats))
    assert s.genotype_scores(garbage, genotype, val)['val'] == scores
    out = s.eval_splits(state, genotype, ('val', 'test'))
    assert set(out) == {'derived_val_acc', 'derived_val_loss', 'derived_test_acc', 'derived_test_loss'}
