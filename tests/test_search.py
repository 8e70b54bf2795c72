"""End to end: the search loop, its outputs, determinism and resume; the CLI."""
import json
import os

import jax
import numpy as np
import pytest

from conftest import make_tiny_config
from jaxnas import cli, runs, search
from jaxnas.errors import JaxnasError
from jaxnas.spaces import darts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _final_state(workdir, config):
    searcher = search.Searcher(config)
    return runs.restore(os.path.join(workdir, 'checkpoints'), searcher.init_state())


def _bits(tree):
    return [np.asarray(x).tobytes() for x in jax.tree.leaves(tree)]


def test_search_outputs_determinism_and_resume(tmp_path):
    config = make_tiny_config()
    full = str(tmp_path / 'full')
    summary = search.run_search(config, full, progress=False)
    assert summary['complete'] and summary['epochs_done'] == 2
    for name in ('genotype.txt', 'genotype.json', 'alphas.json', 'summary.json', 'run.json', 'log.jsonl'):
        assert os.path.exists(os.path.join(full, name)), name
    with open(os.path.join(full, 'genotype.txt')) as f:
        g = darts.from_text(f.read())
    with open(os.path.join(full, 'genotype.json')) as f:
        assert darts.from_json(json.load(f)) == g
    lines = [json.loads(l) for l in open(os.path.join(full, 'log.jsonl'))]
    assert [l['epoch'] for l in lines] == [1, 2]
    for l in lines:
        alphas = np.asarray(l['alphas']['normal'])
        assert alphas.shape == (14, 8)
        np.testing.assert_allclose(alphas.sum(-1), 1, atol=1e-4)
        darts.from_text(l['genotype'])
        assert np.isfinite(l['train_loss']) and 0 <= l['derived_val_acc'] <= 1 and 0 <= l['supernet_val_acc_mixture'] <= 1

    # same seed, fresh directory: identical bits
    again = str(tmp_path / 'again')
    search.run_search(config, again, progress=False)
    # interrupted after one epoch, then resumed: identical bits to the uninterrupted run
    resumed = str(tmp_path / 'resumed')
    partial = search.run_search(config, resumed, progress=False, max_epochs=1)
    assert not partial['complete'] and not os.path.exists(os.path.join(resumed, 'genotype.txt'))
    search.run_search(config, resumed, progress=False)

    step_full, state_full = _final_state(full, config)
    for other in (again, resumed):
        step, state = _final_state(other, config)
        assert step == step_full == 2
        assert _bits(state.arch) == _bits(state_full.arch)
        assert _bits(state.params) == _bits(state_full.params)
        assert _bits(state.batch_stats) == _bits(state_full.batch_stats)
        assert _bits((state.w_opt, state.a_opt)) == _bits((state_full.w_opt, state_full.a_opt))
    assert open(os.path.join(resumed, 'genotype.txt')).read() == open(os.path.join(full, 'genotype.txt')).read()
    # the summary's supernet metric is the final state's derived path on recalibrated statistics:
    # recomputed from the checkpoint, and the same with the run's running statistics wrecked
    searcher = search.Searcher(config)
    val = {'val': searcher.split('val')}
    scores = searcher.genotype_scores(state_full, g, val)['val']
    assert scores['acc'] == summary['derived_val_acc'] == lines[-1]['derived_val_acc']
    wrecked = state_full._replace(batch_stats=jax.tree.map(lambda v: v * 0 + 50.0, state_full.batch_stats))
    assert searcher.genotype_scores(wrecked, g, val)['val'] == scores
    assert len(open(os.path.join(resumed, 'log.jsonl')).readlines()) == 2
    # rerunning a finished run compiles no step; its summary still gives the step's memory
    rerun = search.run_search(config, full, progress=False)
    assert rerun['step_memory_bytes'] == summary['step_memory_bytes'] is not None

    # a different config in the same work directory is refused, nothing overwritten
    before = open(os.path.join(full, 'summary.json')).read()
    with pytest.raises(JaxnasError, match='different config'):
        search.run_search(make_tiny_config(**{'model.channels': 4}), full, progress=False)
    assert open(os.path.join(full, 'summary.json')).read() == before


def test_cli_search_smoke(tmp_path, capsys):
    workdir = str(tmp_path / 'cli')
    rc = cli.main(['search', '--config', os.path.join(ROOT, 'experiments', 'tiny.py'), '--workdir', workdir,
                   '--no-progress', '--config.search.epochs=1'])
    assert rc == 0
    out = capsys.readouterr().out
    assert 'final genotype' in out and 'Genotype(normal=' in out
    assert json.load(open(os.path.join(workdir, 'summary.json')))['complete']


def test_cli_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(['--help'])
    assert info.value.code == 0
    assert 'search' in capsys.readouterr().out


@pytest.mark.parametrize('args, message', [
    (['--config.model.chanels=8'], "unknown config field 'model.chanels'"),
    (['--config.model.channels=abc'], "bad value 'abc' for config field 'model.channels'"),
    (['--config.model.layers=1'], 'bad config value model.layers=1'),
    (['--config.data.name=imagenet'], 'bad config value data.name'),
    (['--config.relaxation.name=enas'], 'bad config value relaxation.name'),
    (['--config.search.order=third'], 'bad config value search.order'),
    (['--config', 'experiments/nope.py'], 'does not exist'),
    (['--config', 'experiments/tiny.txt'], 'not a Python file'),
    (['--bogus'], 'unknown option --bogus'),
])
def test_cli_bad_input_one_line_error(tmp_path, capsys, args, message):
    workdir = str(tmp_path / 'bad')
    rc = cli.main(['search', '--workdir', workdir, '--no-progress'] + args)
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err
    assert err.count('\n') == 1 and err.startswith('error: ')
    assert not os.path.exists(workdir)


def test_cli_unprepared_tfds_data_set(tmp_path, capsys):
    workdir = str(tmp_path / 'cifar')
    rc = cli.main(['search', '--config', os.path.join(ROOT, 'experiments', 'cifar10_darts.py'),
                   '--workdir', workdir, '--no-progress', f'--config.data.data_dir={tmp_path / "tfds"}'])
    err = capsys.readouterr().err
    assert rc == 2
    assert 'not prepared' in err and 'tfds build cifar10' in err
    assert err.count('\n') == 1
    assert not os.path.exists(workdir)


def test_nb201_search_with_single_path_gdas_and_tabular_scores(tmp_path):
    from jaxnas.spaces import nb201
    fixture = os.path.join(ROOT, 'tests', 'data', 'nats_bench_fake', 'NATS-tss-v1_0-3ffb9-simple')
    config = make_tiny_config(**{'space': 'nb201', 'model.channels': 4, 'model.cells_per_stage': 1,
                                 'relaxation.name': 'gdas', 'search.epochs': 1, 'tabular.path': fixture})
    workdir = str(tmp_path / 'nb201')
    summary = search.run_search(config, workdir, progress=False)
    assert summary['complete'] and summary['space'] == 'nb201' and summary['mode'] == 'single_path'
    with open(os.path.join(workdir, 'genotype.txt')) as f:
        g = nb201.from_text(f.read().strip())
    assert str(g) == summary['genotype']
    tab = summary['tabular']
    assert tab['index'] == nb201.to_index(g)
    # the fixture holds 3 of the 15,625 records: either scores or a message naming the gap
    assert ('cifar10' in tab and 0 < tab['cifar10']['test_acc'] <= 100) or 'no 200-epoch' in tab['error']
    with open(os.path.join(workdir, 'log.jsonl')) as f:
        record = json.loads(f.readline())
    assert record['skip_connect_normal'] == g.count(('skip_connect',))
    assert 0 <= record['entropy'] <= np.log(len(nb201.PRIMITIVES)) + 1e-6
