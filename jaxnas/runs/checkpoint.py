"""Orbax checkpoints of a run's whole state, with automatic resume.

Checkpoints are written atomically by orbax (into a temporary directory, renamed to
``<step>`` when complete), so an interrupted save never leaves a half-written checkpoint
behind: :meth:`Checkpointer.latest_step` ignores the temporary directories and a resumed
run starts from the last complete one.
"""
from __future__ import annotations

import os
from typing import Any, Optional, Tuple

import jax
import orbax.checkpoint as ocp


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
        """``(step, state)`` of the latest (or given) checkpoint, or ``(None, template)``.

        The restored state has the pytree structure (NamedTuples included) of ``template``.
        """
        step = self.latest_step() if step is None else step
        if step is None:
            return None, template
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        state = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
        return step, jax.tree.unflatten(jax.tree.structure(template), jax.tree.leaves(state))

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
