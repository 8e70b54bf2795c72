"""Regularized (aging) evolution (Real et al., "Regularized Evolution for Image
Classifier Architecture Search", AAAI 2019).

The population is a ring buffer of the ``population_size`` most recent candidates. Until
it is full, ``ask`` returns uniform random candidates. Then each child comes from a
tournament: ``sample_size`` members drawn uniformly at random with replacement (as the
paper: "sample S random individuals from the population, with replacement"; AutoDL's
``R_EA`` likewise), the fittest one is the parent, and the child is the parent with exactly one choice changed to a different
value (choices with a single value are never picked). ``tell`` writes the children over
the oldest members, so every candidate dies of age, however fit.

With ``batch_size > 1`` the children of one ``ask`` all come from tournaments on the same
population (the asynchronous workers of the paper evaluating in parallel).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxnas.searchers.base import (DiscreteSearcher, SearcherError, check_int, choice_sizes, clean_fitness,
                                   uniform)


class EvolutionState(NamedTuple):
    population: jax.Array  # (P, D) int32 choice vectors
    fitness: jax.Array     # (P,) float32; -inf for empty slots
    born: jax.Array        # (P,) int32 index of the evaluation that produced each member; -1 empty
    count: jax.Array       # candidates told so far; slot count % P holds the oldest member


def mutate(key: jax.Array, parent: jax.Array, sizes: jax.Array) -> jax.Array:
    """Change exactly one choice with more than one value to a different value, uniformly."""
    k_choice, k_value = jax.random.split(key)
    mutable = (sizes > 1).astype(jnp.float32)
    k = jax.random.choice(k_choice, sizes.shape[0], p=mutable / mutable.sum())
    offset = jax.random.randint(k_value, (), 1, jnp.maximum(sizes[k], 2))
    return parent.at[k].set((parent[k] + offset) % sizes[k])


def regularized_evolution(space, *, batch_size: int = 1, population_size: int = 20,
                          sample_size: int = 5) -> DiscreteSearcher:
    """Aging evolution over a choice space (``space.sizes``)."""
    sizes_np = choice_sizes(space)
    sizes = jnp.asarray(sizes_np)
    batch_size = check_int('batch_size', batch_size, 1)
    P = check_int('population_size', population_size, 2)
    S = check_int('sample_size', sample_size, 1)
    if S > P:
        raise SearcherError(f'evolution sample_size ({S}) must be <= population_size ({P})')
    if batch_size > P:
        raise SearcherError(f'evolution population_size ({P}) must be >= the batch size ({batch_size}) '
                            'of candidates asked at once')
    if not (sizes_np > 1).any():
        raise SearcherError('evolution needs at least one choice with two or more values to mutate')
    D = sizes.shape[0]

    def init(key):
        del key
        return EvolutionState(jnp.zeros((P, D), jnp.int32), jnp.full((P,), -jnp.inf, jnp.float32),
                              jnp.full((P,), -1, jnp.int32), jnp.zeros((), jnp.int32))

    def child(state, key, row):
        k_random, k_tournament, k_mutate = jax.random.split(key, 3)
        filled = state.born >= 0
        # tournament: S filled members drawn uniformly with replacement, the fittest is the parent
        members = jax.random.categorical(k_tournament, jnp.where(filled, 0.0, -jnp.inf), shape=(S,))
        member_fitness = jnp.where(filled[members], state.fitness[members], -jnp.inf)
        # ties (and all -inf) go to the first drawn, which is itself a uniform draw
        parent = state.population[members[jnp.argmax(member_fitness)]]
        evolved = mutate(k_mutate, parent, sizes)
        fresh = uniform(k_random, sizes, 1)[0]
        return jnp.where(state.count + row < P, fresh, evolved)

    def ask(state, key):
        keys = jax.random.split(key, batch_size)
        return jax.vmap(lambda k, r: child(state, k, r))(keys, jnp.arange(batch_size))

    def tell(state, candidates, fitness):
        n = candidates.shape[0]
        slots = (state.count + jnp.arange(n)) % P
        return EvolutionState(state.population.at[slots].set(candidates.astype(jnp.int32)),
                              state.fitness.at[slots].set(clean_fitness(fitness)),
                              state.born.at[slots].set(state.count + jnp.arange(n, dtype=jnp.int32)),
                              state.count + n)

    return DiscreteSearcher(init, jax.jit(ask), jax.jit(tell), batch_size)
