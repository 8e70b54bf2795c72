"""`jaxnas compare` end to end on the tiny config: table, CSV, JSON, plots, resume."""
import csv
import json
import os

import pytest

from conftest import make_tiny_config
from jaxnas import cli, compare, config as config_lib


def _config():
    c = make_tiny_config(**{'search.epochs': 1, 'search.hessian_every': 1, 'search.hessian_iters': 2})
    c.compare.relaxations = ('darts', 'gdas')
    c.compare.seeds = (0, 1)
    return c


@pytest.mark.slow
def test_compare_writes_table_and_plots_and_resumes(tmp_path):
    workdir = str(tmp_path / 'study')
    record = compare.run_compare(_config(), workdir, progress=False)
    assert set(record['relaxations']) == {'darts', 'gdas'}
    for name, stats in record['relaxations'].items():
        assert set(stats['genotypes']) == {0, 1}
        assert stats['mode'] == ('single_path' if name == 'gdas' else 'dense')
        assert 0 <= stats['derived_val_acc']['mean'] <= 1 and stats['derived_val_acc']['std'] >= 0
        assert (stats['supernet_val_acc_mixture']['mean'] is None) == (name == 'gdas')   # single path: no mixture
        assert stats['hessian_eigenvalue']['mean'] is not None
        assert stats['step_time_s']['mean'] > 0
    for f in ('compare.md', 'compare.csv', 'compare.json', 'alphas.png', 'eigenvalue.png', 'collapse.png'):
        assert os.path.getsize(os.path.join(workdir, f)) > 0, f
    with open(os.path.join(workdir, 'compare.csv')) as f:
        rows = list(csv.DictReader(f))
    assert [r['relaxation'] for r in rows] == record['ranking'] and sorted(record['ranking']) == ['darts', 'gdas']
    derived = [float(r['derived_val_acc_mean']) for r in rows]
    assert derived == sorted(derived, reverse=True)   # ranked on the one supernet metric
    md = open(os.path.join(workdir, 'compare.md')).read()
    assert '| gdas | single_path |' in md and 'Genotype(normal=' in md
    # rerunning resumes every finished search instead of training again
    again = compare.run_compare(_config(), workdir, progress=False)
    with open(os.path.join(workdir, 'compare.json')) as f:
        assert json.load(f)['relaxations']['darts']['genotypes'] == {
            str(k): v for k, v in again['relaxations']['darts']['genotypes'].items()}
    assert again['relaxations']['gdas']['genotypes'] == record['relaxations']['gdas']['genotypes']


def test_compare_rejects_bad_study_configs():
    c = _config()
    c.compare.relaxations = ('darts', 'enas')
    with pytest.raises(config_lib.ConfigError, match="compare.relaxations=.*element 'enas' is unknown"):
        compare.validate(c)
    c = _config()
    c.compare.kwargs = {'snas': {'tau_max': 2.0}}
    with pytest.raises(config_lib.ConfigError, match="'snas' is not in compare.relaxations"):
        compare.validate(c)


def test_compare_cli_reports_bad_config(capsys):
    assert cli.main(['compare', '--config', os.path.join(os.path.dirname(__file__), '..', 'experiments',
                                                         'tiny.py'), '--config.compare.seeds=()']) == 2
    assert 'compare.seeds' in capsys.readouterr().err
