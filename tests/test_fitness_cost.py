"""Cost-aware fitness of the discrete searchers: the objectives' formulas and orderings
(MnasNet soft / hard, TuNAS absolute, hard-constraint rejection), the cost-table metric
``cost`` / ``cost:<model>``, one-line config errors, and real runs whose best meets a hard
cost target that the unconstrained best exceeds."""
import json
import math
import os

import jax
import numpy as np
import pytest

from conftest import ROOT
from jaxnas import cli, config as config_lib, costs, discrete, fitness as fitness_lib, spaces
from jaxnas.errors import JaxnasError
from jaxnas.spaces import nb201
from jaxnas.spaces.choices import Candidate

TINY = os.path.join(ROOT, 'experiments', 'digits_discrete.py')
FIXTURE = os.path.join(ROOT, 'tests', 'data', 'nats_bench_fake', 'NATS-tss-v1_0-3ffb9-simple')
FIXTURE_CELLS = tuple(str(nb201.from_index(i)) for i in (0, 11, 284))   # the cells the fake benchmark holds


def objective(kind, weight=0.0, target=100.0, max_cost=0.0):
    return fitness_lib.make_objective(kind, 'acc', 'c', weight, target, available=('acc', 'c'), max_cost=max_cost)


def m(acc, c):
    return {'acc': acc, 'c': c}


def test_mnas_soft_formula_and_cheaper_wins_at_equal_accuracy():
    f = objective('mnas', 0.07, 100.0)
    assert f(m(0.8, 100.0)) == pytest.approx(0.8)                       # on target: the accuracy
    assert f(m(0.8, 200.0)) == pytest.approx(0.8 * 2 ** -0.07)
    assert f(m(0.8, 50.0)) == pytest.approx(0.8 * 0.5 ** -0.07)          # under target: rewarded
    costs_ = [10.0, 50.0, 99.0, 100.0, 101.0, 400.0]
    values = [f(m(0.8, c)) for c in costs_]
    assert all(a > b for a, b in zip(values, values[1:]))                # strictly: cheaper wins
    assert f(m(0.9, 100.0)) > f(m(0.8, 100.0))                           # same cost: more accurate wins


def test_mnas_hard_ignores_cost_under_target_and_penalises_over():
    f = objective('mnas_hard', 1.0, 100.0)
    assert f(m(0.8, 10.0)) == f(m(0.8, 99.0)) == f(m(0.8, 100.0)) == pytest.approx(0.8)
    assert f(m(0.8, 200.0)) == pytest.approx(0.8 * 0.5)                  # beta = -1: acc * T / C
    assert f(m(0.8, 100.0 + 1e-6)) == pytest.approx(0.8, rel=1e-6)      # continuous at T
    assert f(m(0.8, 150.0)) > f(m(0.8, 300.0))
    assert f(m(0.7, 10.0)) < f(m(0.8, 99.0))                              # under target: accuracy alone


def test_tunas_absolute_reward_is_symmetric_around_the_target():
    f = objective('tunas', 0.07, 100.0)
    assert f(m(0.8, 100.0)) == pytest.approx(0.8)                       # the maximum, at C = T
    for d in (0.1, 0.5, 0.9):
        assert f(m(0.8, 100.0 * (1 + d))) == pytest.approx(f(m(0.8, 100.0 * (1 - d))))
        assert f(m(0.8, 100.0 * (1 + d))) == pytest.approx(0.8 - 0.07 * d)
        assert f(m(0.8, 100.0 * (1 + d))) < f(m(0.8, 100.0))
    assert f(m(0.8, 50.0)) < f(m(0.8, 80.0)) < f(m(0.8, 100.0)) > f(m(0.8, 120.0)) > f(m(0.8, 150.0))


def test_rejection_over_the_hard_limit():
    f = objective('constrained', target=100.0)
    assert f(m(0.8, 100.0)) == 0.8 and f.feasible(m(0.8, 100.0))
    assert f(m(0.99, 100.5)) == -math.inf and not f.feasible(m(0.99, 100.5))
    assert f.limit == 100.0 and f.target == 100.0
    # max_cost: a hard limit on top of any objective; with constrained the smaller one binds
    g = objective('mnas', 0.07, 100.0, max_cost=150.0)
    assert g(m(0.8, 140.0)) == pytest.approx(0.8 * 1.4 ** -0.07) and g(m(0.8, 160.0)) == -math.inf
    assert objective('constrained', target=100.0, max_cost=50.0).limit == 50.0
    h = objective('metric', max_cost=10.0)
    assert h(m(0.5, 10.0)) == 0.5 and h(m(0.9, 11.0)) == -math.inf and h.target == 10.0
    free = objective('linear', 0.01)
    assert math.isinf(free.limit) and free.feasible(m(0.1, 1e30)) and free.target is None


@pytest.mark.parametrize('kind, kwargs, message', [
    ('mnas', {'cost_weight': 0.07, 'cost_target': 0.0}, 'needs cost_target > 0'),
    ('constrained', {'cost_target': -1.0}, 'needs cost_target > 0'),
    ('tunas', {'cost_weight': 0.0, 'cost_target': 1.0}, 'needs cost_weight > 0'),
    ('mnas_hard', {'cost_weight': -1.0, 'cost_target': 1.0}, 'needs cost_weight > 0'),
    ('metric', {'max_cost': -1.0}, 'max_cost must be >= 0'),
    ('anneal', {}, 'unknown objective'),
])
def test_objective_settings_that_cannot_work(kind, kwargs, message):
    with pytest.raises(JaxnasError, match=message):
        fitness_lib.make_objective(kind, 'acc', 'c', available=('acc', 'c'), **kwargs)


@pytest.mark.parametrize('args, message', [
    (['--config.discrete.fitness.objective=tunas', '--config.discrete.fitness.cost=params'],
     'needs cost_weight > 0'),
    (['--config.discrete.fitness.objective=mnas', '--config.discrete.fitness.cost=params',
      '--config.discrete.fitness.cost_weight=0.07', '--config.discrete.fitness.cost_target=0.0'],
     'needs cost_target > 0'),
    (['--config.discrete.fitness.objective=constrained', '--config.discrete.fitness.cost=cost'],
     'cost.model, which is not set'),
    (['--config.discrete.fitness.objective=constrained', '--config.discrete.fitness.cost=cost:abacus'],
     "unknown cost model 'abacus'"),
    (['--config.discrete.fitness.max_cost=5.0'], 'with max_cost needs a cost'),
    (['--config.discrete.fitness.objective=hinge'], 'bad config value discrete.fitness.objective'),
])
def test_cli_bad_cost_objective_one_line_error(tmp_path, capsys, args, message):
    workdir = str(tmp_path / 'bad')
    rc = cli.main(['discrete', '--config', TINY + ':tiny', '--workdir', workdir, '--no-progress'] + args)
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count('\n') == 1 and err.startswith('error: ')
    assert not os.path.exists(workdir)


def toy_config(**changes):
    c = config_lib.load_config(TINY + ':tiny')
    c.discrete.max_evaluations = 40
    c.discrete.batch_size = 4
    for key, value in changes.items():
        config_lib.apply_overrides(c, [(key, value)])
    return c


def toy_fitness(config):
    """Fraction of choices at their last value (accuracy), their sum (cost): the accurate
    candidates are the expensive ones, so a cost limit binds."""
    space = discrete.make_space(config)
    last = np.asarray([s - 1 for s in space.sizes])

    def evaluate(candidates):
        out = []
        for c in candidates:
            v = space.encode(c.genotype, c.hparams)
            out.append({'val_acc': float((v == last).mean()), 'params': float(v.sum())})
        return out
    return fitness_lib.FitnessFunction(evaluate, ('val_acc', 'params'), ())


def _history(workdir):
    return [json.loads(line) for line in open(os.path.join(workdir, 'history.jsonl'))]


def test_rejected_candidates_are_ranked_last_and_never_the_best(tmp_path):
    free = toy_config()
    space = discrete.make_space(free)
    full = float(np.sum(np.asarray(space.sizes) - 1))   # the cost of the most accurate candidate
    target = 0.5 * full
    config = toy_config(**{'discrete.fitness.objective': 'constrained', 'discrete.fitness.cost': 'params',
                           'discrete.fitness.cost_target': target})
    workdir = str(tmp_path / 'constrained')
    summary = discrete.run_discrete(config, workdir, progress=False, fitness=toy_fitness(config))
    h = _history(workdir)
    over = [l for l in h if l['cost']['params'] > target]
    assert over and all(l['rejected'] and np.isnan(l['fitness']) for l in over)
    assert not any(l['rejected'] for l in h if l['cost']['params'] <= target)
    best = json.load(open(os.path.join(workdir, 'best.json')))
    assert best['cost']['params'] <= target and not best['rejected']
    assert best['fitness'] == max(l['fitness'] for l in h if not l['rejected'])
    assert summary['rejected'] == len(over)
    c = summary['cost']
    assert c['metric'] == 'params' and c['model'] is None and c['target'] == c['max_cost'] == target
    assert c['best'] == best['cost']['params'] and c['best_meets_target'] is True and c['rejected'] == len(over)
    assert json.load(open(os.path.join(workdir, 'summary.json')))['cost'] == c

    # max_cost on the accuracy alone: the same limit, the same candidates rejected
    config = toy_config(**{'discrete.fitness.cost': 'params', 'discrete.fitness.max_cost': target})
    again = discrete.run_discrete(config, str(tmp_path / 'max_cost'), progress=False, fitness=toy_fitness(config))
    assert again['cost']['best'] <= target and again['rejected'] == summary['rejected']
    assert [l['rejected'] for l in _history(str(tmp_path / 'max_cost'))] == [l['rejected'] for l in h]


def test_cost_metric_is_the_table_cost_in_the_candidates_own_network(tiny_config):
    tiny_config.cost.model = 'params'
    extra = fitness_lib.make_cost_metrics(tiny_config, ['cost', 'cost:params', 'params', ''])
    assert extra.names == ('cost', 'cost:params') and extra.units == {'cost': 'parameters', 'cost:params': 'parameters'}
    g = spaces.get(tiny_config.space).sample(jax.random.key(3))
    cands = [Candidate(g, {}), Candidate(g, {'channels': 2 * tiny_config.model.channels})]
    results = [{}, {}]
    extra.add(cands, results)
    table = costs.table_for_config(tiny_config, 'params')
    assert results[0]['cost'] == results[0]['cost:params'] == table.genotype_cost(g) > 0
    assert results[1]['cost'] > results[0]['cost']                    # a wider network costs more
    assert fitness_lib.make_cost_metrics(tiny_config, ['params', '']) is None


def test_tabular_run_with_the_table_cost_meets_a_hard_target(tmp_path):
    """A real discrete run (NAS-Bench-201 tabular fitness on the fake benchmark's cells) with
    the genotype's cost from the params cost table: unconstrained, then with a hard target
    below the unconstrained best's cost; the constrained best meets it."""
    def run(name, **changes):
        config = toy_config(**{'space': 'nb201', 'discrete.fitness.mode': 'tabular', 'discrete.searcher': 'evolution',
                               'discrete.tabular.path': FIXTURE, 'discrete.max_evaluations': 8,
                               'discrete.batch_size': 2, 'discrete.evolution.population_size': 2,
                               'discrete.evolution.sample_size': 2, 'cost.model': 'params',
                               'discrete.fitness.cost': 'cost', **changes})
        config.discrete.hparams = type(config.discrete.hparams)()
        config.discrete.cells = FIXTURE_CELLS
        workdir = str(tmp_path / name)
        return config, discrete.run_discrete(config, workdir, progress=False), _history(workdir)

    config, free, h = run('free')
    table = costs.table_for_config(config, 'params')
    for l in h:   # the metric is the table's genotype cost, the same source as the gradient search
        assert l['metrics']['cost'] == l['cost']['cost'] == table.genotype_cost(nb201.from_text(l['genotype']))
    assert {l['genotype'] for l in h} == set(FIXTURE_CELLS)
    free_cost = free['best_metrics']['cost']
    cheaper = [table.genotype_cost(nb201.from_text(g)) for g in FIXTURE_CELLS]
    cheaper = [c for c in cheaper if c < free_cost]
    assert cheaper, 'the fixture\'s most accurate cell should not be its cheapest'
    target = 0.5 * (max(cheaper) + free_cost)
    assert free['cost']['unit'] == 'parameters' and free['cost']['best_meets_target'] is None   # no target

    _, hard, h = run('hard', **{'discrete.fitness.objective': 'constrained', 'discrete.fitness.cost_target': target})
    assert hard['complete'] and hard['best_genotype'] != free['best_genotype']
    assert hard['cost']['best'] <= target < free_cost
    assert hard['cost']['best_meets_target'] is True and hard['cost']['model'] == 'params'
    assert hard['rejected'] == sum(l['cost']['cost'] > target for l in h) > 0
    assert hard['best_fitness'] == max(l['metrics']['val_acc'] for l in h if l['cost']['cost'] <= target)
