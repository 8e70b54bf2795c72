"""Bilevel optimisation: architecture logits on validation data, weights on training data.

One pure, jitted function ``step(state, train_batch, val_batch) -> (state, metrics)``
does both updates of a DARTS iteration (Liu et al., ICLR 2019, Alg. 1): first the
architecture step on a validation batch, then the weight step on a training batch with
the updated architecture. Orders of the architecture gradient:

- ``first``: ``grad_a L_val(w, a)``;
- ``second``: the exact hypergradient ``d/da L_val(w'(a), a)`` of the loss after one
  virtual SGD step ``w' = w - xi (momentum * m + grad_w L_train(w, a) + wd * w)``
  (``xi`` the current weight learning rate, ``m`` the momentum buffer), by autodiff
  through that step, so momentum and weight decay are honoured exactly;
- ``finite_difference``: the paper's approximation of the same quantity,
  ``grad_a L_val(w', a) - xi * (grad_a L_train(w+, a) - grad_a L_train(w-, a)) / (2 eps)``
  with ``w+- = w +- eps v``, ``v = grad_w' L_val(w', a)``, ``eps = 0.01 / ||v||``.

Randomness: one key per step, ``fold_in(state.key, state.step)``, split for
augmentation and the two losses, so a run is reproducible and resumes exactly.
BatchNorm running statistics are updated by the weight step's forward pass. An update whose
loss, gradient or result is not finite is skipped inside the step (the architecture and the
weight updates each on their own: :func:`jaxnas.train.keep_if`), and the step counted in
``state.skips`` (:mod:`jaxnas.train.guard`); with finite values the bits are unchanged. The weight
optimiser is the DARTS SGD chain of :mod:`jaxnas.train` (``make_sgd``, ``make_cosine_schedule``),
the loss :func:`jaxnas.train.cross_entropy`.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from jaxnas import train
from jaxnas.costs import objective as costs_objective
from jaxnas.errors import JaxnasError
from jaxnas.relax import Relaxation

ORDERS = ('first', 'second', 'finite_difference')


class SearchState(NamedTuple):
    step: jax.Array
    params: Any
    batch_stats: Any
    arch: Any
    w_opt: Any
    a_opt: Any
    key: jax.Array
    skips: train.SkipCounts = train.NO_SKIPS   # non-finite steps skipped (jaxnas.train.guard)


def make_arch_optimizer(*, lr: float = 3e-4, b1: float = 0.5, b2: float = 0.999,
                        weight_decay: float = 1e-3, warmup_steps: int = 0) -> optax.GradientTransformation:
    """PyTorch Adam with coupled weight decay (L2 added to the gradient before Adam).

    ``warmup_steps > 0``: the first ``warmup_steps`` updates are zero and leave Adam's
    state untouched, as if the architecture step were not taken (PC-DARTS's warm-up);
    the state then also counts the updates (:class:`WarmupState`).
    """
    tx = optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(lr, b1=b1, b2=b2))
    return tx if warmup_steps <= 0 else delay_updates(tx, warmup_steps)


class WarmupState(NamedTuple):
    count: jax.Array   # updates asked so far
    inner: Any


def delay_updates(inner: optax.GradientTransformation, steps: int) -> optax.GradientTransformation:
    """``inner`` from its ``steps``-th update on; before that, zero updates and ``inner``'s
    state kept as it was."""
    def init(params):
        return WarmupState(jnp.zeros((), jnp.int32), inner.init(params))

    def update(updates, state, params=None):
        new_updates, new_inner = inner.update(updates, state.inner, params)
        on = state.count >= steps
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(on, a, b), new, old)
        return (keep(new_updates, jax.tree.map(jnp.zeros_like, new_updates)),
                WarmupState(state.count + 1, keep(new_inner, state.inner)))
    return optax.GradientTransformation(init, update)


def make_loss(net, relaxation: Relaxation, compute_dtype=jnp.float32) -> Callable:
    """``loss(params, batch_stats, arch, batch, key, step) -> (loss, (batch_stats, logits))``.

    With a ``compute_dtype`` other than float32 (bfloat16) the weights, the input and the
    mixing weights are cast to it for the forward and backward pass; the weights and
    ``arch`` stay float32 (their gradients come back float32 through the casts), the
    BatchNorm statistics stay float32, and the loss is taken on float32 logits."""
    def loss(params, batch_stats, arch, batch, key, step):
        mix = relaxation.weights(arch, key, step)
        x = batch[0]
        if compute_dtype != jnp.float32:
            cast = lambda t: jax.tree.map(lambda a: a.astype(compute_dtype) if jnp.issubdtype(a.dtype, jnp.floating)
                                          else a, t)
            params, mix, x = cast(params), cast(mix), x.astype(compute_dtype)
        logits, updates = net.apply({'params': params, 'batch_stats': batch_stats}, x, mix,
                                    train=True, mutable=['batch_stats'])
        new_stats = jax.tree.map(lambda new, old: new.astype(old.dtype), updates['batch_stats'], batch_stats)
        return train.cross_entropy(logits.astype(jnp.float32), batch[1]), (new_stats, logits.astype(jnp.float32))
    return loss


def _momentum(w_opt, params):
    trace = optax.tree_utils.tree_get(w_opt, 'trace')
    return jax.tree.map(jnp.zeros_like, params) if trace is None else trace


def virtual_step(loss, state, arch, train_batch, key, lr, momentum, weight_decay):
    """``w' = w - lr (momentum * m + grad_w L_train(w, a) + wd * w)`` (unclipped, as DARTS)."""
    g = jax.grad(lambda p: loss(p, state.batch_stats, arch, train_batch, key, state.step)[0])(state.params)
    m = _momentum(state.w_opt, state.params)
    return jax.tree.map(lambda w, g_, m_: w - lr * (momentum * m_ + g_ + weight_decay * w), state.params, g, m)


def hypergradient(order: str, loss: Callable, state: SearchState, arch, train_batch, val_batch,
                  k_train, k_val, lr, momentum: float, weight_decay: float):
    """``(val_loss, logits), grad_a`` of the validation loss for one of :data:`ORDERS`."""
    def val_loss(params, a):
        value, (_, logits) = loss(params, state.batch_stats, a, val_batch, k_val, state.step)
        return value, logits

    if order == 'first':
        (value, logits), g = jax.value_and_grad(val_loss, argnums=1, has_aux=True)(state.params, arch)
        return (value, logits), g
    if order == 'second':
        def unrolled(a):
            w_virtual = virtual_step(loss, state, a, train_batch, k_train, lr, momentum, weight_decay)
            return val_loss(w_virtual, a)
        return jax.value_and_grad(unrolled, has_aux=True)(arch)
    if order == 'finite_difference':
        w_virtual = virtual_step(loss, state, arch, train_batch, k_train, lr, momentum, weight_decay)
        (value, logits), (v, g_a) = jax.value_and_grad(val_loss, argnums=(0, 1), has_aux=True)(w_virtual, arch)
        eps = 0.01 / optax.tree.norm(v)

        def train_grad_a(sign):
            shifted = jax.tree.map(lambda w, v_: w + sign * eps * v_, state.params, v)
            return jax.grad(lambda a: loss(shifted, state.batch_stats, a, train_batch, k_train, state.step)[0])(arch)
        g_plus, g_minus = train_grad_a(1.0), train_grad_a(-1.0)
        g = jax.tree.map(lambda ga, gp, gm: ga - lr * (gp - gm) / (2 * eps), g_a, g_plus, g_minus)
        return (value, logits), g
    raise JaxnasError(f"unknown search order {order!r}; choose one of {', '.join(ORDERS)}")


def make_step(net, relaxation: Relaxation, w_tx, a_tx, schedule: Callable, *, order: str = 'first',
              momentum: float = 0.9, weight_decay: float = 3e-4, penalty_weight: float = 1.0,
              augment: Optional[Callable] = None, fuse_phases: bool = True,
              single_level: bool = False, cost=None, compute_dtype=jnp.float32) -> Callable:
    """The bilevel step, un-jitted (jit it once, donating ``state``).

    ``compute_dtype``: the forward and backward passes' dtype (:func:`make_loss`).

    With ``order='first'`` and ``fuse_phases`` the two phases run as a ``lax.scan`` of
    length 2 over (validation batch, training batch) whose body takes the gradient with
    respect to both weights and architecture and applies one of the two updates
    (``lax.cond``). XLA then compiles the supernet's forward and backward pass once
    instead of twice, which halves compile time, for the cost of the unused weight
    gradient in the architecture phase. The result is the same update sequence.

    ``single_level`` (SNAS, Xie et al., ICLR 2019): one gradient of the training loss on the
    training batch with respect to both weights and architecture, both updated from it
    (the architecture with its penalty); the validation batch only gives the reported
    ``val_loss`` / ``val_acc`` (a forward pass that does not change the state).

    ``cost`` (a :class:`jaxnas.costs.objective.CostTerm`): the architecture update descends
    the cost form of the architecture loss (cross-entropy and expected hardware cost,
    :func:`jaxnas.costs.objective.combine`), with the forward pass's key and step (GDAS's
    cost is its sample's); the metrics add ``expected_cost`` and ``arch_loss``.
    """
    if order not in ORDERS:
        raise JaxnasError(f"unknown search order {order!r}; choose one of {', '.join(ORDERS)}")
    if single_level and order != 'first':
        raise JaxnasError(f'a single-level search has no hypergradient: search.order={order!r} needs a bilevel '
                          "relaxation (e.g. relaxation.kwargs.single_level=False); use search.order='first'")
    loss = make_loss(net, relaxation, compute_dtype)

    def arch_update(arch, a_opt, g_a, loss_value, key, step):
        arch_loss, g_a, expected = costs_objective.combine(cost, arch, key, step, loss_value, g_a)
        penalty, g_pen = jax.value_and_grad(relaxation.penalty)(arch)
        g_a = jax.tree.map(lambda g, p: g + penalty_weight * p, g_a, g_pen)
        a_updates, new_a_opt = a_tx.update(g_a, a_opt, arch)
        new_arch, norm = optax.apply_updates(arch, a_updates), optax.tree.norm(g_a)
        ok = train.all_finite(arch_loss, penalty, norm, new_arch, new_a_opt)
        new_arch, new_a_opt = train.keep_if(ok, (new_arch, new_a_opt), (arch, a_opt))
        return new_arch, new_a_opt, penalty, norm, ok, {'expected_cost': expected, 'arch_loss': arch_loss}

    def cost_metrics(info):
        return info if cost is not None else {}

    def weight_update(params, batch_stats, w_opt, loss_value, new_stats, g_w):
        w_updates, new_w_opt = w_tx.update(g_w, w_opt, params)
        new_params, norm = optax.apply_updates(params, w_updates), optax.tree.norm(g_w)
        ok = train.all_finite(loss_value, norm, new_params, new_stats)
        return (*train.keep_if(ok, (new_params, new_stats, new_w_opt), (params, batch_stats, w_opt)), norm, ok)

    def skip_metrics(state, ok_arch, ok_weights):
        skips = train.count_skips(state.skips, ok_arch & ok_weights)
        return skips, {'nonfinite_arch': 1.0 - ok_arch.astype(jnp.float32),
                       'nonfinite_weights': 1.0 - ok_weights.astype(jnp.float32),
                       'consecutive_skips': skips.consecutive}

    def keys_and_batches(state, train_batch, val_batch):
        key = jax.random.fold_in(state.key, state.step)
        k_aug_t, k_aug_v, k_train, k_val = jax.random.split(key, 4)
        if augment is not None:
            train_batch = (augment(k_aug_t, train_batch[0]), train_batch[1])
            val_batch = (augment(k_aug_v, val_batch[0]), val_batch[1])
        return k_train, k_val, train_batch, val_batch

    def fused_step(state: SearchState, train_batch, val_batch):
        k_train, k_val, train_batch, val_batch = keys_and_batches(state, train_batch, val_batch)
        batches = jax.tree.map(lambda v, t: jnp.stack([v, t]), val_batch, train_batch)

        def phase(carry, inputs):
            params, batch_stats, arch, w_opt, a_opt = carry
            is_weight_phase, batch, key = inputs
            (value, (new_stats, logits)), (g_w, g_a) = jax.value_and_grad(loss, argnums=(0, 2), has_aux=True)(
                params, batch_stats, arch, batch, key, state.step)

            def update_arch(_):
                new_arch, new_a_opt, penalty, norm, ok, info = arch_update(arch, a_opt, g_a, value, key, state.step)
                return (params, batch_stats, new_arch, w_opt, new_a_opt), penalty, norm, ok, info

            def update_weights(_):
                new_params, new_batch_stats, new_w_opt, norm, ok = weight_update(
                    params, batch_stats, w_opt, value, new_stats, g_w)
                zero = jnp.zeros((), jnp.float32)
                return ((new_params, new_batch_stats, arch, new_w_opt, a_opt),
                        zero, norm, ok, {'expected_cost': zero, 'arch_loss': zero})

            carry, penalty, norm, ok, info = jax.lax.cond(is_weight_phase, update_weights, update_arch, None)
            return carry, (value, logits, penalty, norm, ok, info)

        carry = (state.params, state.batch_stats, state.arch, state.w_opt, state.a_opt)
        (params, batch_stats, arch, w_opt, a_opt), (values, logits, penalty, norms, oks, info) = jax.lax.scan(
            phase, carry, (jnp.array([False, True]), batches, jnp.stack([k_val, k_train])))
        skips, skip_info = skip_metrics(state, oks[0], oks[1])
        metrics = {
            'train_loss': values[1], 'train_acc': train.accuracy(logits[1], train_batch[1]),
            'val_loss': values[0], 'val_acc': train.accuracy(logits[0], val_batch[1]),
            'penalty': penalty[0], 'lr': schedule(state.step), 'w_grad_norm': norms[1], 'a_grad_norm': norms[0],
            **skip_info, **cost_metrics({k: v[0] for k, v in info.items()}),
        }
        return SearchState(state.step + 1, params, batch_stats, arch, w_opt, a_opt, state.key, skips), metrics

    def step(state: SearchState, train_batch, val_batch):
        k_train, k_val, train_batch, val_batch = keys_and_batches(state, train_batch, val_batch)
        lr = schedule(state.step)

        # Architecture step on the validation batch.
        (val_loss, val_logits), g_a = hypergradient(order, loss, state, state.arch, train_batch, val_batch,
                                                    k_train, k_val, lr, momentum, weight_decay)
        arch, a_opt, penalty, a_norm, ok_arch, info = arch_update(state.arch, state.a_opt, g_a, val_loss, k_val,
                                                                  state.step)

        # Weight step on the training batch, with the updated architecture.
        (train_loss, (batch_stats, train_logits)), g_w = jax.value_and_grad(loss, has_aux=True)(
            state.params, state.batch_stats, arch, train_batch, k_train, state.step)
        params, batch_stats, w_opt, w_norm, ok_weights = weight_update(
            state.params, state.batch_stats, state.w_opt, train_loss, batch_stats, g_w)
        skips, skip_info = skip_metrics(state, ok_arch, ok_weights)

        metrics = {
            'train_loss': train_loss, 'train_acc': train.accuracy(train_logits, train_batch[1]),
            'val_loss': val_loss, 'val_acc': train.accuracy(val_logits, val_batch[1]),
            'penalty': penalty, 'lr': lr, 'w_grad_norm': w_norm,
            'a_grad_norm': a_norm, **skip_info, **cost_metrics(info),
        }
        return SearchState(state.step + 1, params, batch_stats, arch, w_opt, a_opt, state.key, skips), metrics

    def single_level_step(state: SearchState, train_batch, val_batch):
        k_train, k_val, train_batch, val_batch = keys_and_batches(state, train_batch, val_batch)
        (train_loss, (new_stats, train_logits)), (g_w, g_a) = jax.value_and_grad(
            loss, argnums=(0, 2), has_aux=True)(state.params, state.batch_stats, state.arch, train_batch, k_train,
                                                state.step)
        arch, a_opt, penalty, a_norm, ok_arch, info = arch_update(state.arch, state.a_opt, g_a, train_loss, k_train,
                                                                  state.step)
        params, batch_stats, w_opt, w_norm, ok_weights = weight_update(
            state.params, state.batch_stats, state.w_opt, train_loss, new_stats, g_w)
        skips, skip_info = skip_metrics(state, ok_arch, ok_weights)
        val_loss, (_, val_logits) = loss(state.params, state.batch_stats, state.arch, val_batch, k_val, state.step)
        metrics = {
            'train_loss': train_loss, 'train_acc': train.accuracy(train_logits, train_batch[1]),
            'val_loss': val_loss, 'val_acc': train.accuracy(val_logits, val_batch[1]),
            'penalty': penalty, 'lr': schedule(state.step), 'w_grad_norm': w_norm,
            'a_grad_norm': a_norm, **skip_info, **cost_metrics(info),
        }
        return SearchState(state.step + 1, params, batch_stats, arch, w_opt, a_opt, state.key, skips), metrics

    if single_level:
        return single_level_step
    return fused_step if (order == 'first' and fuse_phases) else step


def make_eval(net) -> Callable:
    """``eval(params, batch_stats, mix, x, y, mask) -> {'loss': sum, 'correct': count}``
    over the examples with ``mask`` 1 (:func:`jaxnas.train.masked_sums`), inference mode
    (running statistics), with the mixing weights ``mix`` an input (a relaxation's
    ``normalized`` weights, or a genotype's one-hot path: :mod:`jaxnas.supernet_metric`),
    so one compiled program serves every mix."""
    def evaluate(params, batch_stats, mix, x, y, mask):
        logits = net.apply({'params': params, 'batch_stats': batch_stats}, x, mix, train=False)
        return train.masked_sums(logits, y, mask)
    return evaluate


def top_eigenvalue(hvp: Callable, v0, iters: int, which: str = 'max'):
    """An eigenvalue of the symmetric operator ``hvp`` (pytree -> pytree) by power iteration
    from ``v0``, with its sign (the Rayleigh quotient ``v . Hv`` of the last unit iterate).

    ``which='magnitude'``: the dominant eigenvalue (largest ``|lambda|``), ``iters``
    iterations. ``which='max'``: the largest eigenvalue ``lambda_max``, as Zela et al.'s
    ``max(eigvals(H))``: if the dominant one after ``iters`` iterations is negative,
    ``iters`` more iterations from ``v0`` on the shifted ``H - lambda_dom I`` (whose
    dominant eigenvalue is ``lambda_max - lambda_dom >= 0``) give ``lambda_max``. One
    ``hvp`` call site (one compiled body).
    """
    if which not in ('max', 'magnitude'):
        raise JaxnasError(f"unknown eigenvalue {which!r}; choose 'max' or 'magnitude'")
    dot = lambda a, b: sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    v0 = jax.tree.map(lambda a: a / optax.tree.norm(v0), v0)

    def body(carry):
        i, v, _, shift, total = carry
        hv = hvp(v)
        lam = dot(v, hv)
        w = jax.tree.map(lambda h, a: h - shift * a, hv, v)
        norm = optax.tree.norm(w)
        v_next = jax.tree.map(lambda a: a / jnp.maximum(norm, 1e-12), w)
        switch = (i == iters - 1) & (lam < 0) & (which == 'max')
        v_next = jax.tree.map(lambda a, b: jnp.where(switch, a, b), v0, v_next)
        return (i + 1, v_next, lam, jnp.where(switch, lam, shift), jnp.where(switch, 2 * iters, total))

    zero = jnp.zeros((), jnp.float32)
    carry = (jnp.zeros((), jnp.int32), v0, zero, zero, jnp.asarray(iters, jnp.int32))
    return jax.lax.while_loop(lambda c: c[0] < c[4], body, carry)[2]


def make_hessian_eigenvalue(net, relaxation: Relaxation, iters: int = 20, which: str = 'max') -> Callable:
    """``eig(params, batch_stats, arch, x, y, key) -> lambda``: an eigenvalue of the Hessian of
    the validation loss with respect to the architecture parameters (Zela et al., ICLR
    2020, use its largest eigenvalue to detect DARTS collapse).

    Power iteration on exact Hessian-vector products (forward-over-reverse autodiff),
    with the relaxation's deterministic ``normalized`` weights and batch statistics
    (training-mode BatchNorm, as in the search's architecture step); see
    :func:`top_eigenvalue` for ``which`` (default ``'max'``, Zela et al.'s
    ``max(eigvals(H))``, signed). ``x``, ``y``: one batch ``(B, ...)``, ``(B,)``, or
    stacked batches ``(n, B, ...)``, ``(n, B)`` whose mean loss is used (each batch with
    its own BatchNorm statistics, as n architecture steps would see them).
    """
    def batch_loss(arch, params, batch_stats, x, y):
        logits, _ = net.apply({'params': params, 'batch_stats': batch_stats}, x, relaxation.normalized(arch),
                              train=True, mutable=['batch_stats'])
        return train.cross_entropy(logits, y)

    def val_loss(arch, params, batch_stats, x, y):
        if y.ndim == 1:
            return batch_loss(arch, params, batch_stats, x, y)
        return jnp.mean(jax.lax.map(lambda b: batch_loss(arch, params, batch_stats, *b), (x, y)))

    def eig(params, batch_stats, arch, x, y, key):
        grad = lambda a: jax.grad(val_loss)(a, params, batch_stats, x, y)
        hvp = lambda v: jax.jvp(grad, (arch,), (v,))[1]
        leaves, treedef = jax.tree.flatten(arch)
        keys = jax.random.split(key, len(leaves))
        v = jax.tree.unflatten(treedef, [jax.random.normal(k, l.shape, l.dtype) for k, l in zip(keys, leaves)])
        return top_eigenvalue(hvp, v, iters, which)
    return eig
