"""The run directory: one identity file, atomic JSON, append-only JSONL logs.

Every command writes into one work directory and marks it as its own with
``run.json`` (:data:`IDENTITY`): ``{"kind": ..., "config": ..., ...}``. Rerunning the same
command with the same config resumes; a different kind or config is refused with one
line naming the directory and the fix, so results are never mixed or overwritten.

A directory is used by one process at a time: :func:`claim` takes its lock file
(``.lock``, :mod:`jaxnas.runs.lock`) and refuses a directory a live process holds.

Writes never leave a half-written file behind: JSON, text, binary files and figures
(:func:`write_json`, :func:`write_text`, :func:`write_bytes`, :func:`save_figure`) go to a
temporary file in the same directory, flushed to disk and then renamed over the target
(``os.replace`` is atomic on POSIX); a JSONL log is only appended to, and after a
checkpoint restore the lines of epochs (steps, evaluations) beyond it are dropped by
rewriting the file the same atomic way. A last line cut short by a crash during an
append is dropped too.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from typing import Any, Iterable, Optional

from jaxnas.errors import JaxnasError
from jaxnas.runs import lock
from jaxnas.runs.lock import WorkdirBusyError, releases_locks  # noqa: F401 (re-exported)

IDENTITY = 'run.json'
LOG = 'log.jsonl'   # the per-epoch log, mirrored as TensorBoard events (jaxnas.runs.events)
# Identity files of earlier jaxnas versions (search / discrete: the config; pipeline).
LEGACY_IDENTITIES = ('config.json', 'pipeline.json')


class RunDirError(JaxnasError):
    """A work directory that cannot be used for this run (one line)."""


# Multi-process runs (jaxnas.parallel.initialize): only process 0 claims, locks and writes
# the run directory's files; the others run the same program and write nothing here (orbax
# checkpoints are saved and restored by every process, as orbax requires).
_PRIMARY = True


def set_primary(primary: bool) -> None:
    """Whether this process writes run directories (``False`` on processes other than 0)."""
    global _PRIMARY
    _PRIMARY = bool(primary)


def is_primary() -> bool:
    return _PRIMARY


def _plain(obj) -> Any:
    """``obj`` as JSON sees it (tuples become lists, keys strings); ConfigDicts by their JSON."""
    if hasattr(obj, 'to_json_best_effort'):
        return json.loads(obj.to_json_best_effort(sort_keys=True))
    return json.loads(json.dumps(obj, sort_keys=True))


# Config sections that say where a run runs, not what it computes: left out of the identity,
# so a run resumes under another coordinator address or process layout.
PLACEMENT_SECTIONS = ('distributed',)


def identity(kind: str, config, **extra) -> dict:
    """The content of ``run.json`` for a run of ``kind`` with ``config`` and ``extra`` fields
    (the config without its :data:`PLACEMENT_SECTIONS`)."""
    plain = _plain(config)
    if isinstance(plain, dict):
        plain = {k: v for k, v in plain.items() if k not in PLACEMENT_SECTIONS}
    return _plain({'kind': kind, 'config': plain, **extra})


def claim(workdir: str, kind: str, config, **extra) -> str:
    """Make ``workdir`` the home of this run, or refuse it if it holds another one.

    First takes the directory's lock (:mod:`jaxnas.runs.lock`, creating the directory): a
    directory another live process holds is refused (:class:`WorkdirBusyError`); the lock
    is kept until the innermost :func:`releases_locks` function returns (every loop is
    one), or until the process exits. Then writes ``workdir/run.json`` = :func:`identity`
    on first use; when it exists it must be equal (same kind, config and ``extra``), else
    :class:`RunDirError` (and the lock is let go). A directory of an earlier jaxnas version
    (``config.json`` or ``pipeline.json``, or ``run.json`` without a kind) is claimed if it
    holds the same run. Returns the path of ``run.json``.
    """
    if not _PRIMARY:   # process 0 claims for all; the others refuse what it would refuse, writing nothing
        path = os.path.join(workdir, IDENTITY)
        have, want = read_json(path), identity(kind, config, **extra)
        if have is not None and 'kind' in have and have != want:
            raise (_different(workdir, kind, extra, IDENTITY) if have['kind'] == kind else
                   RunDirError(f"{workdir} holds a {have['kind']} run, not a {kind} run ({IDENTITY}); "
                               'pass a new --workdir'))
        return path
    lock.acquire(workdir, scoped=False)
    try:
        path = _claim(workdir, kind, config, **extra)
    except BaseException:
        lock.release(workdir)
        raise
    lock.register(workdir)
    return path


def _claim(workdir: str, kind: str, config, **extra) -> str:
    path = os.path.join(workdir, IDENTITY)
    want = identity(kind, config, **extra)
    have = read_json(path)
    if have is not None and 'kind' in have:
        if have == want:
            return path
        if have['kind'] != kind:
            raise RunDirError(f"{workdir} holds a {have['kind']} run, not a {kind} run ({IDENTITY}); "
                              'pass a new --workdir')
        raise _different(workdir, kind, extra, IDENTITY)
    legacy = [n for n in (IDENTITY,) + LEGACY_IDENTITIES if os.path.exists(os.path.join(workdir, n))]
    for name in legacy:
        content = read_json(os.path.join(workdir, name))
        if content != want['config'] and content != {k: v for k, v in want.items() if k != 'kind'}:
            raise _different(workdir, kind, extra, name)
    write_json(path, want)
    return path


def _different(workdir: str, kind: str, extra: dict, name: str) -> RunDirError:
    what = ' or arguments' if extra else ''
    return RunDirError(f'{workdir} holds a {kind} run with a different config{what} ({name}); pass a new '
                       f'--workdir (or the same config{what} to resume that run)')


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()   # what open() would give a new file


def write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same directory,
    flushed to disk (``fsync``), then renamed over ``path`` (``os.replace``), so a reader
    or a crash sees the old file or the new one, never a part. Only process 0 of a
    multi-process run writes (:func:`set_primary`)."""
    if not _PRIMARY:
        return
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f'.{os.path.basename(path)}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_text(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`write_bytes`)."""
    write_bytes(path, text.encode('utf-8'))


def save_figure(fig, path: str, **kwargs) -> None:
    """``fig.savefig(path, **kwargs)`` atomically (:func:`write_bytes`); the format is
    ``path``'s extension unless ``format=`` is given."""
    kwargs.setdefault('format', os.path.splitext(path)[1].lstrip('.') or 'png')
    buffer = io.BytesIO()
    fig.savefig(buffer, **kwargs)
    write_bytes(path, buffer.getvalue())


def write_json(path: str, obj, indent: Optional[int] = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (:func:`write_text`)."""
    write_text(path, json.dumps(obj, indent=indent) + '\n')


def read_json(path: str, default=None):
    """The JSON content of ``path``, or ``default`` if there is no such file."""
    if not os.path.exists(path):
        return default
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise RunDirError(f'{path} is not valid JSON ({e}); move it away or pass a new --workdir') from None


def append_jsonl(path: str, records: Iterable[dict]) -> None:
    """Append one JSON line per record (a dict alone is one record). A run's per-epoch
    ``log.jsonl`` (in a directory with ``run.json``) is also written as TensorBoard events
    in ``tb/`` beside it (:mod:`jaxnas.runs.events`)."""
    records = [records] if isinstance(records, dict) else list(records)
    text = ''.join(json.dumps(r) + '\n' for r in records)
    if not text or not _PRIMARY:
        return
    with open(path, 'a') as f:
        f.write(text)
        f.flush()
    run_dir = os.path.dirname(path) or '.'
    if os.path.basename(path) == LOG and os.path.exists(os.path.join(run_dir, IDENTITY)):
        from jaxnas.runs import events
        events.write_records(run_dir, records)


def open_stream(path: str):
    """A binary append-only file for a subprocess's output (a log read by people, not a
    result: it grows as the process writes, so it cannot be replaced atomically)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return open(path, 'ab')


def _lines(path: str) -> list:
    """``(text, record)`` of each line; a last line cut short by a crash is left out."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = f.read().split('\n')
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append((line, json.loads(line)))
        except json.JSONDecodeError:
            if i == len(lines) - 1:   # the unterminated tail of an interrupted append
                break
            raise RunDirError(f'{path}:{i + 1} is not a JSON line; move the file away to restart its log') from None
    return out


def read_jsonl(path: str) -> list:
    """The records of a JSONL file (``[]`` if absent). A last line cut short by a crash
    (no newline, not valid JSON) is left out; a bad line before it is an error."""
    return [record for _, record in _lines(path)]


def truncate_jsonl(path: str, field: str, last) -> list:
    """Keep the records whose ``field`` is at most ``last`` (e.g. ``'epoch'`` and the epoch
    of the restored checkpoint), dropping lines written after it (a crash between the log
    line and the checkpoint); returns the kept records.

    The file is rewritten atomically, and only when something is dropped; kept lines are
    kept byte for byte.
    """
    lines = _lines(path)
    kept = [(text, r) for text, r in lines if r[field] <= last]
    if os.path.exists(path) and (len(kept) != len(lines) or _has_torn_tail(path)):
        write_text(path, ''.join(text + '\n' for text, _ in kept))
    return [r for _, r in kept]


def _has_torn_tail(path: str) -> bool:
    with open(path, 'rb') as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return False
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b'\n'


STEP_FILE = 'step.json'


def kept_step_memory(workdir: str, compiled_bytes: Optional[int]) -> Optional[int]:
    """The compiled step's memory in bytes: ``compiled_bytes`` when this call compiled the
    step (kept in ``workdir/step.json``, rewritten only when it changed), else the value an
    earlier call kept, so a call that compiles nothing (a run resumed after its last
    checkpoint) reports the same summary."""
    path = os.path.join(workdir, STEP_FILE)
    kept = (read_json(path) or {}).get('step_memory_bytes')
    if compiled_bytes is None:
        return kept
    if compiled_bytes != kept:
        write_json(path, {'step_memory_bytes': compiled_bytes})
    return compiled_bytes
