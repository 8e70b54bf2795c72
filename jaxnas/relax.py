"""Relaxations: how architecture logits become mixing weights.

A relaxation is a small NamedTuple of pure functions, in the style of an optax
``GradientTransformation``:

- ``weights(logits, key, step) -> mix``: the mixing weights used in the supernet's
  training forward pass (may be stochastic; schedules such as a temperature are
  computed from ``step`` inside, so nothing recompiles per epoch);
- ``penalty(logits) -> scalar``: a regulariser added to the architecture loss;
- ``normalized(logits) -> weights``: deterministic weights used to evaluate the supernet
  and to derive the genotype.

``logits`` and ``mix`` are pytrees of ``(edges, ops)`` arrays (one per cell type).
Relaxations are registered by name in :data:`RELAXATIONS` and built with
:func:`make_relaxation` from a name and keyword arguments.

DARTS (Liu et al., ICLR 2019): ``softmax`` over the ops of each edge, no penalty.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxnas.errors import JaxnasError


class Relaxation(NamedTuple):
    weights: Callable
    penalty: Callable
    normalized: Callable


def _no_penalty(logits):
    return jnp.zeros((), jnp.float32)


def softmax(temperature: float = 1.0) -> Relaxation:
    """DARTS: ``softmax(logits / temperature)`` over the ops of every edge."""
    if temperature <= 0:
        raise JaxnasError(f'softmax temperature must be > 0, got {temperature}')

    def normalized(logits):
        return jax.tree.map(lambda a: jax.nn.softmax(a / temperature, axis=-1), logits)

    def weights(logits, key, step):
        del key, step
        return normalized(logits)

    return Relaxation(weights, _no_penalty, normalized)


RELAXATIONS = {
    'darts': softmax,
}


def make_relaxation(name: str, **kwargs) -> Relaxation:
    """Build a registered relaxation; unknown names or arguments give a one-line error."""
    if name not in RELAXATIONS:
        raise JaxnasError(f"unknown relaxation {name!r}; choose one of {', '.join(RELAXATIONS)}")
    try:
        return RELAXATIONS[name](**kwargs)
    except TypeError as e:
        raise JaxnasError(f'bad arguments for relaxation {name!r}: {e}') from None
