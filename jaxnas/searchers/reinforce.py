"""REINFORCE (Williams 1992) with a per-choice categorical policy: the reinforcement
learning NAS of Zoph & Le (ICLR 2017) in the form of the NAS-Bench-201 baseline (Dong &
Yang, ICLR 2020), where the controller is a table of independent logits, one categorical
distribution per choice, instead of an RNN.

The logits start at ``1e-3 * N(0, 1)`` (AutoDL's NAS-Bench-201 REINFORCE policy), drawn
from ``init``'s key. ``ask`` samples every choice from ``softmax(logits[k, :sizes[k]])``. ``tell`` updates a
bias-corrected exponential moving average of the reward (the baseline; the candidates'
mean reward enters it before it is used, as in the NAS-Bench-201 code) and takes one Adam
step on ``-mean_b (R_b - baseline) * log pi(candidate_b)``. NaN fitness (a failed
evaluation) gets zero advantage.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxnas.searchers.base import DiscreteSearcher, check_float, check_int, choice_sizes

_MASKED = -1e9  # logit of values beyond a choice's size


class ReinforceState(NamedTuple):
    logits: jax.Array         # (D, K) policy logits; entries k >= sizes[d] are unused
    opt_state: Any            # Adam state of the logits
    baseline_sum: jax.Array   # EMA numerator and denominator (bias correction)
    baseline_norm: jax.Array
    count: jax.Array          # candidates told so far


def reinforce(space, *, batch_size: int = 1, learning_rate: float = 0.05,
              baseline_decay: float = 0.9) -> DiscreteSearcher:
    """REINFORCE over a choice space with Adam(``learning_rate``) and an EMA baseline."""
    sizes_np = choice_sizes(space)
    batch_size = check_int('batch_size', batch_size, 1)
    learning_rate = check_float('learning_rate', learning_rate, 0.0, float('inf'), low_open=True, high_open=True)
    decay = check_float('baseline_decay', baseline_decay, 0.0, 1.0, high_open=True)
    D, K = len(sizes_np), int(sizes_np.max())
    valid = jnp.arange(K)[None, :] < jnp.asarray(sizes_np)[:, None]
    tx = optax.adam(learning_rate)

    def policy(logits):
        return jax.nn.log_softmax(jnp.where(valid, logits, _MASKED), axis=-1)

    def init(key):
        logits = 1e-3 * jax.random.normal(key, (D, K), jnp.float32)
        zero = jnp.zeros((), jnp.float32)
        return ReinforceState(logits, tx.init(logits), zero, zero, jnp.zeros((), jnp.int32))

    def ask(state, key):
        return jax.random.categorical(key, policy(state.logits), shape=(batch_size, D)).astype(jnp.int32)

    def tell(state, candidates, fitness):
        f = jnp.asarray(fitness, jnp.float32)
        ok = ~jnp.isnan(f)
        mean = jnp.sum(jnp.where(ok, f, 0.0)) / jnp.maximum(ok.sum(), 1)
        any_ok = ok.any()
        num = jnp.where(any_ok, decay * state.baseline_sum + (1 - decay) * mean, state.baseline_sum)
        den = jnp.where(any_ok, decay * state.baseline_norm + (1 - decay), state.baseline_norm)
        baseline = num / jnp.maximum(den, 1e-12)
        advantage = jnp.where(ok, f - baseline, 0.0)

        def loss(logits):
            logp = jnp.take_along_axis(policy(logits)[None], candidates[..., None].astype(jnp.int32), -1)[..., 0]
            return -jnp.mean(advantage * logp.sum(-1))

        grads = jax.grad(loss)(state.logits)
        updates, opt_state = tx.update(grads, state.opt_state, state.logits)
        return ReinforceState(optax.apply_updates(state.logits, updates), opt_state, num, den,
                              state.count + candidates.shape[0])

    return DiscreteSearcher(init, jax.jit(ask), jax.jit(tell), batch_size)
