"""``jaxnas pareto``: the non-dominated front, seeded random genotypes, and a tiny study
whose constrained search meets its target."""
import json
import os

import numpy as np
import pytest

from jaxnas import cli, config as config_lib, pareto, spaces

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_front_is_non_dominated():
    rng = np.random.default_rng(0)
    points = [{'cost': float(c), 'acc': float(a)} for c, a in rng.uniform(size=(40, 2))]
    front = pareto.pareto_front(points)
    assert front and [points[i]['cost'] for i in front] == sorted(points[i]['cost'] for i in front)
    for i, p in enumerate(points):
        dominated = any(q['cost'] <= p['cost'] and q['acc'] >= p['acc'] and q is not p
                        and (q['cost'] < p['cost'] or q['acc'] > p['acc']) for q in points)
        assert (i in front) == (not dominated)
    # along the front, accuracy rises with cost
    accs = [points[i]['acc'] for i in front]
    assert accs == sorted(accs)


def test_random_genotypes_distinct_and_seeded():
    space = spaces.get('nb201')
    a = pareto.random_genotypes(space, 0, 10)
    assert len({str(g) for g in a}) == 10
    assert [str(g) for g in a] == [str(g) for g in pareto.random_genotypes(space, 0, 10)]
    assert [str(g) for g in a] != [str(g) for g in pareto.random_genotypes(space, 1, 10)]


def _config(arg):
    return config_lib.load_config(os.path.join(ROOT, 'experiments', f'cost_pareto.py:{arg}'))


def test_bad_study_configs_are_one_line(tmp_path, capsys):
    base = ['pareto', '--config', os.path.join(ROOT, 'experiments', 'cost_pareto.py:tiny'),
            '--workdir', str(tmp_path / 'w'), '--no-progress']
    for override, what in (('--config.pareto.targets=()', 'pareto.targets'), ('--config.cost.weight=0', 'cost.weight'),
                           ("--config.cost.model=''", 'cost.model')):
        assert cli.main(base + [override]) == 2
        err = capsys.readouterr().err.strip()
        assert what in err and len(err.splitlines()) == 1
    assert not os.path.exists(tmp_path / 'w')


@pytest.mark.slow
def test_tiny_study_meets_its_target(tmp_path):
    config = _config('tiny')
    config.pareto.random_archs = 2
    record = pareto.run_pareto(config, str(tmp_path), progress=False)
    searched = [p for p in record['points'] if p['kind'] == 'searched']
    free, bound = searched
    assert free['target'] is None and bound['target'] == pytest.approx(0.5 * record['free_cost'])
    assert bound['meets_target'] and bound['cost'] <= bound['target'] < free['cost']
    assert record['all_targets_met'] and len(record['points']) == 4 and record['front']
    for name in ('pareto.json', 'pareto.md', 'pareto.png'):
        assert os.path.getsize(tmp_path / name) > 0
    assert json.load(open(tmp_path / 'pareto.json'))['unit'] == record['unit']
    # rerun: the searches resume complete and the scores are deterministic
    again = pareto.run_pareto(config, str(tmp_path), progress=False)
    assert [(p['cost'], p['acc']) for p in again['points']] == [(p['cost'], p['acc']) for p in record['points']]
