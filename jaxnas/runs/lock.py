"""One process per work directory: an advisory lock file, ``<dir>/.lock``.

The lock is an ``fcntl.flock`` on ``<dir>/.lock``, so the kernel releases it when its
holder exits or dies, however it dies; the file names the holder (pid, host, start time)
for the message of whoever is refused. The file itself stays (removing a lock file races
with a process about to lock it); it is emptied on a normal release, so a non-empty file
that nobody holds is the trace of a holder that died: it is taken over with a one-line
note.

Within one process the lock is re-entrant: :func:`acquire` of a directory this process
already holds counts up, :func:`release` counts down, and the file is unlocked at zero.
So ``jaxnas run`` may hold its work directory and then its ``search/`` sub-directory, a
study may run several searches, and a loop may be called again on its own directory.

:func:`jaxnas.runs.claim` acquires the lock of the directory it claims. Inside a function
decorated with :func:`releases_locks` (every loop is), the locks taken during the call are
released when it returns or raises; a claim made outside any such function holds its lock
until the process exits.
"""
from __future__ import annotations

import contextlib
import datetime
import functools
import json
import os
import socket
import sys
import threading
import time

from jaxnas.errors import JaxnasError

try:
    import fcntl
except ImportError:   # not POSIX: no locking
    fcntl = None

LOCK = '.lock'


class WorkdirBusyError(JaxnasError):
    """The work directory is held by another live process (one line)."""


class _Held:
    def __init__(self, fd: int):
        self.fd, self.count, self.pid = fd, 1, os.getpid()


_held: dict = {}          # real path of the directory -> _Held, for this process
_mutex = threading.RLock()
_scopes = threading.local()


def _key(directory: str) -> str:
    return os.path.realpath(directory)


def _read_holder(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 4096).decode('utf-8', 'replace').strip()
        return json.loads(text) if text else {}
    except (OSError, ValueError):
        return {}


def _describe(holder: dict) -> str:
    if not holder.get('pid'):
        return 'another process'
    where = f" on {holder['host']}" if holder.get('host') else ''
    since = f", since {holder['since']}" if holder.get('since') else ''
    return f"pid {holder['pid']}{where}{since}"


def _note(message: str) -> None:
    print(f'note: {message}', file=sys.stderr)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def acquire(directory: str, *, wait: bool = False, poll_s: float = 0.5, purpose: str = '',
            scoped: bool = True) -> None:
    """Hold ``directory``'s lock for this process (creating the directory).

    Held already by this process: counted once more. Held by another live process:
    :class:`WorkdirBusyError` naming the directory, the holder and the fix, or with
    ``wait`` a one-line note (``purpose`` says what the holder is doing) and a wait until
    it is free. Released by the innermost :func:`releases_locks` call (``scoped``; else
    by :func:`release` or :func:`register` later), or when the process exits.
    """
    _acquire(directory, wait, poll_s, purpose)
    if scoped:
        register(directory)


def _acquire(directory: str, wait: bool, poll_s: float, purpose: str) -> None:
    key = _key(directory)
    with _mutex:
        held = _held.get(key)
        if held is not None and held.pid == os.getpid():
            held.count += 1
            return
        os.makedirs(key, exist_ok=True)
        if fcntl is None:
            return
        try:
            fd = os.open(os.path.join(key, LOCK), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:   # e.g. a finished run on a read-only disk: it can still be read back
            _note(f'{directory}: cannot open {LOCK} ({e.strerror}); not guarded against a second process')
            return
        try:
            locked = _lock(fd, directory, wait, poll_s, purpose)
        except BaseException:
            os.close(fd)
            raise
        if locked:
            previous = _read_holder(fd)
            if previous.get('pid'):
                _note(f'{directory} was locked by {_describe(previous)}, which is no longer running; taking it over')
            _write_holder(fd)
        _held[key] = _Held(fd)


def _lock(fd: int, directory: str, wait: bool, poll_s: float, purpose: str) -> bool:
    """Lock ``fd`` (True), or False where this filesystem cannot lock (a note says so)."""
    try:
        if _try_lock(fd):
            return True
        holder = _read_holder(fd)
        if not wait:
            raise WorkdirBusyError(
                f'{directory} is in use by {_describe(holder)} ({LOCK}); wait for that run to finish or stop '
                'it, or pass a new --workdir')
        what = f' {purpose}' if purpose else ''
        _note(f'waiting for {_describe(holder)}{what} in {directory} ({LOCK})')
        while not _try_lock(fd):
            time.sleep(poll_s)
        return True
    except OSError as e:
        _note(f'{directory}: cannot lock {LOCK} on this filesystem ({e.strerror}); not guarded against '
              'a second process')
        return False


def _write_holder(fd: int) -> None:
    since = datetime.datetime.now().isoformat(timespec='seconds')
    text = json.dumps({'pid': os.getpid(), 'host': socket.gethostname(), 'since': since}) + '\n'
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, text.encode())


def release(directory: str) -> None:
    """Count down this process's hold on ``directory``; at zero empty and unlock the file."""
    key = _key(directory)
    with _mutex:
        held = _held.get(key)
        if held is None or held.pid != os.getpid():
            return
        held.count -= 1
        if held.count > 0:
            return
        del _held[key]
        try:
            os.ftruncate(held.fd, 0)   # a clean release: nothing to take over
            fcntl.flock(held.fd, fcntl.LOCK_UN)
        except OSError:
            pass
        finally:
            os.close(held.fd)


def holds(directory: str) -> bool:
    """Whether this process holds ``directory``'s lock."""
    held = _held.get(_key(directory))
    return held is not None and held.pid == os.getpid()


@contextlib.contextmanager
def locked(directory: str, *, wait: bool = False, poll_s: float = 0.5, purpose: str = ''):
    """``with locked(d):`` holds ``d``'s lock for the block (:func:`acquire`, :func:`release`)."""
    _acquire(directory, wait, poll_s, purpose)
    try:
        yield
    finally:
        release(directory)


def register(directory: str) -> None:
    """Leave one hold of ``directory`` (taken with ``scoped=False``) to the innermost :func:`releases_locks`."""
    stack = getattr(_scopes, 'stack', None)
    if stack:
        stack[-1].append(_key(directory))


def releases_locks(fn):
    """Decorate a loop: the locks it (and what it calls) acquires are released when it returns or raises."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        stack = getattr(_scopes, 'stack', None)
        if stack is None:
            stack = _scopes.stack = []
        stack.append([])
        try:
            return fn(*args, **kwargs)
        finally:
            for key in reversed(stack.pop()):
                release(key)
    return wrapper
