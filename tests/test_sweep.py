"""`jaxnas sweep`: expansion, the index, retries, resume, local workers and Ray, then `jaxnas report`.

Three real trials in all (tiny searches of one epoch): one in this process, two as Ray
tasks. Retries, failures and interruptions use stand-ins for the trial runner.
"""
import csv
import json
import os
import sys
import textwrap

import pytest

from conftest import ROOT
from jaxnas import cli, runs, sweep
from jaxnas.runs import events

TINY = os.path.join(ROOT, 'experiments', 'tiny.py')


def _sweep_file(tmp_path, body, name='study.py'):
    """A config file: experiments/tiny.py's get_config with its own sweep(add)."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(f"""
        import importlib.util
        _spec = importlib.util.spec_from_file_location('tiny_base', {TINY!r})
        _tiny = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(_tiny)
        get_config = _tiny.get_config
    """) + textwrap.dedent(body))
    return str(path)


def _index(workdir):
    return {r['trial']: r for r in sweep.read_index(workdir)}


# ----------------------------------------------------------------------------- expansion

def test_trials_are_named_from_their_overrides_and_checked():
    _, trials = sweep.expand(TINY)
    assert [t.id for t in trials] == ['seed=0', 'seed=1'] and [t.cli_overrides for t in trials] == [
        ('--config.seed=0',), ('--config.seed=1',)]
    argv = sweep.trial_argv(trials[1], sweep.sweep_options(None), '/w', ['--config.search.epochs=1'])
    assert argv[:5] == ['search', '--config', TINY, '--workdir', os.path.join('/w', 'seed=1')]
    assert argv.index('--config.search.epochs=1') < argv.index('--config.seed=1')   # the trial's own win
    # stable: sorted keys; characters a path cannot hold replaced, and then a hash keeps names apart
    a = sweep.trial_id((('data.data_dir', '/data/a b'), ('seed', 1)))
    b = sweep.trial_id((('data.data_dir', '/data/a_b'), ('seed', 1)))
    assert a != b and '/' not in a + b and ' ' not in a and a == sweep.trial_id((('data.data_dir', '/data/a b'), ('seed', 1)))
    assert len(sweep.trial_id((('optim.a_lr', 0.1),) * 40)) <= 96 and sweep.trial_id(()) == 'base'
    _, compare_trials = sweep.expand(os.path.join(ROOT, 'experiments', 'compare.py'))
    assert [(t.id, t.spec.endswith('compare.py:nb201')) for t in compare_trials] == [('base', False), ('arg=nb201', True)]


@pytest.mark.parametrize('name, count', [('sweep_digits.py', 18), ('sweep_cifar10_darts.py', 27)])
def test_shipped_sweeps_expand_and_every_trial_validates(name, count):
    from jaxnas import config as config_lib
    module, trials = sweep.expand(os.path.join(ROOT, 'experiments', name))
    options = sweep.sweep_options(module)
    assert len(trials) == count == len({t.id for t in trials})
    sweep.check_trials(trials, options, '/tmp/unused', [])
    parser = cli.build_parser()
    for t in trials:   # the command line of the trial gives the config add() asked for
        args, rest = parser.parse_known_args(sweep.trial_argv(t, options, '/w', []))
        config = cli.load_config(args, rest)
        assert [config_lib._get(config, k) for k, _ in t.overrides] == [v for _, v in t.overrides]
    if name == 'sweep_cifar10_darts.py':
        assert options['num_gpus'] == 1 and config.data.name == 'cifar10' and config.model.channels == 16
        assert {(c['optim.a_lr'], c['relaxation.name']) for c in (dict(t.overrides) for t in trials)} >= {(3e-4, 'darts')}


def test_bad_sweeps_are_one_line_errors(tmp_path, capsys):
    no_sweep = tmp_path / 'plain.py'
    no_sweep.write_text('from jaxnas.config import base_config\n\ndef get_config(arg=None):\n    return base_config()\n')
    with pytest.raises(sweep.SweepError, match='has no sweep\\(add\\) function'):
        sweep.expand(str(no_sweep))
    twice = _sweep_file(tmp_path, "def sweep(add):\n    add(seed=1)\n    add(seed=1)\n", 'twice.py')
    with pytest.raises(sweep.SweepError, match='adds trial seed=1 twice'):
        sweep.expand(twice)
    unknown = _sweep_file(tmp_path, "def sweep(add):\n    add(**{'optim.nope': 1})\n", 'unknown.py')
    workdir = str(tmp_path / 'never')
    assert cli.main(['sweep', '--config', unknown, '--workdir', workdir]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count('\n') == 0 and 'sweep trial optim.nope=1' in err and "unknown config field 'optim.nope'" in err
    assert not os.path.exists(workdir)   # checked before anything is written
    assert cli.main(['sweep', '--config', TINY, '--workdir', workdir, '--retries', '-1']) == 2
    assert 'retries' in capsys.readouterr().err and not os.path.exists(workdir)


# ----------------------------------------------------------------------------- retries, failures, resume

def test_failed_trials_are_retried_recorded_and_rerun_alone(tmp_path, monkeypatch, capsys):
    spec = _sweep_file(tmp_path, "def sweep(add):\n    for s in (0, 1, 2):\n        add(seed=s)\n")
    workdir = str(tmp_path / 'sw')
    calls = []

    def flaky(argv):   # seed=0 fails once, seed=1 always
        tid = os.path.basename(argv[argv.index('--workdir') + 1])
        calls.append(tid)
        if tid == 'seed=1' or (tid == 'seed=0' and calls.count(tid) == 1):
            return f'boom in {tid}'
        return None

    monkeypatch.setattr(sweep, 'run_in_process', flaky)
    assert cli.main(['sweep', '--config', spec, '--workdir', workdir, '--no-progress', '--retries', '1']) == 1
    assert calls == ['seed=0', 'seed=0', 'seed=1', 'seed=1', 'seed=2']   # the failure did not stop seed=2
    index = _index(workdir)
    assert {t: (r['status'], r['attempts']) for t, r in index.items()} == {
        'seed=0': ('done', 2), 'seed=1': ('failed', 2), 'seed=2': ('done', 1)}
    assert index['seed=1']['error'] == 'boom in seed=1' and index['seed=0']['error'] is None
    assert index['seed=2']['overrides'] == {'seed': 2} and index['seed=2']['workdir'] == 'seed=2'
    assert 'seed=1 (2 attempts): boom in seed=1' in capsys.readouterr().out
    # rerunning runs only the unfinished trial
    calls.clear()
    monkeypatch.setattr(sweep, 'run_in_process', lambda argv: calls.append(argv) and None)
    assert cli.main(['sweep', '--config', spec, '--workdir', workdir, '--no-progress']) == 0
    assert [os.path.basename(a[a.index('--workdir') + 1]) for a in calls] == ['seed=1']
    assert _index(workdir)['seed=1']['status'] == 'done' and _index(workdir)['seed=1']['attempts'] == 3
    # a different sweep (other base overrides) in the same directory is refused
    assert cli.main(['sweep', '--config', spec, '--workdir', workdir, '--config.search.epochs=1']) == 2
    assert 'different config' in capsys.readouterr().err


def test_interrupted_sweep_resumes_with_the_unfinished_trials(tmp_path, monkeypatch):
    spec = _sweep_file(tmp_path, "def sweep(add):\n    for s in (0, 1, 2):\n        add(seed=s)\n")
    workdir = str(tmp_path / 'sw')
    seen = []

    def interrupted(argv):
        seen.append(os.path.basename(argv[argv.index('--workdir') + 1]))
        if seen[-1] == 'seed=1':
            raise KeyboardInterrupt
        return None

    monkeypatch.setattr(sweep, 'run_in_process', interrupted)
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(spec, workdir, progress=False, say=lambda s: None)
    assert {t: r['status'] for t, r in _index(workdir).items()} == {
        'seed=0': 'done', 'seed=1': 'pending', 'seed=2': 'pending'}
    assert not runs.holds(workdir)   # the sweep's lock is let go
    seen.clear()
    monkeypatch.setattr(sweep, 'run_in_process', lambda argv: seen.append(argv) and None)
    records = sweep.run_sweep(spec, workdir, progress=False, say=lambda s: None)
    assert [os.path.basename(a[a.index('--workdir') + 1]) for a in seen] == ['seed=1', 'seed=2']
    assert [r['status'] for r in records] == ['done'] * 3


FAKE_TRIAL = """
import json, os, sys
argv = sys.argv[1:]
workdir = argv[argv.index('--workdir') + 1]
seed = [a for a in argv if a.startswith('--config.seed=')][0].split('=')[1]
if os.environ.get('FAKE_TRIAL_REAL_SEED') == seed:   # this trial is the real command
    os.execv(sys.executable, [sys.executable, '-m', 'jaxnas.cli'] + argv)
os.makedirs(workdir, exist_ok=True)
marker = os.path.join(workdir, 'attempts')
n = int(open(marker).read()) + 1 if os.path.exists(marker) else 1
open(marker, 'w').write(str(n))
json.dump({'cpus': sorted(os.sched_getaffinity(0)), 'worker': os.environ.get('JAXNAS_SWEEP_WORKER'),
           'pid': os.getpid()}, open(os.path.join(workdir, 'summary.json'), 'w'))
if seed == '1' and n == 1:
    print('error: transient failure', file=sys.stderr)
    sys.exit(2)
if seed == '2':
    print('Traceback (most recent call last):')
    print('ValueError: always broken')
    sys.exit(3)
"""


def test_local_workers_run_subprocesses_on_their_share_of_the_cores(tmp_path, monkeypatch):
    fake = tmp_path / 'fake_trial.py'
    fake.write_text(FAKE_TRIAL)
    monkeypatch.setattr(sweep, 'PYTHON_COMMAND', [sys.executable, str(fake)])
    monkeypatch.delenv('CUDA_VISIBLE_DEVICES', raising=False)
    monkeypatch.setattr(sweep, '_gpus', lambda: [])
    spec = _sweep_file(tmp_path, "def sweep(add):\n    for s in (0, 1, 2, 3):\n        add(seed=s)\n")
    workdir = str(tmp_path / 'sw')
    records = sweep.run_sweep(spec, workdir, progress=False, say=lambda s: None, workers=2, retries=1)
    status = {r['trial']: (r['status'], r['attempts'], r['error']) for r in records}
    assert status == {'seed=0': ('done', 1, None), 'seed=1': ('done', 2, None),
                      'seed=2': ('failed', 2, 'exit status 3: ValueError: always broken'), 'seed=3': ('done', 1, None)}
    assert 'transient failure' in open(os.path.join(workdir, 'logs', 'seed=1.log')).read()
    assert records[0]['results'] == ['seed=0/summary.json']
    used = [json.load(open(os.path.join(workdir, t, 'summary.json'))) for t in status]
    mine = sorted(os.sched_getaffinity(0))
    groups = {u['worker']: tuple(u['cpus']) for u in used}
    assert set(groups) == {'0', '1'} and all(set(g) <= set(mine) and g for g in groups.values())
    if len(mine) >= 2:   # each worker pinned to its own cores
        assert not set(groups['0']) & set(groups['1'])


def test_devices_are_split_between_workers(monkeypatch):
    assert sweep._split(['0', '1', '2', '3', '4'], 2) == [['0', '1', '2'], ['3', '4']]
    assert sweep._split(['0', '1'], 3) == [['0'], ['1'], ['0']]
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '4,5,6,7')
    assert [env['CUDA_VISIBLE_DEVICES'] for env, cpus in sweep.worker_devices(2)] == ['4,5', '6,7']
    assert all(cpus is None for _, cpus in sweep.worker_devices(2))
    monkeypatch.setattr(sweep, '_tpu_host', lambda: True)
    with pytest.raises(sweep.SweepError, match='TPU host'):
        sweep.worker_devices(2)


def test_error_line_of_a_subprocess(tmp_path):
    log = tmp_path / 'x.log'
    log.write_text('epoch 1\nerror: bad config value data.limit=-1: must be >= 0\nmore\n')
    assert sweep.error_line(str(log), 2) == 'exit status 2: bad config value data.limit=-1: must be >= 0'
    log.write_text('Traceback (most recent call last):\n  File "x"\nMemoryError: out of memory\n')
    assert sweep.error_line(str(log), 1) == 'exit status 1: MemoryError: out of memory'
    assert sweep.error_line(str(tmp_path / 'none.log'), 137) == 'exit status 137'


# ----------------------------------------------------------------------------- real trials

def _report_csv(out):
    with open(os.path.join(out, 'report.csv')) as f:
        return list(csv.DictReader(f))


def test_local_sweep_runs_a_tiny_search_then_report(tmp_path, monkeypatch, capsys):
    spec = _sweep_file(tmp_path, "def sweep(add):\n    add(**{'relaxation.name': 'darts'})\n")
    workdir = str(tmp_path / 'sw')
    assert cli.main(['sweep', '--config', spec, '--workdir', workdir, '--no-progress',
                     '--config.search.epochs=1']) == 0
    record = _index(workdir)['relaxation.name=darts']
    trial = os.path.join(workdir, 'relaxation.name=darts')
    summary = runs.read_json(os.path.join(trial, 'summary.json'))
    assert record['status'] == 'done' and record['attempts'] == 1 and summary['complete']
    assert {'relaxation.name=darts/summary.json', 'relaxation.name=darts/tb'} <= set(record['results'])
    events.close(trial)
    log = runs.read_jsonl(os.path.join(trial, 'log.jsonl'))
    tb = events.scalar_series(os.path.join(trial, 'tb'))
    assert tb['derived_val_acc'][1] == pytest.approx(log[0]['derived_val_acc'], rel=1e-6)
    # a finished sweep reruns nothing
    monkeypatch.setattr(sweep, 'run_in_process', lambda argv: pytest.fail('a done trial ran again'))
    assert cli.main(['sweep', '--config', spec, '--workdir', workdir, '--no-progress',
                     '--config.search.epochs=1']) == 0
    capsys.readouterr()
    out = str(tmp_path / 'report')
    assert cli.main(['report', workdir, '--by', 'relaxation.name', '--metric', 'derived_val_acc',
                     '--metric', 'log:train_acc:max', '--plot', 'log:train_acc', '--out', out]) == 0
    printed = capsys.readouterr().out
    assert '| relaxation.name | runs | derived_val_acc | log:train_acc:max |' in printed
    rows = _report_csv(out)
    assert len(rows) == 1 and rows[0]['relaxation.name'] == 'darts' and rows[0]['runs'] == '1'
    assert float(rows[0]['derived_val_acc_mean']) == pytest.approx(summary['derived_val_acc'])
    assert float(rows[0]['derived_val_acc_std']) == 0.0
    assert float(rows[0]['log:train_acc:max_mean']) == pytest.approx(max(r['train_acc'] for r in log))
    assert os.path.getsize(os.path.join(out, 'report_log_train_acc.png')) > 0


@pytest.mark.filterwarnings('ignore:os.fork:RuntimeWarning')   # ray.init starts its processes
def test_ray_executor_runs_trials_as_tasks(tmp_path, monkeypatch):
    """Two Ray tasks: seed=0 a real tiny search (the command line Ray runs), seed=1 the
    stand-in, which fails once and is tried again."""
    ray = pytest.importorskip('ray')
    fake = tmp_path / 'fake_trial.py'
    fake.write_text(FAKE_TRIAL)
    monkeypatch.setattr(sweep, 'PYTHON_COMMAND', [sys.executable, str(fake)])
    monkeypatch.setenv('FAKE_TRIAL_REAL_SEED', '0')
    # the real trial compiles as this test process does, into the same cache
    monkeypatch.setenv('JAX_DISABLE_MOST_OPTIMIZATIONS', 'true')
    monkeypatch.setenv('RAY_AUTH_MODE', 'disabled')
    workdir = str(tmp_path / 'sw')
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        records = sweep.run_sweep(TINY, workdir, base_overrides=['--config.search.epochs=1'], progress=False,
                                  say=lambda s: None, executor='ray', num_cpus=1, retries=1)
    finally:
        ray.shutdown()
    assert [(r['trial'], r['status'], r['attempts']) for r in records] == [('seed=0', 'done', 1), ('seed=1', 'done', 2)]
    summary = runs.read_json(os.path.join(workdir, 'seed=0', 'summary.json'))
    assert summary['seed'] == 0 and summary['complete'] and summary['epochs'] == 1
    assert os.listdir(os.path.join(workdir, 'seed=0', 'tb'))
    assert 'transient failure' in open(os.path.join(workdir, 'logs', 'seed=1.log')).read()
