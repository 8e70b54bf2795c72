"""Orbax checkpoints of a run's whole state, with automatic resume.

Checkpoints are written atomically by orbax (into a temporary directory, renamed to
``<step>`` when complete), so an interrupted save never leaves a half-written checkpoint
behind: :meth:`Checkpointer.latest_step` ignores the temporary directories and a resumed
run starts from the last complete one.

A checkpoint damaged afterwards (a file truncated or deleted, a disk error) is not
trusted: :meth:`Checkpointer.restore` falls back to the newest one that reads (orbax
keeps the last ``max_to_keep=2``) with a one-line warning, and moves each unreadable
newer one aside to ``<step>.corrupt`` (kept for inspection; its step number is free for
the resumed run to save again). When none reads, :class:`CheckpointError` says so in
one line and moves nothing.
"""
from __future__ import annotations

import gc
import os
import sys
from typing import Any, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from jaxnas.errors import JaxnasError


class CheckpointError(JaxnasError):
    """No checkpoint of a run can be read (one line)."""


def _uncommitted(x):
    """``x`` as a fresh state holds it: orbax returns arrays committed to a device, and jit
    keys its programs on that, so a resumed run would compile its step (and the metric's
    programs) again instead of loading the fresh run's from the persistent cache. Same bits."""
    if isinstance(x, jax.Array) and not jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return jnp.asarray(np.asarray(x))
    return x


def _collect_quietly(failed: list) -> None:
    """After failed restores: collect orbax's abandoned read coroutines now, without the
    "Exception ignored in <coroutine ...>" report each would print when collected later."""
    if not failed:
        return
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        gc.collect()
    finally:
        sys.unraisablehook = hook


def _reason(error: BaseException) -> str:
    """One line, at most 160 characters, saying why a restore failed."""
    text = ' '.join(str(error).split()).split(' See full TensorStore details')[0] or type(error).__name__
    text = text if len(text) <= 160 else text[:157] + '...'
    return f'{type(error).__name__}: {text}'


class Checkpointer:
    """Saves ``state`` pytrees under ``directory/<step>``; keeps the last ``max_to_keep``."""

    def __init__(self, directory: str, max_to_keep: int = 2):
        self.directory = os.path.abspath(directory)
        self._manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

    def latest_step(self) -> Optional[int]:
        return self._manager.latest_step()

    def save(self, step: int, state: Any) -> None:
        """Save ``state`` as ``step`` and wait until it is complete on disk."""
        self._manager.save(step, args=ocp.args.StandardSave(state))
        self._manager.wait_until_finished()

    def restore(self, template: Any, step: Optional[int] = None) -> Tuple[Optional[int], Any]:
        """``(step, state)`` of the latest readable (or the given) checkpoint, or ``(None, template)``.

        The restored state has the pytree structure (NamedTuples included) of ``template``.
        Without ``step``, an unreadable checkpoint (one that does not read even without
        the template) is passed over for the one before it, with a one-line warning on
        stderr, and moved aside to ``<step>.corrupt``; if none can be read,
        :class:`CheckpointError` (nothing moved). A checkpoint that reads but does not fit
        ``template`` raises orbax's error: that is a program error, not damage.
        """
        if step is not None:
            return step, self._restore(step, template)
        failed = []
        for candidate in sorted(self._manager.all_steps(), reverse=True):
            try:
                state = self._restore(candidate, template)
            except Exception as e:   # orbax / tensorstore raise many types for a damaged file
                if self._readable(candidate):
                    raise   # the files read, as they were saved: ``template`` does not fit them (a bug)
                failed.append((candidate, _reason(e)))
                continue
            _collect_quietly(failed)
            for bad, reason in failed:
                moved = self._set_aside(bad)
                print(f'warning: checkpoint {os.path.join(self.directory, str(bad))} is unreadable '
                      f'({reason}); moved it to {moved} and resuming from step {candidate}', file=sys.stderr)
            if failed:
                self._manager.reload()
            return candidate, state
        if not failed:
            return None, template
        _collect_quietly(failed)
        steps = ', '.join(str(s) for s, _ in failed)
        raise CheckpointError(
            f'no checkpoint in {self.directory} can be read (steps {steps}; newest: {failed[0][1]}); '
            f'move {self.directory} away to start this run again from scratch, or pass a new --workdir')

    def _restore(self, step: int, template: Any) -> Any:
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        state = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
        return jax.tree.unflatten(jax.tree.structure(template), [_uncommitted(x) for x in jax.tree.leaves(state)])

    def _readable(self, step: int) -> bool:
        """Whether checkpoint ``step`` reads as saved (its own metadata, no template)."""
        try:
            self._manager.restore(step, args=ocp.args.StandardRestore())
            return True
        except Exception:
            return False

    def _set_aside(self, step: int) -> str:
        """Rename ``<step>`` to a free ``<step>.corrupt[.k]``; returns the new path."""
        source = os.path.join(self.directory, str(step))
        target, k = f'{source}.corrupt', 0
        while os.path.exists(target):
            k += 1
            target = f'{source}.corrupt.{k}'
        os.replace(source, target)
        return target

    def close(self) -> None:
        self._manager.close()

    def __enter__(self) -> 'Checkpointer':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def restore(directory: str, template: Any) -> Tuple[Optional[int], Any]:
    """``(step, state)`` of the latest checkpoint in ``directory`` (``(None, template)`` if none)."""
    with Checkpointer(directory) as ckpt:
        return ckpt.restore(template)
