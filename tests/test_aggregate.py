"""`jaxnas report` (jaxnas.aggregate) on run directories written by hand: grouping, mean ± std,
log metrics, Markdown / CSV / LaTeX, plots, sweeps and studies, one-line errors."""
import csv
import io
import os

import numpy as np
import pytest

from jaxnas import aggregate, cli, runs


def _run(path, relaxation, seed, acc, log_acc, *, kind='search', a_lr=0.3, summary_extra=None, write_log=True):
    config = {'name': 'x', 'seed': seed, 'relaxation': {'name': relaxation, 'kwargs': {}}, 'optim': {'a_lr': a_lr},
              'compare': {'seeds': [0, 1]}}
    runs.write_json(os.path.join(path, 'run.json'), {'kind': kind, 'config': config})
    runs.write_json(os.path.join(path, 'summary.json'), {'derived_val_acc': acc, 'complete': True,
                                                         'cost': {'genotype_cost': 10.0 * acc},
                                                         **(summary_extra or {})})
    if write_log:
        runs.append_jsonl(os.path.join(path, 'log.jsonl'),
                          [{'epoch': e + 1, 'derived_val_acc': v, 'hessian_eigenvalue': None if e % 2 else 1.0}
                           for e, v in enumerate(log_acc)])
    return str(path)


@pytest.fixture
def study(tmp_path, monkeypatch):
    monkeypatch.setenv('JAXNAS_TENSORBOARD', '0')
    root = tmp_path / 'study'
    data = {('darts', 0): (0.5, [0.2, 0.6, 0.4]), ('darts', 1): (0.7, [0.3, 0.5, 0.8]),
            ('gdas', 0): (0.6, [0.1, 0.9, 0.2]), ('gdas', 1): (0.9, [0.4, 0.4, 0.4])}
    for (r, s), (acc, log) in data.items():
        _run(root / f'{r}_seed{s}', r, s, acc, log)
    return str(root), data


def test_groups_by_config_field_with_mean_and_std(study):
    root, data = study
    record = aggregate.build([root], by=['relaxation.name'],
                             metrics=['derived_val_acc', 'cost.genotype_cost', 'log:derived_val_acc:max',
                                      'log:derived_val_acc', 'log:hessian_eigenvalue:mean'])
    assert record['runs'] == 4 and [g['key'] for g in record['groups']] == [{'relaxation.name': 'darts'},
                                                                          {'relaxation.name': 'gdas'}]
    for g in record['groups']:
        name = g['key']['relaxation.name']
        accs = [data[(name, s)][0] for s in (0, 1)]
        st = g['stats']
        assert st['derived_val_acc']['mean'] == pytest.approx(np.mean(accs))
        assert st['derived_val_acc']['std'] == pytest.approx(np.std(accs)) and st['derived_val_acc']['n'] == 2
        assert st['cost.genotype_cost']['mean'] == pytest.approx(10 * np.mean(accs))
        assert st['log:derived_val_acc:max']['mean'] == pytest.approx(np.mean([max(data[(name, s)][1]) for s in (0, 1)]))
        assert st['log:derived_val_acc']['mean'] == pytest.approx(np.mean([data[(name, s)][1][-1] for s in (0, 1)]))
        assert st['log:hessian_eigenvalue:mean']['mean'] == 1.0   # None (epochs without an estimate) left out
    # default grouping: the fields that differ between the runs, the seed apart
    assert aggregate.build([root])['by'] == ['relaxation.name']


def test_tables_in_every_format_and_plots(study, tmp_path):
    root, data = study
    record = aggregate.build([root], by=['relaxation.name'], metrics=['derived_val_acc', 'log:derived_val_acc:max'])
    md = aggregate.render(record, 'md')
    darts = f"{np.mean([0.5, 0.7]):.3f} ± {np.std([0.5, 0.7]):.3f}"
    assert '| relaxation.name | runs | derived_val_acc | log:derived_val_acc:max |' in md
    assert f'| darts | 2 | {darts} |' in md
    rows = list(csv.DictReader(io.StringIO(aggregate.render(record, 'csv'))))
    assert [r['relaxation.name'] for r in rows] == ['darts', 'gdas']
    assert float(rows[1]['derived_val_acc_mean']) == pytest.approx(0.75)
    assert float(rows[1]['derived_val_acc_std']) == pytest.approx(0.15)
    tex = aggregate.render(record, 'latex')
    assert tex.startswith('\\begin{tabular}{lrrr}') and '\\toprule' in tex and '\\bottomrule' in tex
    assert 'relaxation.name & runs & derived\\_val\\_acc & log:derived\\_val\\_acc:max \\\\' in tex
    assert f'darts & 2 & ${np.mean([0.5, 0.7]):.3f} \\pm {np.std([0.5, 0.7]):.3f}$' in tex
    out = str(tmp_path / 'out')
    written = aggregate.write(record, out, plot_metric='log:derived_val_acc')
    written += aggregate.write(record, out, plot_metric='derived_val_acc')
    names = {os.path.basename(p) for p in written}
    assert {'report.md', 'report.csv', 'report.tex', 'report.json', 'report_log_derived_val_acc.png',
            'report_derived_val_acc.png'} <= names
    assert all(os.path.getsize(p) > 0 for p in written)
    assert runs.read_json(os.path.join(out, 'report.json'))['groups'][0]['stats']['derived_val_acc']['values'] == [0.5, 0.7]


def test_latex_escapes_and_missing_values():
    cols = [aggregate.Column('g', 'group_name'), aggregate.Column('m', 'acc %', 2)]
    tex = aggregate.latex(cols, [{'g': 'a&b_c', 'm': aggregate.stat([None])}])
    assert 'a\\&b\\_c & --' in tex and 'group\\_name & acc \\%' in tex
    assert aggregate.fmt(aggregate.stat([])) == 'n/a'
    x, mean, std = aggregate.mean_curve([[1.0, None, 3.0], [3.0, float('nan'), 5.0, 7.0]])
    assert list(x) == [1, 2, 3] and mean[0] == 2.0 and np.isnan(mean[1]) and std[2] == 1.0


def test_sweeps_and_studies_expand_into_their_runs(tmp_path, monkeypatch):
    monkeypatch.setenv('JAXNAS_TENSORBOARD', '0')
    sw = tmp_path / 'sw'
    _run(sw / 'seed=0', 'darts', 0, 0.4, [0.4])
    _run(sw / 'seed=1', 'darts', 1, 0.6, [0.6])
    runs.write_json(str(sw / 'run.json'), {'kind': 'sweep', 'config': {}})
    runs.append_jsonl(str(sw / 'sweep.jsonl'), [
        {'trial': 'seed=0', 'workdir': 'seed=0', 'status': 'done', 'error': None},
        {'trial': 'seed=1', 'workdir': 'seed=1', 'status': 'done', 'error': None},
        {'trial': 'seed=2', 'workdir': 'seed=2', 'status': 'failed', 'error': 'boom'}])
    # a retraining beside it: scores.json with one score per seed
    rt = tmp_path / 'retrain'
    runs.write_json(str(rt / 'run.json'), {'kind': 'retrain', 'config': {'seed': 0, 'relaxation': {'name': 'darts'}}})
    runs.write_json(str(rt / 'scores.json'), {'scores': [{'seed': 0, 'accuracy': 0.8}, {'seed': 1, 'accuracy': 0.9}]})
    found, notes = aggregate.find_runs([str(sw), str(rt), str(sw / 'seed=0')])
    assert sorted(os.path.basename(r.path) for r in found) == ['retrain', 'seed=0', 'seed=1']   # no duplicate
    assert len(notes) == 1 and 'seed=2' in notes[0] and 'boom' in notes[0]
    record = aggregate.build([str(sw), str(rt)], metrics=['scores.*.accuracy', 'derived_val_acc'])
    assert record['by'] == ['kind'] and [g['key']['kind'] for g in record['groups']] == ['retrain', 'search']
    retrain, search = record['groups']
    assert retrain['stats']['scores.*.accuracy']['values'] == [0.8, 0.9]
    assert search['stats']['derived_val_acc']['mean'] == pytest.approx(0.5)
    assert search['stats']['scores.*.accuracy']['n'] == 0
    assert 'seed=2: trial failed (boom), left out' in aggregate.render(record, 'md')


def test_bad_report_requests_are_one_line_errors(study, tmp_path, capsys):
    root, _ = study
    for argv, message in [
            ([str(tmp_path / 'nope')], 'is not a directory'),
            ([str(tmp_path)], 'holds no finished run'),
            ([root, '--by', 'relaxation.nme'], 'no run has that config field; did you mean relaxation.name'),
            ([root, '--metric', 'log:acc:median'], 'bad metric'),
            ([root, '--metric', 'no_such_key'], 'metric no_such_key is in none of the 4 runs'),
            ([root, '--plot', 'derived_val_acc'], '--plot needs --out')]:
        if argv == [str(tmp_path)]:
            (tmp_path / 'empty').mkdir(exist_ok=True)
        assert cli.main(['report'] + argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count('\n') == 1 and message in err, (argv, err)
