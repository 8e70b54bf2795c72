"""Run-directory guards: one process per work directory (lock file), a shared supernet
trained once, corrupt checkpoints passed over, no half-written result files."""
import fcntl
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import ROOT, make_tiny_config
from jaxnas import runs

HOLDER = '''
import sys, time
from jaxnas import runs
{body}
print('held', flush=True)
time.sleep({sleep})
{after}
'''


def _holder(body, sleep=60.0, after=''):
    """A second process that takes a lock (``body``), says so, sleeps, then runs ``after``."""
    code = HOLDER.format(body=body, sleep=sleep, after=after)
    proc = subprocess.Popen([sys.executable, '-c', code], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, 'PYTHONPATH': ROOT})
    assert proc.stdout.readline().strip() == 'held'
    return proc


def _free(directory):
    """Whether nobody holds the lock of ``directory`` (a fresh open file: this process's
    own holds count, as flock locks belong to open files)."""
    fd = os.open(os.path.join(directory, '.lock'), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


CONFIG = {'seed': 0}


def test_a_second_process_is_refused_and_a_dead_holders_lock_is_taken_over(tmp_path, capfd):
    workdir = str(tmp_path / 'run')
    proc = _holder(f'runs.claim({workdir!r}, "search", {CONFIG!r})')
    try:
        with pytest.raises(runs.WorkdirBusyError) as info:
            runs.claim(workdir, 'search', CONFIG)
        message = str(info.value)
        assert '\n' not in message and workdir in message and f'pid {proc.pid}' in message
        assert '--workdir' in message and 'wait for that run to finish' in message
        assert not runs.holds(workdir)
    finally:
        proc.send_signal(signal.SIGKILL)   # dies holding it: the kernel lets go, the file still names it
        proc.wait()
    assert json.load(open(os.path.join(workdir, '.lock')))['pid'] == proc.pid
    capfd.readouterr()

    @runs.releases_locks
    def loop():
        runs.claim(workdir, 'search', CONFIG)
        assert runs.holds(workdir) and not _free(workdir)
        assert json.load(open(os.path.join(workdir, '.lock')))['pid'] == os.getpid()
    loop()
    err = capfd.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith('note: ') and f'pid {proc.pid}' in err
    assert 'no longer running' in err
    # released on return: free, and the file emptied (nothing to take over next time)
    assert not runs.holds(workdir) and _free(workdir)
    assert open(os.path.join(workdir, '.lock')).read() == ''
    loop()
    assert capfd.readouterr().err == ''


def test_nested_and_repeated_claims_in_one_process_are_released_on_return_or_error(tmp_path):
    study, sub = str(tmp_path / 'study'), str(tmp_path / 'study' / 'search')

    @runs.releases_locks
    def inner(directory, kind='search'):
        runs.claim(directory, kind, CONFIG)
        runs.claim(directory, kind, CONFIG)   # a loop claiming its directory twice
        assert runs.holds(directory)

    @runs.releases_locks
    def outer(fail=False):
        runs.claim(study, 'pipeline', CONFIG)
        inner(sub)
        assert not runs.holds(sub) and _free(sub)        # the sub-run let go of its own directory ...
        inner(os.path.join(study, '..', 'study'), 'pipeline')   # ... and may use the held one (same real path)
        assert runs.holds(study) and not _free(study)    # ... which stays held until the outer returns
        if fail:
            raise RuntimeError('boom')
    outer()
    assert not runs.holds(study) and _free(study)
    with pytest.raises(RuntimeError, match='boom'):
        outer(fail=True)
    assert not runs.holds(study) and _free(study)

    # a refused claim (another run's directory) does not keep the lock
    @runs.releases_locks
    def other():
        with runs.locked(study):
            with pytest.raises(runs.RunDirError, match='not a search run'):
                runs.claim(study, 'search', CONFIG)
            assert runs.holds(study)
        assert not runs.holds(study)
    other()
    assert _free(study)


def test_a_directory_whose_lock_file_cannot_be_made_is_still_claimed_with_a_note(tmp_path, monkeypatch, capfd):
    """E.g. a finished run on a read-only disk, read back: claimed unguarded, one note."""
    workdir = str(tmp_path / 'done')
    runs.releases_locks(runs.claim)(workdir, 'search', CONFIG)
    os.remove(os.path.join(workdir, '.lock'))
    real_open = os.open

    def read_only(path, *args, **kwargs):
        if str(path).endswith('.lock'):
            raise OSError(30, 'Read-only file system')
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(os, 'open', read_only)
    capfd.readouterr()
    runs.releases_locks(runs.claim)(workdir, 'search', CONFIG)
    err = capfd.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and workdir in err and 'Read-only file system' in err


def test_weight_sharing_runs_started_together_train_the_supernet_once(tmp_path, monkeypatch, capfd):
    """The second waits for the first (holding the supernet folder) and reuses what it trained."""
    from jaxnas import fitness, search
    epochs = 3
    sconfig = make_tiny_config(**{'search.epochs': epochs})
    trained = []

    @runs.releases_locks
    def fake_search(config, sdir, **kwargs):
        trained.append(sdir)
        runs.claim(sdir, 'search', {'fake': True})
        runs.write_json(os.path.join(sdir, 'summary.json'), {'complete': True, 'by': os.getpid()})
        return {'complete': True}

    class FakeSearcher:
        def __init__(self, config, data):
            pass

        def init_state(self):
            return 'template'

    def fake_restore(directory, template):
        summary = runs.read_json(os.path.join(os.path.dirname(directory), 'summary.json'), default={})
        return (epochs, f"trained by {summary['by']}") if summary else (None, template)

    monkeypatch.setattr(search, 'run_search', fake_search)
    monkeypatch.setattr(search, 'Searcher', FakeSearcher)
    monkeypatch.setattr(runs, 'restore', fake_restore)

    sdir = str(tmp_path / 'supernets' / 'digits_random_path_0123')
    summary_path = os.path.join(sdir, 'summary.json')
    proc = _holder(f'lock = runs.locked({sdir!r})\nlock.__enter__()', sleep=1.0,
                   after=f'runs.write_json({summary_path!r}, {{"complete": True, "by": -1}})\n'
                         'lock.__exit__(None, None, None)')
    summary, reused, state = fitness.shared_supernet(sconfig, sdir, None)
    proc.wait()
    assert proc.returncode == 0
    assert reused and trained == [] and summary['by'] == -1 and state == 'trained by -1'
    err = capfd.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f'waiting for pid {proc.pid}' in err and 'shared supernet' in err
    assert not runs.holds(sdir) and _free(sdir)

    # alone: trains it, under its lock; a later run reuses it
    other = str(tmp_path / 'supernets' / 'other')
    summary, reused, state = fitness.shared_supernet(sconfig, other, None)
    assert not reused and trained == [other] and state == f'trained by {os.getpid()}'
    assert fitness.shared_supernet(sconfig, other, None)[1] and trained == [other]
    assert not runs.holds(other) and _free(other)


def _tree(step):
    return {'w': jnp.arange(600.0).reshape(300, 2) + step, 'step': jnp.asarray(step, jnp.int32)}


def _largest_file(directory):
    files = [p for p in glob.glob(os.path.join(directory, '**', '*'), recursive=True) if os.path.isfile(p)]
    return max(files, key=os.path.getsize)


def _truncate(path):
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])


def test_unreadable_checkpoint_falls_back_to_the_previous_one_then_a_one_line_error(tmp_path, capfd):
    directory = str(tmp_path / 'checkpoints')
    with runs.Checkpointer(directory) as ckpt:
        for step in (1, 2):
            ckpt.save(step, _tree(step))
    _truncate(_largest_file(os.path.join(directory, '2')))
    capfd.readouterr()
    with runs.Checkpointer(directory) as ckpt:
        step, state = ckpt.restore(_tree(0))
        assert step == 1 and np.array_equal(state['w'], _tree(1)['w'])
        err = capfd.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith('warning: ')
        assert os.path.join(directory, '2') in err and '2.corrupt' in err and 'step 1' in err
        assert sorted(os.listdir(directory)) == ['1', '2.corrupt']   # kept for inspection, not deleted
        ckpt.save(2, _tree(2))   # the resumed run saves its step number again
        assert ckpt.latest_step() == 2
    assert runs.restore(directory, _tree(0))[0] == 2
    # none readable: one line naming the directory and the fix; nothing moved
    for step in ('1', '2'):
        os.remove(_largest_file(os.path.join(directory, step)))
    with pytest.raises(runs.CheckpointError) as info:
        runs.restore(directory, _tree(0))
    message = str(info.value)
    assert '\n' not in message and directory in message and 'steps 2, 1' in message
    assert 'start this run again from scratch' in message and '--workdir' in message
    assert sorted(os.listdir(directory)) == ['1', '2', '2.corrupt']


def test_search_with_a_truncated_latest_checkpoint_resumes_from_the_one_before_bit_identically(tmp_path, capfd):
    from jaxnas import search
    config = make_tiny_config()   # 2 epochs: checkpoints 1 and 2
    full, damaged = str(tmp_path / 'full'), str(tmp_path / 'damaged')
    assert search.run_search(config, full, progress=False)['complete']
    shutil.copytree(full, damaged)
    _truncate(_largest_file(os.path.join(damaged, 'checkpoints', '2')))
    capfd.readouterr()
    summary = search.run_search(config, damaged, progress=False)
    warnings = [l for l in capfd.readouterr().err.splitlines() if l.startswith('warning: ')]
    assert len(warnings) == 1 and 'resuming from step 1' in warnings[0]
    assert summary['complete'] and os.path.isdir(os.path.join(damaged, 'checkpoints', '2.corrupt'))
    assert sorted(os.listdir(os.path.join(damaged, 'checkpoints'))) == ['1', '2', '2.corrupt']
    a, b = (ocp.StandardCheckpointer().restore(os.path.join(d, 'checkpoints', '2', 'default')) for d in (full, damaged))
    assert jax.tree.structure(a) == jax.tree.structure(b)
    assert [np.asarray(x).tobytes() for x in jax.tree.leaves(a)] == [np.asarray(x).tobytes() for x in jax.tree.leaves(b)]
    drop = lambda r: {k: v for k, v in r.items() if not k.endswith('_s')}   # wall times differ
    assert [drop(r) for r in runs.read_jsonl(os.path.join(damaged, 'log.jsonl'))] == \
        [drop(r) for r in runs.read_jsonl(os.path.join(full, 'log.jsonl'))]
    assert open(os.path.join(damaged, 'genotype.txt')).read() == open(os.path.join(full, 'genotype.txt')).read()


WRITES = re.compile(r"""\bopen\([^)]*['"][wax]b?\+?['"]|mode\s*=\s*['"][wax]|\.savefig\(|\bjson\.dump\(|"""
                    r"""\bnp\.save(?:z|z_compressed|txt)?\(|\.tofile\(|\bpickle\.dump\(|"""
                    r"""(?<!\bruns)(?<!\bruns_lib)\.write_(?:text|bytes)\(""")


def test_no_result_file_is_written_outside_the_atomic_helpers():
    """Every write in the package goes through jaxnas.runs (write_text/json/bytes, save_figure)."""
    root = os.path.join(ROOT, 'jaxnas')
    offenders = []
    for dirpath, _, files in os.walk(root):
        if os.path.join(root, 'runs') in dirpath:
            continue
        for f in files:
            if f.endswith('.py'):
                path = os.path.join(dirpath, f)
                for i, line in enumerate(open(path), 1):
                    if WRITES.search(line.split('#')[0]):
                        offenders.append(f'{os.path.relpath(path, root)}:{i}: {line.strip()}')
    assert not offenders, offenders
