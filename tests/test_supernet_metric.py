"""The supernet metric (jaxnas.supernet_metric): the derived path, BatchNorm recalibrated.

Properties: a GDAS supernet that inference mode on running statistics other than its own
puts at chance scores far above chance; the number depends on the weights and the genotype
only (not on the run's running statistics, not on the relaxation); recalibration is the
plain batch average and leaves the run's state untouched; a new genotype does not
recompile; the log and summary name which number is which; every space shares one
metric network across relaxations.

Cost: the supernet is the NB201 cell space's (its single-path step compiles in about half
the DARTS tiny step's time), trained for one epoch on one path through ``Searcher.step``;
the run of the log/summary test has the same config, so it loads that step from the
persistent cache instead of compiling it again.
"""
import json

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
# The path the supernet is trained on (every edge a real op, so it is also the derived cell).
PATH = '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|'
PEAK = 20.0    # logit margin of PATH's ops: Gumbel noise (scale 1) never bridges it


def _bits(tree):
    return [np.asarray(x).tobytes() for x in jax.tree.leaves(tree)]


def _garbage(batch_stats):
    """Running statistics that wreck inference mode: every mean 50, every variance 1e-4."""
    return jax.tree_util.tree_map_with_path(
        lambda p, v: jnp.full_like(v, 1e-4 if 'var' in jax.tree_util.keystr(p) else 50.0), batch_stats)


def _config(**changes):
    """GDAS (single path) on the NB201 cell, all the digits (718 weight-train examples: one
    epoch is 89 steps of 8), a small arch step so the peaked logits stay peaked."""
    return make_tiny_config(**{'space': 'nb201', 'model.channels': 4, 'model.cells_per_stage': 1,
                               'relaxation.name': 'gdas', 'data.limit': 0, 'search.epochs': 1,
                               'optim.w_lr': 0.1, 'optim.a_lr': 3e-4, **changes})


@pytest.fixture(scope='module')
def trained():
    """A GDAS supernet trained for one epoch by its own step, every step sampling PATH."""
    searcher = search.Searcher(_config())
    genotype = searcher.space.parse(PATH)
    state = searcher.init_state()
    arch = jax.tree.map(lambda a, m: a + PEAK * m, state.arch, searcher.space.one_hot(genotype))
    state = state._replace(arch=arch, a_opt=searcher.a_tx.init(arch))
    for batches in searcher.epoch_batches(0):
        state, metrics = searcher.step(state, *batches)
    return searcher, genotype, state, jax.device_get(metrics)


def test_gdas_supernet_at_chance_on_foreign_running_stats_scores_far_above_on_the_derived_path(trained):
    searcher, genotype, state, metrics = trained
    assert int(state.step) == searcher.steps_per_epoch and int(state.skips.skipped) == 0
    assert searcher.derive(searcher.weights(state)) == genotype   # the trained path is the derived one
    val = {'val': searcher.split('val')}
    new = searcher.genotype_scores(state, genotype, val)['val']
    assert new['acc'] > CHANCE + 0.3
    # the same weights and path in inference mode on running statistics that are not its own
    # (here: garbage) read as chance; the metric does not read them at all
    garbage = state._replace(batch_stats=_garbage(state.batch_stats))
    stale = supernet_metric.mixture_scores(searcher.path_programs.evaluate, garbage.params, garbage.batch_stats,
                                           searcher.space.one_hot(genotype), val,
                                           searcher.config.data.eval_batch_size)['val']
    assert stale['acc'] < CHANCE + 0.1
    assert searcher.genotype_scores(garbage, genotype, val)['val'] == new


def test_one_metric_for_every_relaxation_and_no_recompile_per_genotype(trained):
    gdas, genotype, state, _ = trained
    val = {'val': gdas.split('val')}
    scores = gdas.genotype_scores(state, genotype, val)
    for name in ('darts', 'snas', 'drnas', 'random_path'):
        other = search.Searcher(_config(**{'relaxation.name': name}), dataset=gdas.data)
        assert other.metric_net == gdas.metric_net and other.metric == gdas.metric
        assert other.path_programs is gdas.path_programs   # the same compiled programs
        assert other.genotype_scores(state, genotype, val) == scores, name
        assert (other.evaluate is None) == (other.mode == 'single_path'), name   # a mixture where one runs
    before, traced = _bits(state), [f._cache_size() for f in gdas.path_programs]
    for key in jax.random.split(jax.random.PRNGKey(3), 2):   # other paths: the same programs
        assert gdas.genotype_scores(state, gdas.space.sample(key), val) != scores
    assert [f._cache_size() for f in gdas.path_programs] == traced
    assert _bits(state) == before   # the run's own state is only read


def test_log_and_summary_name_which_number_is_which(tmp_path, trained):
    gdas = trained[0]
    config = _config()
    summary = search.run_search(config, str(tmp_path), progress=False, dataset=gdas.data)
    log = [json.loads(line) for line in open(tmp_path / 'log.jsonl')]
    _, state = runs.restore(str(tmp_path / 'checkpoints'), gdas.init_state())
    genotype = gdas.space.parse(summary['genotype'])
    traced = [f._cache_size() for f in gdas.path_programs]
    new = gdas.genotype_scores(state, genotype, {'val': gdas.split('val')})['val']
    assert [f._cache_size() for f in gdas.path_programs] == traced   # a restored state: no new program
    assert summary['derived_val_acc'] == new['acc'] == log[-1]['derived_val_acc']
    assert summary['derived_val_loss'] == new['loss'] == log[-1]['derived_val_loss']
    assert 0 <= summary['derived_test_acc'] <= 1 and np.isfinite(summary['derived_test_loss'])
    assert 'recalibrated on 10 weight-train batches of 8' in summary['derived_metric']
    assert summary['supernet_val_acc_sampled'] == log[-1]['supernet_val_acc_sampled'] == log[-1]['val_acc']
    # single path runs no mixture; the old ambiguous name is gone
    for record in (summary, log[-1]):
        assert not {'supernet_val_acc', 'supernet_val_acc_mixture', 'supernet_test_acc_mixture'} & set(record)


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
    ('darts', {}),
    ('mbconv', {'model.mbconv.stem_channels': 4, 'model.mbconv.widths': (4, 4, 8), 'model.mbconv.head_channels': 8}),
])
def test_every_space_shares_one_metric_network_across_relaxations(space, changes):
    """Without compiling: the same network and programs, so the same numbers (shown above on
    NB201; the DARTS tiny searches of tests/test_search.py check the numbers on that space)."""
    searchers = {r: search.Searcher(make_tiny_config(**{'space': space, 'model.channels': 4, 'relaxation.name': r,
                                                        **changes}))
                 for r in ('darts', 'gdas', 'pcdarts')}
    assert searchers['darts'].metric_net == searchers['gdas'].metric_net
    assert searchers['darts'].path_programs is searchers['gdas'].path_programs
    assert searchers['darts'].metric_net.mode == 'single_path'
    pc = searchers['pcdarts']   # partial channel: variables of its own, its own network
    assert pc.metric_net is pc.net and pc.metric_net.mode == 'partial_channel'
