"""The discrete search loop: outputs, resume == uninterrupted, stop on target and on
time, refused configs, one-line CLI errors, and one CLI smoke run per fitness mode."""
import json
import os

import numpy as np
import pytest

from conftest import ROOT
from jaxnas import cli, config as config_lib, discrete, fitness as fitness_lib
from jaxnas.errors import JaxnasError
from jaxnas.spaces import darts

TINY = os.path.join(ROOT, 'experiments', 'digits_discrete.py')
FIXTURE = os.path.join(ROOT, 'tests', 'data', 'nats_bench_fake', 'NATS-tss-v1_0-3ffb9-simple')


def toy_config(**changes):
    c = config_lib.load_config(TINY + ':tiny')
    c.discrete.max_evaluations = 24
    c.discrete.batch_size = 4
    c.discrete.hparams.lr = (0.025, 0.05)
    for key, value in changes.items():
        config_lib.apply_overrides(c, [(key, value)])
    return c


def toy_fitness(config):
    """Fraction of choices at their last value (known optimum 1), and a fake cost."""
    space = discrete.make_space(config)
    target = np.asarray([s - 1 for s in space.sizes])

    def evaluate(candidates):
        out = []
        for c in candidates:
            v = space.encode(c.genotype, c.hparams)
            out.append({'val_acc': float((v == target).mean()), 'params': float(v.sum())})
        return out
    return fitness_lib.FitnessFunction(evaluate, ('val_acc', 'params'), ('lr',))


def _history(workdir):
    return [json.loads(l) for l in open(os.path.join(workdir, 'history.jsonl'))]


@pytest.mark.parametrize('searcher', ['random', 'evolution', 'reinforce'])
def test_outputs_and_resume_equals_uninterrupted(tmp_path, searcher):
    config = toy_config(**{'discrete.searcher': searcher})
    full = str(tmp_path / 'full')
    summary = discrete.run_discrete(config, full, progress=False, fitness=toy_fitness(config))
    assert summary['complete'] and summary['stop'] == 'evaluations' and summary['evaluations'] == 24
    for name in ('run.json', 'history.jsonl', 'genotype.txt', 'genotype.json', 'best.json',
                 'summary.json', 'best_so_far.png'):
        assert os.path.getsize(os.path.join(full, name)) > 0, name
    h = _history(full)
    assert [l['evaluation'] for l in h] == list(range(24))
    assert all(set(l) >= {'genotype', 'hparams', 'fitness', 'cost', 'elapsed_s', 'best_so_far'} for l in h)
    assert np.all(np.diff([l['best_so_far'] for l in h]) >= 0)
    best = max(h, key=lambda l: l['fitness'])
    g = darts.from_text(open(os.path.join(full, 'genotype.txt')).read())
    assert str(g) == best['genotype'] == summary['best_genotype']
    assert darts.from_json(json.load(open(os.path.join(full, 'genotype.json')))) == g

    resumed = str(tmp_path / 'resumed')
    part = discrete.run_discrete(config, resumed, progress=False, fitness=toy_fitness(config), max_rounds=2)
    assert not part['complete'] and part['evaluations'] == 8
    assert not os.path.exists(os.path.join(resumed, 'genotype.txt'))
    with open(os.path.join(resumed, 'history.jsonl'), 'a') as f:   # a line written after the checkpoint
        f.write(json.dumps(dict(h[8], fitness=-1.0)) + '\n')
    discrete.run_discrete(config, resumed, progress=False, fitness=toy_fitness(config))
    strip = lambda lines: [{k: v for k, v in l.items() if k != 'elapsed_s'} for l in lines]
    assert strip(_history(resumed)) == strip(h)
    assert open(os.path.join(resumed, 'genotype.txt')).read() == open(os.path.join(full, 'genotype.txt')).read()

    # a different config in the same directory is refused
    with pytest.raises(JaxnasError, match='different config'):
        other = toy_config(**{'discrete.searcher': searcher, 'discrete.max_evaluations': 30})
        discrete.run_discrete(other, full, progress=False, fitness=toy_fitness(other))


def test_stops_when_good_enough_and_on_time(tmp_path):
    config = toy_config(**{'discrete.searcher': 'evolution', 'discrete.max_evaluations': 400,
                           'discrete.target': 0.3})
    summary = discrete.run_discrete(config, str(tmp_path / 'target'), progress=False, fitness=toy_fitness(config))
    assert summary['stop'] == 'target' and summary['best_fitness'] >= 0.3 and summary['evaluations'] < 400
    h = _history(str(tmp_path / 'target'))
    assert h[-1]['best_so_far'] >= 0.3 and all(l['best_so_far'] < 0.3 for l in h if l['round'] < h[-1]['round'])

    config = toy_config(**{'discrete.max_evaluations': 10 ** 6, 'discrete.max_time_s': 1.0})
    summary = discrete.run_discrete(config, str(tmp_path / 'time'), progress=False, fitness=toy_fitness(config))
    assert summary['stop'] == 'time' and summary['evaluations'] < 10 ** 6


def test_objective_trades_metric_against_cost(tmp_path):
    config = toy_config(**{'discrete.fitness.objective': 'linear', 'discrete.fitness.cost': 'params',
                           'discrete.fitness.cost_weight': 0.01, 'discrete.max_evaluations': 8})
    discrete.run_discrete(config, str(tmp_path / 'obj'), progress=False, fitness=toy_fitness(config))
    for l in _history(str(tmp_path / 'obj')):
        assert l['fitness'] == pytest.approx(l['metrics']['val_acc'] - 0.01 * l['cost']['params'])
    with pytest.raises(JaxnasError, match="cost 'macs' is not reported"):
        fitness_lib.make_objective('mnas', 'val_acc', 'macs', 0.07, 1e6, available=('val_acc', 'params'))


@pytest.mark.parametrize('args, message', [
    (['--searcher', 'annealing'], "invalid choice: 'annealing'"),
    (['--config.discrete.searcher=annealing'], 'bad config value discrete.searcher'),
    (['--config.discrete.evolution.sample_size=50'], 'sample_size (50) must be <= population_size'),
    (['--config.discrete.reinforce.learning_rate=-1.0', '--searcher=reinforce'], 'learning_rate must be'),
    (['--config.discrete.fitness.mode=oracle'], 'bad config value discrete.fitness.mode'),
    (['--config.discrete.batch_size=0'], 'bad config value discrete.batch_size'),
    (['--config.discrete.fitness.objective=linear'], 'objective linear needs a cost'),
    (['--config.discrete.evolution.tournament=3'], "unknown config field 'discrete.evolution.tournament'"),
])
def test_cli_bad_discrete_config_one_line_error(tmp_path, capsys, args, message):
    workdir = str(tmp_path / 'bad')
    try:
        rc = cli.main(['discrete', '--config', TINY + ':tiny', '--workdir', workdir, '--no-progress'] + args)
    except SystemExit as e:   # argparse rejects --searcher values itself
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and message in err
    if 'invalid choice' not in message:
        assert err.count('\n') == 1 and err.startswith('error: ')
    assert not os.path.exists(workdir)


def _cli(tmp_path, capsys, name, args):
    workdir = str(tmp_path / name)
    rc = cli.main(['discrete', '--config', TINY + ':tiny', '--workdir', workdir, '--no-progress',
                   '--config.discrete.max_evaluations=4'] + args)
    out = capsys.readouterr().out
    assert rc == 0 and 'best genotype' in out
    summary = json.load(open(os.path.join(workdir, 'summary.json')))
    assert summary['evaluations'] == 4 and summary['complete']
    h = _history(workdir)
    assert len(h) == 4 and all(0 <= l['metrics']['val_acc'] <= 1 for l in h)
    return workdir, summary, h


@pytest.mark.slow
def test_cli_short_training_smoke(tmp_path, capsys):
    workdir, summary, h = _cli(tmp_path, capsys, 'short', ['--searcher=evolution', '--fitness=short_training'])
    assert all(np.isfinite(l['metrics']['train_loss']) and l['cost']['params'] > 0 for l in h)
    darts.from_text(open(os.path.join(workdir, 'genotype.txt')).read())


@pytest.mark.slow
def test_cli_weight_sharing_smoke_trains_the_supernet_once(tmp_path, capsys):
    workdir, summary, h = _cli(tmp_path, capsys, 'ws', ['--searcher=random', '--fitness=weight_sharing'])
    first = json.load(open(os.path.join(workdir, 'supernet.json')))
    assert not first['reused'] and os.path.exists(os.path.join(first['dir'], 'summary.json'))
    assert os.path.dirname(first['dir']) == str(tmp_path / 'supernets')
    darts.from_text(open(os.path.join(workdir, 'genotype.txt')).read())
    # another run whose config differs only in the discrete section reuses the supernet
    workdir, _, h2 = _cli(tmp_path, capsys, 'ws2', ['--searcher=random', '--fitness=weight_sharing',
                                                    '--config.discrete.checkpoint_every=2'])
    second = json.load(open(os.path.join(workdir, 'supernet.json')))
    assert second['reused'] and second['dir'] == first['dir']
    assert [l['metrics'] for l in h2] == [l['metrics'] for l in h]


@pytest.mark.slow
def test_short_training_single_path_equals_dense_and_batches_seeds():
    config = toy_config(**{'discrete.max_evaluations': 2})
    config.discrete.hparams = type(config.discrete.hparams)()
    space = discrete.make_space(config)
    # choices per node: (input pair, op_a, op_b); ops 3 and 6: sep_conv_3x3, dil_conv_5x5.
    # (Pools are left out: single_path moves a shared input's pool statistics once per
    # target edge that picks the pool, dense once per input.)
    is_pair = np.arange(space.num_choices) % 3 == 0
    sizes = np.asarray(space.sizes)
    cands = [space.decode(np.where(is_pair, pair, op).astype(np.int32) % sizes)
             for pair, op in ((0, 3), (sizes - 1, 6))]
    assert all(op.endswith('conv_3x3') or op.endswith('conv_5x5') for c in cands for op, _ in c.genotype.normal)
    single = fitness_lib.make_fitness(config, space)
    config.discrete.short_training.execution = 'dense'
    dense = fitness_lib.make_fitness(config, space)
    a, b = single.evaluate(cands), dense.evaluate(cands)
    assert single.evaluate.timings[0]['execution'] == 'single_path'
    for x, y in zip(a, b):
        assert x['val_acc'] == pytest.approx(y['val_acc'], abs=1e-6)
        assert x['val_loss'] == pytest.approx(y['val_loss'], rel=1e-3, abs=1e-4)
        assert x['train_loss'] == pytest.approx(y['train_loss'], rel=1e-3, abs=1e-4)
    assert single.evaluate(cands[::-1]) == a[::-1] and len(single.evaluate.timings) == 1   # remembered

    config.discrete.short_training.execution = 'single_path'
    config.discrete.short_training.seeds = 2
    seeded = fitness_lib.make_fitness(config, space).evaluate(cands[:1])[0]
    assert 0 <= seeded['val_acc'] <= 1 and np.isfinite(seeded['val_loss']) and seeded['val_acc_std'] >= 0

    config.discrete.short_training.execution = 'sparse'
    with pytest.raises(JaxnasError, match='short_training.execution'):
        fitness_lib.make_fitness(config, space)


def test_tabular_fitness_on_the_fixture_cells(tmp_path):
    from jaxnas.spaces import nb201
    cells = tuple(str(nb201.from_index(i)) for i in (0, 11, 284))
    config = toy_config(**{'space': 'nb201', 'discrete.fitness.mode': 'tabular', 'discrete.searcher': 'evolution',
                           'discrete.tabular.path': FIXTURE, 'discrete.max_evaluations': 6,
                           'discrete.batch_size': 2, 'discrete.evolution.population_size': 2,
                           'discrete.evolution.sample_size': 2})
    config.discrete.hparams = type(config.discrete.hparams)()
    config.discrete.cells = cells
    workdir = str(tmp_path / 'tab')
    summary = discrete.run_discrete(config, workdir, progress=False)
    h = _history(workdir)
    assert summary['evaluations'] == 6 and {l['genotype'] for l in h} <= set(cells)
    accs = {l['genotype']: l['metrics']['val_acc'] for l in h}
    assert all(0 < a <= 100 for a in accs.values())   # percent, as the benchmark records it
    assert summary['best_fitness'] == max(accs.values())
    assert open(os.path.join(workdir, 'genotype.txt')).read().strip() == summary['best_genotype']
    assert json.load(open(os.path.join(workdir, 'genotype.json'))) == {'space': 'nb201', 'arch': summary['best_genotype']}

    # a cell the file lacks scores NaN (a failed evaluation), not a crash
    config.discrete.cells = cells + (str(nb201.from_index(5)),)
    fn = fitness_lib.make_fitness(config, discrete.make_space(config))
    assert np.isnan(fn.evaluate([discrete.make_space(config).decode(np.asarray([3], np.int32))])[0]['val_acc'])
