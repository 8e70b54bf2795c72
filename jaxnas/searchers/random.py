"""Random search: every candidate drawn uniformly from the choice space.

With the weight-sharing fitness this is random search with weight sharing (Li &
Talwalkar, "Random Search and Reproducibility for Neural Architecture Search", UAI
2019); with training from scratch or a tabular benchmark it is the plain baseline that
regularized evolution and REINFORCE have to beat (Real et al., AAAI 2019; Dong & Yang,
NAS-Bench-201, ICLR 2020).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxnas.searchers.base import DiscreteSearcher, check_int, choice_sizes, uniform


class RandomState(NamedTuple):
    count: jax.Array  # candidates told so far


def random_search(space, *, batch_size: int = 1) -> DiscreteSearcher:
    """Uniform sampling; ``tell`` only counts."""
    sizes = jnp.asarray(choice_sizes(space))
    batch_size = check_int('batch_size', batch_size, 1)

    def init(key):
        del key
        return RandomState(jnp.zeros((), jnp.int32))

    def ask(state, key):
        del state
        return uniform(key, sizes, batch_size)

    def tell(state, candidates, fitness):
        del fitness
        return RandomState(state.count + candidates.shape[0])

    return DiscreteSearcher(init, jax.jit(ask), jax.jit(tell), batch_size)
