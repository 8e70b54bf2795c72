"""Retraining: genotype input errors, resume equals uninterrupted, augmentation, the CLI."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import baseline, cli, config as config_lib, retrain
from jaxnas.errors import JaxnasError
from jaxnas.spaces import darts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, 'experiments', 'tiny_pipeline.py')

UNKNOWN_OP = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('conv_7x7', 0), ('sep_conv_3x3', 1), "
              "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
              "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
              "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
              "('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")
MISSING_NODE = UNKNOWN_OP.replace("('conv_7x7', 0)", "('sep_conv_3x3', 0)").replace(
    "('dil_conv_3x3', 2)", "('dil_conv_3x3', 6)")


def tiny_config(**changes):
    c = config_lib.load_config(TINY)
    for k, v in changes.items():
        config_lib.apply_overrides(c, [(k, v)])
    return c


def _bits(tree):
    return [np.asarray(x).tobytes() for x in jax.tree.leaves(tree)]


@pytest.mark.parametrize('text,message', [(UNKNOWN_OP, "unknown op 'conv_7x7'"),
                                          (MISSING_NODE, 'takes input 6, which does not exist')])
def test_bad_genotype_text_rejected(text, message, tmp_path, capsys):
    with pytest.raises(JaxnasError, match=message):
        retrain.resolve_genotype(text)
    workdir = str(tmp_path / 'out')
    rc = cli.main(['retrain', '--config', TINY, '--workdir', workdir, '--no-progress', '--genotype', text])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith('error: ') and len(err.splitlines()) == 1 and message in err
    assert not os.path.exists(workdir)


def test_genotype_sources(tmp_path):
    assert retrain.resolve_genotype('DARTS_V2') == darts.PUBLISHED['DARTS_V2']
    assert retrain.resolve_genotype(str(darts.PUBLISHED['DARTS_V1'])) == darts.PUBLISHED['DARTS_V1']
    with pytest.raises(JaxnasError, match='does not exist'):
        retrain.resolve_genotype(str(tmp_path / 'no' / 'such' / 'search'))
    unfinished = tmp_path / 'search'
    unfinished.mkdir()
    with pytest.raises(JaxnasError, match='has not finished'):
        retrain.resolve_genotype(str(unfinished))
    (unfinished / 'genotype.txt').write_text(str(darts.PUBLISHED['GDAS_V1']) + '\n')
    assert retrain.resolve_genotype(str(unfinished)) == darts.PUBLISHED['GDAS_V1']


def test_config_validation():
    with pytest.raises(JaxnasError, match='retrain.drop_path_prob'):
        retrain.validate(tiny_config(**{'retrain.drop_path_prob': 1.5}))
    with pytest.raises(JaxnasError, match='retrain.compute_dtype'):
        retrain.validate(tiny_config(**{'retrain.compute_dtype': 'float8'}))
    retrain.validate(config_lib.base_config())
    retrain.validate(config_lib.load_config(os.path.join(ROOT, 'experiments', 'cifar10_retrain.py')))


def test_cutout():
    x = jnp.ones((64, 8, 8, 1))
    y = retrain.cutout(jax.random.key(0), x, 4)
    zeros = np.asarray((y == 0).reshape(64, -1).sum(1))
    assert zeros.max() == 16 and zeros.min() >= 4  # a 4x4 square, clipped at the border
    assert not np.array_equal(retrain.cutout(jax.random.key(1), x, 4), y)


def test_resume_equals_uninterrupted_and_scores(tmp_path):
    config = tiny_config()
    data = retrain.load_data(config, 'test')
    net = retrain.build_network(darts.PUBLISHED['DARTS_V2'], config, data.num_classes)
    full = retrain.fit(net, config, data, [0, 1], str(tmp_path / 'full'), progress=False)
    partial = retrain.fit(net, config, data, [0, 1], str(tmp_path / 'resumed'), progress=False, max_epochs=1)
    assert not partial['complete'] and 'scores' not in partial
    resumed = retrain.fit(net, config, data, [0, 1], str(tmp_path / 'resumed'), progress=False)
    assert resumed['complete'] and resumed['epochs_done'] == 2
    assert _bits(full['state']) == _bits(resumed['state'])
    assert int(full['state'].step[0]) == 2 * full['steps_per_epoch']
    # the two seeds are different runs
    p = jax.tree.leaves(full['state'].params)[0]
    assert not np.array_equal(p[0], p[1])
    assert [s['seed'] for s in full['scores']] == [0, 1]
    for s in full['scores']:
        assert 0 <= s['accuracy'] <= 1 and 0 <= s['f1'] <= 1
        assert np.asarray(s['confusion_matrix']).sum() == len(data.eval_y)
    cost = full['cost']
    seed0 = jax.tree.map(lambda a: a[0], full['state'].params)
    assert cost['params'] == retrain.costs.count_params({k: v for k, v in seed0.items() if k != 'aux_head'})
    assert cost['macs_per_example'] > 0 and cost['memory_peak_bytes'] > 0 and cost['latency_ms_median'] > 0
    log = [json.loads(l) for l in open(tmp_path / 'resumed' / 'log.jsonl')]
    assert [l['epoch'] for l in log] == [1, 2] and log[0]['drop_prob'] == 0 and log[1]['drop_prob'] > 0
    for name in ('scores.json', 'scores_seed0.json', 'scores_seed1.json', 'run.json'):
        assert os.path.exists(tmp_path / 'full' / name)
    # a finished run is read back, not retrained; a different run in its directory is refused
    again = retrain.fit(net, config, data, [0, 1], str(tmp_path / 'full'), progress=False)
    assert again['scores'] == json.loads(json.dumps(full['scores']))
    with pytest.raises(JaxnasError, match='holds a retrain run with a different config or arguments'):
        retrain.fit(net, config, data, [0, 2], str(tmp_path / 'full'), progress=False)


def test_bfloat16_and_label_smoothing_step():
    config = tiny_config(**{'retrain.compute_dtype': 'bfloat16', 'retrain.label_smoothing': 0.1,
                            'retrain.cutout_length': 2})
    data = retrain.load_data(config, 'val')
    net, _ = baseline.make_baseline(3000, blocks=(1, 1, 1), in_channels=1, num_classes=10)
    trainer = retrain.Trainer(net, config, data, [0])
    state = trainer.init_state()
    x, y = next(trainer.epoch_batches(0))
    new, m = trainer.step(state, x, y)
    assert np.all(np.isfinite(m['loss']))
    assert jax.tree.leaves(new.params)[0].dtype == jnp.float32  # float32 master weights
    assert new.step[0] == 1


def test_cli_retrain_smoke(tmp_path, capsys):
    workdir = str(tmp_path / 'rt')
    rc = cli.main(['retrain', '--config', TINY, '--workdir', workdir, '--no-progress', '--genotype', 'DARTS_V2',
                   '--config.retrain.num_seeds=2'])
    out = capsys.readouterr().out
    assert rc == 0, out
    summary = json.load(open(os.path.join(workdir, 'scores.json')))
    assert summary['complete'] and len(summary['scores']) == 2
    assert summary['description']['genotype'] == str(darts.PUBLISHED['DARTS_V2'])
    assert os.path.exists(os.path.join(workdir, 'scores_seed1.json'))
    # the genotype's search-network cost under each of cost.report_models, from the cost table
    from jaxnas import costs
    cost = json.load(open(os.path.join(workdir, 'genotype_cost.json')))
    config = tiny_config()
    assert list(cost) == list(config.cost.report_models)
    for name, entry in cost.items():
        table = costs.table_for_config(config, name)
        assert entry == {'value': table.genotype_cost(darts.PUBLISHED['DARTS_V2']), 'unit': table.unit}
    assert json.loads(out[out.index('{'):])['genotype_cost'] == cost


def test_nb201_genotype_dispatches_to_its_network():
    nb201 = pytest.importorskip('jaxnas.spaces.nb201')
    pytest.importorskip('jaxnas.spaces.nb201.network')
    g = retrain.resolve_genotype('|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|'
                                 'nor_conv_3x3~1|skip_connect~2|')
    assert isinstance(g, nb201.Genotype)
    net = retrain.build_network(g, tiny_config(**{'retrain.channels': 4, 'retrain.cells_per_stage': 1}), 10)
    x = jnp.zeros((2, 8, 8, 1))
    v = jax.eval_shape(lambda x: net.init(jax.random.key(0), x, train=True), x)
    (logits, aux), _ = jax.eval_shape(
        lambda v, x: net.apply(v, x, train=True, drop_prob=0.1, mutable=['batch_stats']), v, x)
    assert logits.shape == (2, 10) and aux is None


@pytest.mark.slow
@pytest.mark.parametrize('name', ['NASNet', 'AmoebaNet'])
def test_cli_retrain_reference_genotypes_of_five_nodes(name, tmp_path, capsys):
    # quark0/darts genotypes.py's NASNet and AmoebaNet: 5 nodes, concats that skip nodes,
    # sep_conv_7x7 / conv_7x1_1x7; they train in the reference evaluation network.
    workdir = str(tmp_path / name)
    rc = cli.main(['retrain', '--config', TINY, '--workdir', workdir, '--no-progress', '--genotype', name,
                   '--config.retrain.epochs=1', '--config.retrain.num_seeds=1', '--config.data.limit=64'])
    out = capsys.readouterr().out
    assert rc == 0, out
    summary = json.load(open(os.path.join(workdir, 'scores.json')))
    assert summary['complete'] and len(summary['scores']) == 1
    assert summary['description']['genotype'] == str(darts.PUBLISHED[name])
    assert 0 <= summary['scores'][0]['accuracy'] <= 1
    # no place in the 4-node search network: empty cost cells with the reason, the retraining stands
    cost = json.load(open(os.path.join(workdir, 'genotype_cost.json')))
    assert all(e['value'] is None and 'search network' in e['error'] for e in cost.values())
