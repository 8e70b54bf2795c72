"""The discrete searcher contract: ``init`` / ``ask`` / ``tell`` over pytree state.

A searcher is a small NamedTuple of pure functions, in the style of an optax
``GradientTransformation``:

- ``init(key) -> state``: the initial state, a NamedTuple of arrays (checkpointable);
- ``ask(state, key) -> candidates``: ``(batch_size, num_choices)`` int32 choice vectors
  (see :mod:`jaxnas.spaces.choices`), a deterministic function of ``(state, key)``;
- ``tell(state, candidates, fitness) -> state``: ``fitness`` is ``(batch_size,)``
  float32, larger is better; NaN counts as the worst possible value.

The three functions are jitted, with shapes fixed by the factory arguments. Budget
accounting and the "good enough" stop live in the loop (:mod:`jaxnas.discrete`), not here.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.errors import JaxnasError


class SearcherError(JaxnasError):
    """A discrete searcher built with arguments it cannot use."""


class DiscreteSearcher(NamedTuple):
    init: Callable
    ask: Callable
    tell: Callable
    batch_size: int


def choice_sizes(space) -> np.ndarray:
    """Sizes of the choices of a :class:`~jaxnas.spaces.choices.ChoiceSpace` or a sequence of ints."""
    sizes = getattr(space, 'sizes', space)
    try:
        sizes = np.asarray(sizes)
    except (TypeError, ValueError):
        sizes = None
    if sizes is None or sizes.ndim != 1 or len(sizes) == 0 or not np.issubdtype(sizes.dtype, np.integer) \
            or np.any(sizes < 1):
        raise SearcherError(f'a searcher needs a choice space or a non-empty list of choice sizes >= 1, got {space!r}')
    return sizes.astype(np.int32)


def check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise SearcherError(f'searcher argument {name} must be an integer >= {low}, got {value!r}')
    return int(value)


def check_float(name: str, value, low: float, high: float, *, low_open: bool = False,
                high_open: bool = False) -> float:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        lo, hi = ('(' if low_open else '['), (')' if high_open else ']')
        raise SearcherError(f'searcher argument {name} must be a number in {lo}{low}, {high}{hi}, got {value!r}')
    return value


def uniform(key: jax.Array, sizes: jax.Array, batch: int) -> jax.Array:
    """``(batch, len(sizes))`` choice vectors drawn uniformly."""
    return jax.random.randint(key, (batch, sizes.shape[0]), 0, sizes, dtype=jnp.int32)


def clean_fitness(fitness) -> jax.Array:
    """float32, NaN (a failed evaluation) replaced by -inf."""
    f = jnp.asarray(fitness, jnp.float32)
    return jnp.where(jnp.isnan(f), -jnp.inf, f)
