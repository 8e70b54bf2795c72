"""Moved to :mod:`jaxnas.runs` (``runs.Checkpointer``); this alias goes once the callers have moved."""
from jaxnas.runs.checkpoint import Checkpointer  # noqa: F401
