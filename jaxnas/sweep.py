"""``jaxnas sweep``: a config file's ``sweep(add)`` run as trials, each a normal run directory.

    jaxnas sweep --config experiments/sweep_digits.py [--executor local|ray] [--workers N]
                 [--retries K] [--command search] [--config.FIELD=VALUE ...]

The file's ``sweep(add)`` calls ``add(**{'relaxation.name': 'gdas', 'seed': 1})`` once per
trial (big_vision's convention; the key ``arg`` picks the file's ``get_config(arg)``
variant instead of the ``:ARG`` of ``--config``). A trial is the command
``jaxnas <command> --config FILE[:ARG] --workdir SWEEP/<trial> --config.KEY=VALUE ...``:
the base overrides of the sweep's own command line first, then the trial's. Its work
directory is named from its overrides (keys sorted, ``key=value`` joined by ``,``;
characters other than letters, digits and ``._=,+-`` replaced, with a hash of the
overrides appended then or past 96 characters), so it stays the same when the sweep is
rerun or grows. Every trial is checked (its overrides, their command-line form, the
command's validation) before anything is written or run.

The sweep's work directory (default ``runs/<config.name>_sweep``) holds ``run.json``
(kind ``sweep``: the base config, the command and its arguments; a different sweep there
is refused), the trial directories, ``logs/<trial>.log`` (output of trials run in
subprocesses) and the index ``sweep.jsonl``: one line per trial with its id, overrides,
status (``pending``, ``running``, ``done``, ``failed``), attempts, error line, work
directory and result paths, rewritten atomically at every change.

Rerunning the sweep runs the trials that are not ``done`` (a trial left ``running`` by an
interruption resumes from its own last checkpoint). A trial that fails is tried again up
to ``retries`` more times in this call, then recorded as ``failed`` with its one-line
error; the other trials go on. The exit status is 1 if any trial failed.

Executors:

- ``local``, one worker (default): the trials one after another in this process (the
  compilation cache and the loaded modules are shared);
- ``local`` with ``--workers N``: up to N trials at once, each a subprocess
  ``python -m jaxnas.cli ...``, with the devices split between the workers: the GPUs
  (``CUDA_VISIBLE_DEVICES``, or ``nvidia-smi -L``) in contiguous groups through
  ``CUDA_VISIBLE_DEVICES``; on CPU the cores this process may use, in contiguous groups
  through the CPU affinity of each subprocess (XLA:CPU sizes its thread pool by it), and
  ``XLA_FLAGS`` passed unchanged. A TPU host is refused (its chips are not shared between
  processes: use one worker, or Ray on a pod);
- ``ray``: each trial a Ray task (``num_cpus``, ``num_gpus``, custom ``resources``)
  running the same subprocess; Ray sets each task's ``CUDA_VISIBLE_DEVICES``.
  ``--ray-address`` joins a running cluster (whose nodes see this work directory and
  this Python environment at the same paths), else a local Ray is started. Needs the
  ``[ray]`` extra.

Sweep options (``command``, ``retries``, ``workers``, ``executor``, ``num_cpus``,
``num_gpus``, ``resources``, ``command_args``) may be given in the file as a dict
``SWEEP``; the command line wins. They are not config fields: a config field would be
part of every trial's ``run.json``, and changing the retry count would then refuse to
resume the trials.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from typing import Callable, List, NamedTuple, Optional, Sequence

from jaxnas import runs
from jaxnas.errors import JaxnasError, one_line

INDEX = 'sweep.jsonl'
LOGS = 'logs'
STATUSES = ('pending', 'running', 'done', 'failed')
OPTIONS = {'command': 'search', 'retries': 1, 'workers': 1, 'executor': 'local', 'num_cpus': 1.0,
           'num_gpus': 0.0, 'resources': {}, 'command_args': ''}
EXECUTORS = ('local', 'ray')
NOT_TRIALS = ('sweep', 'report')                 # commands a trial cannot be
RESULT_FILES = ('summary.json', 'genotype.txt', 'genotype.json', 'scores.json', 'report.md', 'log.jsonl',
                'history.jsonl', 'tb')
# How a subprocess trial starts; its arguments follow (tests replace it by a stand-in).
PYTHON_COMMAND = [sys.executable, '-m', 'jaxnas.cli']
_MAX_NAME = 96


class SweepError(JaxnasError):
    """A sweep that cannot be expanded or run (one line)."""


class Trial(NamedTuple):
    """One trial: its id (directory name), overrides (sorted ``(key, value)``, the config
    variant ``arg`` apart), config spec ``FILE[:ARG]`` and overrides as command-line text."""
    id: str
    overrides: tuple
    arg: Optional[str]
    spec: str
    cli_overrides: tuple


# ----------------------------------------------------------------------------------------
# Expansion
# ----------------------------------------------------------------------------------------

def load_module(path: str):
    """The Python module of config file ``path`` (:func:`jaxnas.config.load_module`, its
    one-line errors as :class:`SweepError`)."""
    from jaxnas import config as config_lib
    return config_lib.load_module(path, error=SweepError)


def _text(value) -> str:
    from jaxnas import config as config_lib
    return config_lib._cli_form(value)


def trial_id(overrides: Sequence, arg: Optional[str] = None) -> str:
    """The directory name of a trial (see the module docstring); ``'base'`` for none."""
    parts = ([f'arg={arg}'] if arg is not None else []) + [f'{k}={_text(v)}' for k, v in overrides]
    if not parts:
        return 'base'
    raw = ','.join(parts)
    safe = re.sub(r'[^A-Za-z0-9._=,+-]', '_', raw)
    if safe != raw or len(safe) > _MAX_NAME or safe.startswith(('.', '-')):
        digest = hashlib.sha1(json.dumps([arg, [[k, runs.rundir._plain(v)] for k, v in overrides]],
                                         sort_keys=True).encode()).hexdigest()[:8]
        safe = safe[:_MAX_NAME - 9].lstrip('.-') + '-' + digest
    return safe


def expand(spec: str) -> tuple:
    """``(module, trials)`` of config file ``spec`` = ``FILE[:ARG]``: its ``sweep(add)``
    called, each ``add(**overrides)`` one :class:`Trial` (unchecked: :func:`check_trials`)."""
    path, _, spec_arg = spec.partition(':')
    module = load_module(path)
    sweep_fn = getattr(module, 'sweep', None)
    if not callable(sweep_fn):
        raise SweepError(f'config file {path} has no sweep(add) function; define one that calls '
                         "add(**{'FIELD': value}) per trial (see experiments/sweep_digits.py)")
    added = []

    def add(*args, **overrides):
        if args:
            raise SweepError(f'sweep(add) in {path}: add() takes keyword arguments only, '
                             "e.g. add(**{'relaxation.name': 'gdas'})")
        added.append(overrides)

    try:
        sweep_fn(add)
    except JaxnasError:
        raise
    except Exception as e:  # the user's code
        raise SweepError(f'sweep(add) in {path} raised {type(e).__name__}: {one_line(e)}') from None
    if not added:
        raise SweepError(f'sweep(add) in {path} added no trial; call add(...) at least once')
    trials, seen = [], {}
    for overrides in added:
        own_arg = 'arg' in overrides   # the trial's own variant, else the one of --config FILE:ARG
        arg = overrides.pop('arg') if own_arg else spec_arg
        arg = None if arg in (None, '') else str(arg)
        items = tuple(sorted(overrides.items()))
        tid = trial_id(items, arg if own_arg else None)
        if tid in seen:
            raise SweepError(f'sweep(add) in {path} adds trial {tid} twice; make every add() different')
        seen[tid] = True
        trials.append(Trial(tid, items, arg, path + (f':{arg}' if arg else ''),
                            tuple(f'--config.{k}={_text(v)}' for k, v in items)))
    return module, trials


def sweep_options(module, **given) -> dict:
    """:data:`OPTIONS` updated by the file's ``SWEEP`` dict, then by the ``given`` values not None."""
    options = dict(OPTIONS)
    extra = getattr(module, 'SWEEP', {}) or {}
    if not isinstance(extra, dict):
        raise SweepError(f'SWEEP in the config file is a {type(extra).__name__}; make it a dict of '
                         f"{', '.join(OPTIONS)}")
    unknown = [k for k in extra if k not in OPTIONS]
    if unknown:
        raise SweepError(f"unknown sweep option {unknown[0]!r} in the config file's SWEEP; options: "
                         f"{', '.join(OPTIONS)}")
    options.update(extra)
    options.update({k: v for k, v in given.items() if v is not None})
    if options['executor'] not in EXECUTORS:
        raise SweepError(f"unknown executor {options['executor']!r}; use one of {', '.join(EXECUTORS)}")
    for key, low in (('retries', 0), ('workers', 1)):
        if not isinstance(options[key], int) or isinstance(options[key], bool) or options[key] < low:
            raise SweepError(f'bad sweep option {key}={options[key]!r}: must be an integer >= {low}')
    for key in ('num_cpus', 'num_gpus'):
        if not isinstance(options[key], (int, float)) or options[key] < 0:
            raise SweepError(f'bad sweep option {key}={options[key]!r}: must be a number >= 0')
    if not isinstance(options['resources'], dict):
        raise SweepError(f"bad sweep option resources={options['resources']!r}: must be a dict, "
                         'e.g. {"TPU": 4}')
    if options['command'] in NOT_TRIALS:
        raise SweepError(f"a sweep trial cannot be the {options['command']} command; pick search, retrain, ...")
    return options


def trial_argv(trial: Trial, options: dict, workdir: str, base_overrides: Sequence[str]) -> list:
    """The ``jaxnas`` arguments of a trial (after ``jaxnas`` / ``python -m jaxnas.cli``)."""
    path, colon, arg = trial.spec.partition(':')   # absolute: a Ray worker may start elsewhere
    return ([options['command'], '--config', os.path.abspath(path) + colon + arg,
             '--workdir', os.path.join(os.path.abspath(workdir), trial.id),
             '--no-progress', *base_overrides, *trial.cli_overrides] + shlex.split(options['command_args']))


def check_trials(trials: List[Trial], options: dict, workdir: str, base_overrides: Sequence[str]) -> None:
    """Each trial's command line parses, its config loads with the overrides (the values
    as Python objects and as command-line text giving the same config) and passes the
    command's checks; else a :class:`SweepError` naming the trial."""
    from jaxnas import cli, config as config_lib
    parser = cli.build_parser()
    for trial in trials:
        try:
            args, rest = parser.parse_known_args(trial_argv(trial, options, workdir, base_overrides))
            bad = [a for a in rest if not a.startswith('--config.')]
            if bad:
                raise JaxnasError(f"unknown option {bad[0]} of jaxnas {options['command']} (command_args)")
            config = cli.load_config(args, rest)
            direct = config_lib.apply_overrides(
                config_lib.apply_overrides(config_lib.load_config(trial.spec),
                                           config_lib.parse_overrides(base_overrides)), trial.overrides)
            if config.to_json_best_effort(sort_keys=True) != direct.to_json_best_effort(sort_keys=True):
                raise JaxnasError(f"the overrides {' '.join(trial.cli_overrides)} do not give the values of "
                                  'add(...) when read from the command line; use plain numbers, strings and tuples')
            config_lib.check_shared(config)
            module = sys.modules.get(getattr(args.run, '__module__', ''), None)
            getattr(module, 'validate', config_lib.validate)(config)
        except JaxnasError as e:
            raise SweepError(f'sweep trial {trial.id}: {one_line(e)}') from None


# ----------------------------------------------------------------------------------------
# The index
# ----------------------------------------------------------------------------------------

def _index_path(workdir: str) -> str:
    return os.path.join(workdir, INDEX)


def read_index(workdir: str) -> list:
    """The records of a sweep's ``sweep.jsonl`` (``[]`` if none)."""
    return runs.read_jsonl(_index_path(workdir))


def _write_index(workdir: str, records: list) -> None:
    runs.write_text(_index_path(workdir), ''.join(json.dumps(r) + '\n' for r in records))


def _new_record(trial: Trial, command: str) -> dict:
    overrides = {k: runs.rundir._plain(v) for k, v in trial.overrides}
    if trial.arg is not None:
        overrides = {'arg': trial.arg, **overrides}
    return {'trial': trial.id, 'overrides': overrides, 'command': command, 'status': 'pending', 'attempts': 0,
            'error': None, 'workdir': trial.id, 'results': [], 'seconds': None}


def _results(workdir: str, trial_dir: str) -> list:
    return [os.path.join(trial_dir, f) for f in RESULT_FILES if os.path.exists(os.path.join(workdir, trial_dir, f))]


# ----------------------------------------------------------------------------------------
# Running one trial
# ----------------------------------------------------------------------------------------

def run_in_process(argv: list) -> Optional[str]:
    """Run ``jaxnas ARGV`` in this process: None on success, else its one-line error."""
    from jaxnas import cli
    try:
        args, rest = cli.build_parser().parse_known_args(argv)
        rc = args.run(args, rest)
    except JaxnasError as e:
        return one_line(e)
    except Exception as e:  # a crash of the trial is the trial's failure, not the sweep's
        return f'{type(e).__name__}: {one_line(e)}'
    return None if rc == 0 else f'exit status {rc}'


def error_line(log_path: str, rc: int) -> str:
    """The one-line error of a subprocess that exited ``rc``: the last ``error:`` line of
    its log, else the log's last line (a traceback's exception), after ``exit status rc``."""
    try:
        with open(log_path, errors='replace') as f:
            lines = [line.strip() for line in f.read().splitlines() if line.strip()]
    except OSError:
        lines = []
    errors = [line[len('error:'):].strip() for line in lines if line.startswith('error:')]
    last = errors[-1] if errors else (lines[-1] if lines else '')
    return f'exit status {rc}' + (f': {last}' if last else '')


def _popen(argv: list, log_path: str, env: Optional[dict] = None, cpus: Optional[list] = None,
           command: Optional[list] = None, cwd: Optional[str] = None):
    command = list(command or PYTHON_COMMAND)
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    log = runs.open_stream(log_path)
    log.write(f"\n$ {shlex.join(command + argv)}\n".encode())
    log.flush()
    full_env = dict(os.environ, **(env or {}))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    full_env['PYTHONPATH'] = os.pathsep.join(p for p in (root, full_env.get('PYTHONPATH')) if p)
    setaffinity = (lambda: os.sched_setaffinity(0, cpus)) if cpus and hasattr(os, 'sched_setaffinity') else None
    try:
        return subprocess.Popen(command + argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=full_env, preexec_fn=setaffinity, cwd=cwd), log
    except BaseException:
        log.close()
        raise


def run_subprocess(argv: list, log_path: str, env: Optional[dict] = None, cpus: Optional[list] = None,
                   command: Optional[list] = None, cwd: Optional[str] = None) -> Optional[str]:
    """Run a trial as a subprocess ``command + argv`` (default :data:`PYTHON_COMMAND`; output
    appended to ``log_path``; in ``cwd``): None or its error line."""
    proc, log = _popen(argv, log_path, env, cpus, command, cwd)
    try:
        rc = proc.wait()
    finally:
        log.close()
    return None if rc == 0 else error_line(log_path, rc)


def _tpu_host() -> bool:
    import glob
    return bool(glob.glob('/dev/accel[0-9]*') or glob.glob('/dev/vfio/[0-9]*'))


def _gpus() -> list:
    visible = os.environ.get('CUDA_VISIBLE_DEVICES')
    if visible is not None:
        return [d.strip() for d in visible.split(',') if d.strip() and d.strip() != '-1']
    smi = shutil.which('nvidia-smi')
    if not smi:
        return []
    try:
        out = subprocess.run([smi, '-L'], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(l for l in out.splitlines() if l.startswith('GPU '))]


def _split(items: list, n: int) -> list:
    """``items`` in ``n`` contiguous groups (sizes differing by at most one); when there
    are fewer items than groups, group ``w`` gets item ``w mod len(items)``."""
    if len(items) < n:
        return [[items[w % len(items)]] if items else [] for w in range(n)]
    k, r = divmod(len(items), n)
    out, at = [], 0
    for w in range(n):
        size = k + (w < r)
        out.append(items[at:at + size])
        at += size
    return out


def worker_devices(workers: int) -> list:
    """Per local worker ``(env, cpus)``: the environment it adds and the CPU cores it is
    pinned to (None: not pinned); see the module docstring."""
    if workers > 1 and _tpu_host():
        raise SweepError(f'--workers {workers} on a TPU host: its chips cannot be shared by processes; '
                         'use --workers 1 (each trial then uses every chip) or --executor ray')
    gpus = _gpus()
    if gpus:
        return [({'CUDA_VISIBLE_DEVICES': ','.join(g), 'JAXNAS_SWEEP_WORKER': str(w)}, None)
                for w, g in enumerate(_split(gpus, workers))]
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else []
    groups = _split(cores, workers) if cores else [None] * workers
    return [({'JAXNAS_SWEEP_WORKER': str(w)}, g) for w, g in enumerate(groups)]


# ----------------------------------------------------------------------------------------
# The sweep
# ----------------------------------------------------------------------------------------

class _Book:
    """The index in memory, written through at every change."""

    def __init__(self, workdir: str, trials: List[Trial], command: str):
        self.workdir = workdir
        old = {r['trial']: r for r in read_index(workdir)}
        self.records = {}
        for t in trials:
            r = old.pop(t.id, None) or _new_record(t, command)
            if r['status'] == 'running':   # interrupted: resumes from its checkpoint
                r['status'] = 'pending'
            self.records[t.id] = r
        self.others = list(old.values())   # trials no longer in the sweep: kept as they were
        self.write()

    def write(self) -> None:
        _write_index(self.workdir, list(self.records.values()) + self.others)

    def start(self, tid: str) -> None:
        r = self.records[tid]
        r.update(status='running', attempts=r['attempts'] + 1)
        self.write()

    def finish(self, tid: str, error: Optional[str], seconds: float, final: bool) -> None:
        r = self.records[tid]
        status = 'done' if error is None else ('failed' if final else 'pending')
        r.update(status=status, error=error, seconds=round(seconds, 2), results=_results(self.workdir, r['workdir']))
        self.write()


@runs.releases_locks
def run_sweep(spec: str, workdir: str, *, base_overrides: Sequence[str] = (), progress: bool = True,
              say: Callable[[str], None] = print, ray_address: Optional[str] = None, ray_init: Optional[dict] = None,
              **options) -> list:
    """Run (or resume) the sweep of config file ``spec`` in ``workdir``; returns the index
    records of its trials. ``options`` override :func:`sweep_options` (None: unset);
    ``ray_init`` are extra ``ray.init`` arguments for a local Ray."""
    from jaxnas import config as config_lib
    module, trials = expand(spec)
    options = sweep_options(module, **options)
    base_overrides = list(base_overrides)
    base = config_lib.apply_overrides(config_lib.load_config(spec), config_lib.parse_overrides(base_overrides))
    check_trials(trials, options, workdir, base_overrides)
    devices = worker_devices(options['workers']) if options['executor'] == 'local' and options['workers'] > 1 else None
    runs.claim(workdir, 'sweep', base, command=options['command'], command_args=options['command_args'],
               overrides=base_overrides)
    book = _Book(workdir, trials, options['command'])
    todo = [t for t in trials if book.records[t.id]['status'] != 'done']
    from tqdm.auto import tqdm
    bar = tqdm(total=len(trials), initial=len(trials) - len(todo), unit='trial', disable=not progress,
               dynamic_ncols=True, desc='sweep')
    argv = {t.id: trial_argv(t, options, workdir, base_overrides) for t in trials}
    logs = {t.id: os.path.join(workdir, LOGS, f'{t.id}.log') for t in trials}
    try:
        if options['executor'] == 'ray':
            _run_ray(todo, argv, logs, book, options, bar, ray_address, ray_init or {})
        elif devices is None:
            _run_here(todo, argv, book, options, bar)
        else:
            _run_workers(todo, argv, logs, book, options, bar, devices)
    finally:
        bar.close()
    records = [book.records[t.id] for t in trials]
    failed = [r for r in records if r['status'] == 'failed']
    say(f"sweep {workdir}: {len(records) - len(failed)} of {len(records)} trials done"
        + (f", {len(failed)} failed:" if failed else ''))
    for r in failed:
        say(f"  {r['trial']} ({r['attempts']} attempts): {r['error']}")
    return records


def _finish(book, bar, tid, error, seconds, tries_left) -> bool:
    """Record a trial's attempt; True when it is to be tried again."""
    again = error is not None and tries_left > 0
    book.finish(tid, error, seconds, final=not again)
    if again:
        bar.write(f'trial {tid} failed ({error}); trying again')
    elif error is not None:
        bar.write(f'trial {tid} failed: {error}')
    else:
        bar.update(1)
    return again


def _run_here(todo, argv, book, options, bar) -> None:
    for trial in todo:
        tries = options['retries'] + 1
        while tries:
            tries -= 1
            book.start(trial.id)
            bar.set_postfix_str(trial.id)
            t0 = time.time()
            try:
                error = run_in_process(argv[trial.id])
            except BaseException:   # KeyboardInterrupt: left pending, resumed by the next call
                book.finish(trial.id, 'interrupted', time.time() - t0, final=False)
                raise
            if not _finish(book, bar, trial.id, error, time.time() - t0, tries):
                break


def _run_workers(todo, argv, logs, book, options, bar, devices) -> None:
    queue = [(t.id, options['retries'] + 1) for t in todo]
    free = list(range(len(devices)))
    running = {}   # worker -> (tid, tries left, proc, log file, t0)
    try:
        while queue or running:
            while queue and free:
                w = free.pop(0)
                tid, tries = queue.pop(0)
                env, cpus = devices[w]
                book.start(tid)
                proc, log = _popen(argv[tid], logs[tid], env, cpus)
                running[w] = (tid, tries - 1, proc, log, time.time())
            time.sleep(0.2)
            for w, (tid, tries, proc, log, t0) in list(running.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                log.close()
                del running[w]
                free.append(w)
                error = None if rc == 0 else error_line(logs[tid], rc)
                if _finish(book, bar, tid, error, time.time() - t0, tries):
                    queue.append((tid, tries))
    except BaseException:
        for tid, _, proc, log, t0 in running.values():
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
            book.finish(tid, 'interrupted', time.time() - t0, final=False)
        raise


def _ray_task(command: list, argv: list, log_path: str, cwd: str) -> Optional[str]:
    """A Ray task: one trial as a subprocess in the driver's directory (Ray has set
    ``CUDA_VISIBLE_DEVICES``)."""
    return run_subprocess(argv, log_path, command=command, cwd=cwd if os.path.isdir(cwd) else None)


def _run_ray(todo, argv, logs, book, options, bar, address, init_kwargs) -> None:
    try:
        import ray
    except ImportError:
        raise SweepError("--executor ray needs Ray: pip install -e '.[ray]'") from None
    started = not ray.is_initialized()
    if started:
        kwargs = {'include_dashboard': False, 'log_to_driver': False, **init_kwargs}
        ray.init(address=address, **kwargs) if address else ray.init(**kwargs)
    request = {'num_cpus': options['num_cpus'], 'num_gpus': options['num_gpus']}
    if options['resources']:
        request['resources'] = dict(options['resources'])
    remote = ray.remote(max_retries=0)(_ray_task).options(**request)
    pending = {}
    try:
        def submit(tid, tries):
            book.start(tid)
            ref = remote.remote(list(PYTHON_COMMAND), argv[tid], os.path.abspath(logs[tid]), os.getcwd())
            pending[ref] = (tid, tries - 1, time.time())

        for t in todo:
            submit(t.id, options['retries'] + 1)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                tid, tries, t0 = pending.pop(ref)
                try:
                    error = ray.get(ref)
                except Exception as e:   # the task itself died (worker lost, ...)
                    error = f'ray task failed: {type(e).__name__}: {one_line(e)}'
                if _finish(book, bar, tid, error, time.time() - t0, tries):
                    submit(tid, tries)
    except BaseException:
        for ref, (tid, _, t0) in pending.items():
            ray.cancel(ref, force=True)
            book.finish(tid, 'interrupted', time.time() - t0, final=False)
        raise
    finally:
        if started:
            ray.shutdown()


# ----------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------

def _command(args, overrides) -> int:
    from jaxnas import cli, config as config_lib
    if not args.config:
        raise SweepError('jaxnas sweep needs --config experiments/FILE.py[:ARG] with a sweep(add) function')
    resources = None
    if args.resources is not None:
        try:
            resources = json.loads(args.resources)
        except json.JSONDecodeError as e:
            raise SweepError(f'--resources {args.resources!r} is not JSON ({e}); e.g. --resources \'{{"TPU": 4}}\'') from None
    base = config_lib.apply_overrides(config_lib.load_config(args.config), config_lib.parse_overrides(overrides))
    workdir = args.workdir or os.path.join('runs', f'{base.name}_sweep')
    cli.check_workdir(workdir)
    records = run_sweep(args.config, workdir, base_overrides=overrides, progress=not args.no_progress,
                        ray_address=args.ray_address, command=args.trial_command, retries=args.retries,
                        workers=args.workers, executor=args.executor, num_cpus=args.num_cpus,
                        num_gpus=args.num_gpus, resources=resources, command_args=args.command_args)
    print(f'index: {os.path.join(workdir, INDEX)}; tables: jaxnas report {workdir} --by FIELD')
    return 1 if any(r['status'] == 'failed' for r in records) else 0


def register(subparsers) -> None:
    """``jaxnas sweep``: a config file's ``sweep(add)`` as resumable trials."""
    from jaxnas import cli
    p = cli.add_command(subparsers, 'sweep', _command, help="run a config file's sweep(add) as trials",
                        description="Expand the config file's sweep(add) into trials, each a normal run "
                        'directory under the work directory, indexed in sweep.jsonl; rerunning runs the '
                        'unfinished ones. --config.FIELD=VALUE overrides apply to every trial.',
                        default_config='none: required')
    p.add_argument('--command', dest='trial_command', default=None, help="the jaxnas command of every trial (default: the file's "
                   "SWEEP['command'] or search)")
    p.add_argument('--command-args', default=None, help='more arguments of that command, one string, '
                   "e.g. --command-args='--genotype DARTS_V2'")
    p.add_argument('--executor', default=None, choices=EXECUTORS, help='local (default) or ray')
    p.add_argument('--workers', type=int, default=None, help='local: trials at once, each a subprocess '
                   'with its share of the devices (default 1: in this process, one after another)')
    p.add_argument('--retries', type=int, default=None, help='tries after a failure before a trial is '
                   'recorded as failed (default 1)')
    p.add_argument('--ray-address', default=None, help='ray: join this cluster (default: a local Ray)')
    p.add_argument('--num-cpus', type=float, default=None, help='ray: CPUs per trial (default 1)')
    p.add_argument('--num-gpus', type=float, default=None, help='ray: GPUs per trial (default 0)')
    p.add_argument('--resources', default=None, help='ray: custom resources per trial, JSON, e.g. \'{"TPU": 4}\'')
