"""Run directories: the identity file, locks, atomic writes, JSONL logs and checkpoints.

Used by every command (search, retrain, discrete, compare, pipeline):

- :func:`claim` marks a work directory with ``run.json`` or refuses one holding a
  different run, and takes its lock (``.lock``): a directory a live process holds is
  refused (:class:`WorkdirBusyError`); :func:`releases_locks` decorates the loops so their
  locks are let go when they return; :func:`locked` holds a directory's lock for a block;
- :func:`write_json` / :func:`write_text` / :func:`write_bytes` / :func:`save_figure`
  write atomically; :func:`read_json`;
- :func:`append_jsonl`, :func:`read_jsonl`, :func:`truncate_jsonl` (drop the log lines
  after the restored checkpoint);
- :class:`Checkpointer` (orbax) saves and restores the whole state, falling back from an
  unreadable checkpoint to the one before (:class:`CheckpointError` when none reads);
  :func:`restore`. Imported on first use, so that the rest does not load orbax and jax.
"""
from jaxnas.runs.lock import WorkdirBusyError, holds, locked, releases_locks
from jaxnas.runs.rundir import (IDENTITY, RunDirError, append_jsonl, claim, identity, is_primary, kept_step_memory,
                                open_stream,
                                read_json, read_jsonl, save_figure, set_primary, truncate_jsonl, write_bytes, write_json,
                                write_text)

_CHECKPOINT_NAMES = ('Checkpointer', 'CheckpointError', 'restore')


def __getattr__(name):
    if name in _CHECKPOINT_NAMES:
        from jaxnas.runs import checkpoint
        return getattr(checkpoint, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = ['IDENTITY', 'CheckpointError', 'Checkpointer', 'RunDirError', 'WorkdirBusyError', 'append_jsonl',
           'claim', 'holds', 'identity', 'kept_step_memory', 'locked', 'read_json', 'read_jsonl', 'releases_locks', 'restore',
           'open_stream', 'save_figure', 'set_primary', 'is_primary', 'truncate_jsonl', 'write_bytes', 'write_json', 'write_text']
