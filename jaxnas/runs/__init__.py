"""Run directories: the identity file, atomic JSON, JSONL logs and checkpoints.

Used by every command (search, retrain, discrete, compare, pipeline):

- :func:`claim` marks a work directory with ``run.json`` or refuses one holding a
  different run;
- :func:`write_json` / :func:`write_text` write atomically; :func:`read_json`;
- :func:`append_jsonl`, :func:`read_jsonl`, :func:`truncate_jsonl` (drop the log lines
  after the restored checkpoint);
- :class:`Checkpointer` (orbax) saves and restores the whole state; :func:`restore`.
"""
from jaxnas.runs.checkpoint import Checkpointer, restore
from jaxnas.runs.rundir import (IDENTITY, RunDirError, append_jsonl, claim, identity, read_json, read_jsonl,
                                truncate_jsonl, write_json, write_text)

__all__ = ['IDENTITY', 'Checkpointer', 'RunDirError', 'append_jsonl', 'claim', 'identity', 'read_json',
           'read_jsonl', 'restore', 'truncate_jsonl', 'write_json', 'write_text']
