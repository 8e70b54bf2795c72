"""A hardware cost in the architecture loss: the expected cost of the mix and its loss forms.

``E[C] = CostTable.expected(relaxation.cost_weights(logits, key, step))``: the expected
cost under the relaxation's op distribution (:attr:`jaxnas.relax.Relaxation.cost_weights`:
the softmax for darts / snas / pcdarts / fairdarts, the Dirichlet mean for drnas, the
straight-through hard sample for gdas, whose forward value is the sampled op's cost),
summed over edges and cells with each place's own shapes (:mod:`jaxnas.costs.table`).
For a softmax ``p = softmax(a_e)`` of one edge the gradient is the closed form
``dE/da_eo = keep_e * p_o * (c_eo - sum_o' p_o' c_eo')`` (tests check it against autodiff).

Loss forms (``cost.form``) of the architecture loss, ``CE`` the cross-entropy, ``T`` the
target (``cost.target``, in the model's unit), ``lam`` ``cost.weight``:

- ``additive``: ``CE + lam * (E - T) / T`` (ProxylessNAS ``add#linear``);
- ``multiplicative``: ``CE * lam * (log E / log T) ** beta`` with ``beta`` =
  ``cost.exponent`` (ProxylessNAS / FBNet ``mul#log``; needs ``T > 1`` and ``E > 1`` in the
  model's unit, so pick a unit where costs exceed 1);
- ``hinge``: ``CE + lam * max(0, E / T - 1)``: no pressure once the target is met.

The architecture update takes the gradient of the form with respect to the logits through
both ``CE`` and ``E`` (:func:`combine`), so every relaxation and every search order gets it
without touching the supernet's loss (the weight step is unchanged).
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxnas.costs.xla import CostError

FORMS = ('additive', 'multiplicative', 'hinge')


def cost_loss(ce, expected, *, form: str, target: float, weight: float, exponent: float = 0.6):
    """The architecture loss of ``form`` (see the module docstring)."""
    T = jnp.asarray(target, jnp.float32)
    if form == 'additive':
        return ce + weight * (expected - T) / T
    if form == 'multiplicative':
        return ce * weight * (jnp.log(expected) / jnp.log(T)) ** exponent
    if form == 'hinge':
        return ce + weight * jnp.maximum(0.0, expected / T - 1.0)
    raise CostError(f"unknown cost form {form!r}; choose one of {', '.join(FORMS)}")


class CostTerm(NamedTuple):
    """What the bilevel step needs: ``expected(logits, key, step) -> E`` and
    ``loss(ce, E) -> total``; ``table`` for reports."""
    expected: Callable
    loss: Callable
    table: object
    target: float


def make_cost_term(table, relaxation, *, form: str, target: float, weight: float,
                   exponent: float = 0.6) -> CostTerm:
    if relaxation.cost_weights is None:
        raise CostError('this relaxation has no architecture gradient (random_path): a cost term has no effect; '
                        'set cost.weight=0 or choose another relaxation')
    check_form(form, target, weight, exponent)

    def expected(logits, key, step):
        return table.expected(relaxation.cost_weights(logits, key, step))

    def loss(ce, e):
        return cost_loss(ce, e, form=form, target=target, weight=weight, exponent=exponent)

    return CostTerm(expected, loss, table, float(target))


def check_form(form: str, target: float, weight: float, exponent: float) -> None:
    if form not in FORMS:
        raise CostError(f"unknown cost form {form!r}; choose one of {', '.join(FORMS)}")
    if not target > 0:
        raise CostError(f'cost.target must be > 0 (in the cost model\'s unit), got {target}')
    if not weight >= 0:
        raise CostError(f'cost.weight must be >= 0, got {weight}')
    if form == 'multiplicative' and not target > 1:
        raise CostError(f'the multiplicative (mul#log) form needs cost.target > 1 in the model\'s unit, got {target}')
    if form == 'multiplicative' and not exponent > 0:
        raise CostError(f'cost.exponent must be > 0, got {exponent}')


def combine(term: Optional[CostTerm], logits, key, step, ce, g_ce):
    """``(total loss, its gradient w.r.t. the logits, E)`` from the cross-entropy ``ce``
    and its logits gradient ``g_ce``: ``d total = dL/dCE * g_ce + dL/dE * dE/dlogits``."""
    if term is None:
        return ce, g_ce, jnp.zeros((), jnp.float32)
    e, vjp = jax.vjp(lambda a: term.expected(a, key, step), logits)
    total, (d_ce, d_e) = jax.value_and_grad(term.loss, argnums=(0, 1))(ce, e)
    (g_e,) = vjp(d_e)
    g = jax.tree.map(lambda gc, ge: d_ce * gc + ge, g_ce, g_e)
    return total, g, e
