"""Relaxations: how architecture logits become mixing weights.

A relaxation is a small NamedTuple of pure functions, in the style of an optax
``GradientTransformation``:

- ``init(key, shapes) -> logits``: the architecture parameters, a dict of arrays; the
  per-edge op logits of every cell type (``shapes``: name -> ``(edges, ops)``) and any
  extra parameters of the method (PC-DARTS edge weights ``beta``);
- ``weights(logits, key, step) -> mix``: the mixing weights of the training forward
  pass, one ``(edges, ops)`` array per cell type (may be stochastic; schedules such as a
  temperature are computed from ``step`` inside, so nothing recompiles per epoch);
- ``penalty(logits) -> scalar``: a regulariser added to the architecture loss;
- ``normalized(logits) -> weights``: deterministic weights for evaluating the supernet
  and deriving the genotype;
- ``mode``: the supernet execution mode the method needs (``dense``, ``single_path``
  or ``partial_channel``), ``partial_channels`` its K, and ``threshold`` the
  derivation threshold (FairDARTS);
- ``entropy(weights) -> float``: the logged entropy of the normalized weights
  (:func:`entropy` dispatches to it; ``None``: the mean entropy of each edge's
  renormalised row);
- ``arch_weight_decay``: the coupled weight decay of the architecture optimiser the method
  prescribes, overriding ``optim.a_weight_decay`` (``None``: the config's);
- ``single_level``: ``True`` if weights and architecture descend the same training loss
  on the same training batch (one gradient, both updates; no arch-val data);
- ``warmup_epochs``: epochs of weight training before the first architecture update
  (``None``: 30% of the search, rounded; see :func:`warmup_steps`);
- ``cost_weights(logits, key, step) -> weights``: the op distribution a hardware cost
  term takes its expectation under (:mod:`jaxnas.costs.objective`): the masked softmax of
  the op logits for darts, snas, pcdarts (edge weights ``beta`` left out) and fairdarts;
  the Dirichlet mean (the expectation of its sampled weights) for drnas -- both over the
  ops the space's derivation can pick (``SearchSpace.derive_excludes`` left out, e.g.
  DARTS's ``none``: the expected cost of the op each edge would derive to); for gdas the
  straight-through hard sample itself (``key``, ``step``: the forward pass's), whose
  forward value is the sampled op's cost; ``None`` (random_path): no architecture
  gradient, so no cost term.

Registered methods (:data:`RELAXATIONS`, built with :func:`make_relaxation`):

- ``darts``: softmax over the ops of each edge (Liu et al., ICLR 2019).
- ``gdas``: Gumbel-softmax sample, hard one-hot forward with straight-through
  gradient ``one_hot - stop_gradient(p) + p``; temperature linear from 10 to 0.1 over
  the search; resampled while the sample is not finite; single-path execution (Dong &
  Yang, CVPR 2019). How the non-selected ops' straight-through weights enter the cell is
  the space's (``MixedEdges.straight_through_rest``: on NAS-Bench-201 they are added as
  scalars, value 0 and gradient 1, as AutoDL's NB201 GDAS, so an edge that samples
  ``none`` still gets an architecture gradient).
- ``snas``: soft Gumbel-softmax sample with an exponentially annealed temperature
  (Xie et al., ICLR 2019); single-level by default (``single_level=True``), as the
  paper and its code: weights and architecture take one gradient of the same training
  loss on the same training batch. ``single_level=False`` runs it bilevel like DARTS.
- ``drnas``: mixing weights sampled from ``Dirichlet(elu(logits) + 1)`` with
  reparameterised (implicit) gradients (Chen et al., ICLR 2021). ``reg='kl'``: KL to a
  ``Dirichlet(prior)``, no architecture weight decay (DrNAS's code sets it to 0);
  ``reg='l2'``: ``reg_scale / 2 * ||logits||^2``, i.e. decay toward ``logits = 0``
  (concentration 1), DrNAS's Adam weight decay of ``reg_scale`` in place of the
  config's. Both set ``arch_weight_decay`` (``0.0``; a kwarg).
- ``pcdarts``: softmax op weights times edge normalisation ``softmax(beta)`` over the
  edges into each node, which also enters the derivation; partial-channel execution
  with ``k`` (Xu et al., ICLR 2020); the architecture is first updated after
  ``warmup_epochs`` of weight training (PC-DARTS: 15 of 50 epochs; default ``None``
  scales that to 30% of the search).
- ``fairdarts``: independent sigmoids with the zero-one loss
  ``-mean((sigmoid - 0.5)^2)`` (``zero_one='l2'``; ``'l1'``: ``-mean(|sigmoid - 0.5|)``,
  FairDARTS's ``TriSeparateLoss``) times ``zero_one_weight`` (10) as penalty, threshold
  0.85 (Chu et al., ECCV 2020). Logged entropy: the mean binary entropy of the sigmoids
  (they are independent, not a distribution over the ops). The reference search settings
  (architecture Adam 3e-3 with betas 0.9/0.999, weight lr 0.005 -> 0.001, batch 128) are
  config fields (``optim.a_lr``, ``optim.a_b1``, ``optim.w_lr``, ``data.batch_size``).
- ``random_path``: a uniformly sampled op per edge each step (no architecture
  gradient), single-path: trains a weight-sharing supernet as in random search with
  weight sharing (Li & Talwalkar, 2019) and SPOS.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.errors import JaxnasError
from jaxnas.ops.modes import MODES  # noqa: F401  (the execution modes a relaxation may ask for)


class Relaxation(NamedTuple):
    init: Callable
    weights: Callable
    penalty: Callable
    normalized: Callable
    mode: str = 'dense'
    partial_channels: int = 1
    threshold: Optional[float] = None
    entropy: Optional[Callable] = None
    arch_weight_decay: Optional[float] = None
    single_level: bool = False
    warmup_epochs: Optional[float] = 0
    cost_weights: Optional[Callable] = None


def warmup_steps(relaxation: Relaxation, epochs: int, steps_per_epoch: int) -> int:
    """Steps of weight training before the first architecture update: the relaxation's
    ``warmup_epochs`` (``None``: ``round(0.3 * epochs)``, PC-DARTS's 15 of 50), in steps."""
    w = relaxation.warmup_epochs
    w = round(0.3 * epochs) if w is None else w
    return int(round(w * steps_per_epoch))


def arch_weight_decay(relaxation: Relaxation, default: float) -> float:
    """The architecture optimiser's coupled weight decay: the relaxation's own, else ``default``
    (``optim.a_weight_decay``)."""
    return default if relaxation.arch_weight_decay is None else float(relaxation.arch_weight_decay)


def init_logits(key, shapes: dict, scale: float = 1e-3) -> dict:
    """``scale * N(0, 1)`` logits per cell type, as the DARTS reference code."""
    keys = jax.random.split(key, len(shapes))
    return {name: scale * jax.random.normal(k, tuple(shape), jnp.float32)
            for k, (name, shape) in zip(keys, sorted(shapes.items()))}


def _no_penalty(logits):
    return jnp.zeros((), jnp.float32)


def _cells(logits):
    """The per-cell op logits (extra method parameters such as ``beta`` excluded)."""
    return {k: v for k, v in logits.items() if not k.endswith('_beta')}


def _map(fn, logits):
    return {k: fn(v) for k, v in _cells(logits).items()}


def _keys(key, logits):
    names = sorted(_cells(logits))
    return dict(zip(names, jax.random.split(key, len(names))))


def _op_mask(space) -> Optional[dict]:
    """The space's allowed-op mask (cell -> bool ``(edges, ops)``), or ``None`` if every op
    is allowed on every edge (then no relaxation changes a single operation)."""
    mask = getattr(space, 'op_mask', None)
    return None if mask is None else {k: jnp.asarray(np.asarray(v, bool)) for k, v in mask.items()}


def _masked_logits(logits, mask):
    """Logits of disallowed ops at -1e9: softmax, Gumbel and sigmoid weights give them 0
    (and no gradient). ``mask=None`` returns ``logits`` itself."""
    if mask is None:
        return logits
    return {k: (jnp.where(mask[k], a, -1e9) if k in mask else a) for k, a in logits.items()}


def _check_positive(**values):
    for name, v in values.items():
        if not v > 0:
            raise JaxnasError(f'{name} must be > 0, got {v}')


def linear_schedule(start: float, end: float, total_steps: int) -> Callable:
    """``start`` at step 0 to ``end`` at the last step, linearly."""
    def value(step):
        frac = jnp.clip(jnp.asarray(step, jnp.float32) / max(total_steps - 1, 1), 0.0, 1.0)
        return start + (end - start) * frac
    return value


def exponential_schedule(start: float, end: float, total_steps: int) -> Callable:
    """``start`` at step 0 to ``end`` at the last step, geometrically."""
    lin = linear_schedule(np.log(start), np.log(end), total_steps)
    return lambda step: jnp.exp(lin(step))


def gumbel_softmax(logits, key, tau, hard: bool, max_tries: int = 10, noise: Callable = jax.random.gumbel):
    """A Gumbel-softmax sample over the last axis; ``hard``: one-hot with straight-through
    gradient. Redrawn (up to ``max_tries`` times) while the sample is not finite; draw
    ``i`` uses ``noise(fold_in(key, i), shape)``."""
    def sample(g, logits):
        p = jax.nn.softmax((jax.nn.log_softmax(logits, -1) + g) / tau, -1)
        if hard:
            one_hot = jax.nn.one_hot(jnp.argmax(p, -1), logits.shape[-1], dtype=p.dtype)
            p = one_hot - jax.lax.stop_gradient(p) + p
        return p

    def draw(i):
        return noise(jax.random.fold_in(key, i), logits.shape).astype(jnp.float32)

    # Only the noise is redrawn (no gradient flows through the loop), then the sample
    # is rebuilt differentiably from the accepted noise.
    frozen = jax.lax.stop_gradient(logits)

    def cond(carry):
        i, g = carry
        return (i < max_tries) & ~jnp.all(jnp.isfinite(sample(g, frozen)))

    def body(carry):
        i, _ = carry
        return i + 1, draw(i + 1)

    _, g = jax.lax.while_loop(cond, body, (jnp.zeros((), jnp.int32), draw(0)))
    p = sample(g, logits)
    return p


# --------------------------------------------------------------------------- methods

def softmax(temperature: float = 1.0, *, space=None, total_steps: int = 1) -> Relaxation:
    """DARTS: ``softmax(logits / temperature)`` over the ops of every edge."""
    del total_steps
    _check_positive(temperature=temperature)
    mask = _op_mask(space)

    def normalized(logits):
        return _map(lambda a: jax.nn.softmax(a / temperature, axis=-1), _masked_logits(logits, mask))

    def weights(logits, key, step):
        del key, step
        return normalized(logits)

    cost_mask = None if space is None else _cost_mask(space)

    def cost_weights(logits, key, step):
        return _map(lambda a: jax.nn.softmax(a / temperature, axis=-1), _masked_logits(logits, cost_mask))

    return Relaxation(init_logits, weights, _no_penalty, normalized, cost_weights=cost_weights)


def _softmax_weights(mask=None):
    return lambda logits: _map(lambda a: jax.nn.softmax(a, axis=-1), _masked_logits(logits, mask))


def _cost_mask(space) -> Optional[dict]:
    """The ops a derived genotype can hold on each edge: the op mask without the ops
    ``derive`` never picks (``SearchSpace.derive_excludes``); ``None``: every op."""
    mask = _op_mask(space)
    excluded = tuple(getattr(space, 'derive_excludes', ()) or ())
    if not excluded:
        return mask
    keep = np.array([p not in excluded for p in space.primitives])
    return {cell: jnp.asarray(keep[None, :] & (np.ones(shape, bool) if mask is None or cell not in mask
                                               else np.asarray(mask[cell])))
            for cell, shape in space.arch_shapes.items()}


def _softmax_cost(space=None):
    """``cost_weights``: the softmax of the op logits over the ops a derived genotype can
    hold (:func:`_cost_mask`; key and step unused)."""
    probs = _softmax_weights(None if space is None else _cost_mask(space))
    return lambda logits, key, step: probs(logits)


def _gumbel(tau: Callable, hard: bool, mode: str, mask=None, space=None) -> Relaxation:
    """Gumbel-softmax samples at temperature ``tau(step)``; softmax as normalized weights."""
    def weights(logits, key, step):
        keys = _keys(key, logits)
        return {k: gumbel_softmax(a, keys[k], tau(step), hard=hard)
                for k, a in _cells(_masked_logits(logits, mask)).items()}

    # GDAS: the straight-through sample (forward: the sampled op's cost); SNAS: the softmax.
    cost = weights if hard else _softmax_cost(space)
    return Relaxation(init_logits, weights, _no_penalty, _softmax_weights(mask), mode=mode, cost_weights=cost)


def gdas(tau_max: float = 10.0, tau_min: float = 0.1, *, space=None, total_steps: int = 1) -> Relaxation:
    """GDAS: hard Gumbel-softmax with straight-through gradient, single-path execution."""
    _check_positive(tau_max=tau_max, tau_min=tau_min)
    return _gumbel(linear_schedule(tau_max, tau_min, total_steps), hard=True, mode='single_path',
                   mask=_op_mask(space), space=space)


def snas(tau_max: float = 1.0, tau_min: float = 0.03, single_level: bool = True, *, space=None,
         total_steps: int = 1) -> Relaxation:
    """SNAS: soft Gumbel-softmax sample, temperature annealed geometrically.

    Single-level by default, as SNAS (Xie et al., ICLR 2019, Sec. 2.4, and its code): the
    weights and the architecture are updated from the gradient of the same training loss
    on the same training batch; the arch-val split only monitors the supernet (set
    ``data.train_portion=1`` to train on the whole training set, as the paper; the
    monitor then uses the test split). ``single_level=False``: bilevel like DARTS (the
    arch gradient on arch-val batches), the jaxnas behaviour before this option.
    """
    _check_positive(tau_max=tau_max, tau_min=tau_min)
    if not isinstance(single_level, bool):
        raise JaxnasError(f'snas single_level must be True or False, got {single_level!r}')
    return _gumbel(exponential_schedule(tau_max, tau_min, total_steps), hard=False, mode='dense',
                   mask=_op_mask(space), space=space)._replace(single_level=single_level)


def _dirichlet_kl(conc, prior, mask=None):
    """KL(Dir(conc) || Dir(prior)) per row of the last axis; with a ``mask``, of the
    Dirichlets over the allowed entries of each row only."""
    lg, dg = jax.scipy.special.gammaln, jax.scipy.special.digamma
    if mask is not None:
        m = mask.astype(conc.dtype)
        a0, b0 = (conc * m).sum(-1), (prior * m).sum(-1)
        return (lg(a0) - (lg(conc) * m).sum(-1) - lg(b0) + (lg(prior) * m).sum(-1)
                + ((conc - prior) * (dg(conc) - dg(a0)[..., None]) * m).sum(-1))
    a0 = conc.sum(-1)
    b0 = prior.sum(-1)
    return (lg(a0) - lg(conc).sum(-1) - lg(b0) + lg(prior).sum(-1)
            + ((conc - prior) * (dg(conc) - dg(a0)[..., None])).sum(-1))


def _masked_dirichlet(key, conc, mask):
    """A Dirichlet sample over the allowed entries of each row (0 elsewhere): normalised
    Gamma draws, reparameterised by jax's implicit Gamma gradients."""
    g = jax.random.gamma(key, conc) * mask.astype(conc.dtype)
    return g / g.sum(-1, keepdims=True)


def drnas(reg: str = 'kl', reg_scale: float = 1e-3, prior: float = 1.0, arch_weight_decay: float = 0.0, *,
          space=None, total_steps: int = 1) -> Relaxation:
    """DrNAS: Dirichlet mixing weights with concentration ``elu(logits) + 1``.

    As DrNAS's code (``architect.py``): ``reg='kl'`` adds ``reg_scale * KL(Dir(conc) ||
    Dir(prior))`` and the architecture optimiser has no weight decay; ``reg='l2'`` is
    its Adam weight decay ``reg_scale`` on the logits, here the penalty
    ``reg_scale / 2 * ||logits||^2`` (the same gradient ``reg_scale * logits``, a pull
    toward concentration 1), again with no other architecture weight decay.
    ``arch_weight_decay`` (default 0) replaces ``optim.a_weight_decay`` for this method.
    """
    del total_steps
    mask = _op_mask(space)
    if reg not in ('kl', 'l2'):
        raise JaxnasError(f"drnas reg must be 'kl' or 'l2', got {reg!r}")
    _check_positive(prior=prior)
    if reg_scale < 0:
        raise JaxnasError(f'reg_scale must be >= 0, got {reg_scale}')
    if not arch_weight_decay >= 0:
        raise JaxnasError(f'drnas arch_weight_decay must be >= 0, got {arch_weight_decay}')

    def concentration(a):
        return jax.nn.elu(a) + 1.0

    def allowed(k, conc):
        return conc if mask is None or k not in mask else conc * mask[k].astype(conc.dtype)

    def normalized(logits):
        return {k: allowed(k, concentration(a)) / allowed(k, concentration(a)).sum(-1, keepdims=True)
                for k, a in _cells(logits).items()}

    cost_mask = None if space is None else _cost_mask(space)

    def dirichlet_mean(logits):   # over the ops a derived genotype can hold
        def mean(k, a):
            c = concentration(a)
            c = c if cost_mask is None or k not in cost_mask else c * cost_mask[k].astype(c.dtype)
            return c / c.sum(-1, keepdims=True)
        return {k: mean(k, a) for k, a in _cells(logits).items()}

    def weights(logits, key, step):
        del step
        keys = _keys(key, logits)
        if mask is None:
            return {k: jax.random.dirichlet(keys[k], concentration(a)) for k, a in _cells(logits).items()}
        return {k: (_masked_dirichlet(keys[k], concentration(a), mask[k]) if k in mask
                    else jax.random.dirichlet(keys[k], concentration(a))) for k, a in _cells(logits).items()}

    def penalty(logits):
        total = jnp.zeros((), jnp.float32)
        for k, a in _cells(logits).items():
            conc = concentration(a)
            if reg == 'kl':
                total = total + _dirichlet_kl(conc, jnp.full_like(conc, prior), None if mask is None
                                              else mask.get(k)).sum()
            else:   # decay of the logits toward 0 (concentration 1), allowed entries only
                total = total + 0.5 * jnp.sum(jnp.square(allowed(k, jnp.ones_like(a)) * a))
        return reg_scale * total

    return Relaxation(init_logits, weights, penalty, normalized, arch_weight_decay=float(arch_weight_decay),
                      cost_weights=lambda logits, key, step: dirichlet_mean(logits))


def _segment_softmax(beta, targets):
    """Softmax of ``beta`` within each group of equal ``targets`` (edges into one node)."""
    targets = np.asarray(targets)
    out = jnp.zeros_like(beta)
    for t in np.unique(targets):
        idx = np.nonzero(targets == t)[0]
        out = out.at[idx].set(jax.nn.softmax(beta[idx]))
    return out


def pcdarts(k: int = 4, warmup_epochs: Optional[float] = None, *, space=None, total_steps: int = 1) -> Relaxation:
    """PC-DARTS: softmax op weights times normalised edge weights; partial channels ``k``.

    ``warmup_epochs``: epochs of weight training before the architecture is first updated
    (PC-DARTS's ``train_search.py``: 15 of 50); ``None`` (default) scales that to
    ``round(0.3 * search.epochs)``; 0 updates it from the first step.
    """
    del total_steps
    if not (isinstance(k, int) and k >= 1):
        raise JaxnasError(f'pcdarts k must be an integer >= 1, got {k!r}')
    if warmup_epochs is not None and (isinstance(warmup_epochs, bool) or not warmup_epochs >= 0):
        raise JaxnasError(f'pcdarts warmup_epochs must be >= 0 (or None: 30% of the search), got {warmup_epochs!r}')
    if space is None:
        raise JaxnasError('pcdarts normalises edges per target node: pass space=<a SearchSpace>')
    targets = space.edge_targets

    def init(key, shapes):
        k_a, k_b = jax.random.split(key)
        logits = init_logits(k_a, shapes)
        logits.update({f'{name}_beta': b[:, 0] for name, b in
                       init_logits(k_b, {n: (s[0], 1) for n, s in shapes.items()}).items()})
        return logits

    mask = _op_mask(space)

    def normalized(logits):
        ops = _masked_logits(_cells(logits), mask)
        return {name: jax.nn.softmax(a, -1) * _segment_softmax(logits[f'{name}_beta'], targets)[:, None]
                for name, a in ops.items()}

    def weights(logits, key, step):
        del key, step
        return normalized(logits)

    return Relaxation(init, weights, _no_penalty, normalized, mode='partial_channel', partial_channels=k,
                      warmup_epochs=warmup_epochs, cost_weights=_softmax_cost(space))


def fairdarts(zero_one_weight: float = 10.0, threshold: float = 0.85, zero_one: str = 'l2', *, space=None,
              total_steps: int = 1) -> Relaxation:
    """FairDARTS: independent sigmoids, zero-one loss, threshold derivation.

    ``zero_one``: ``'l2'`` (``-mean((sigmoid - 0.5)^2)``, FairDARTS's default
    ``ConvSeparateLoss``) or ``'l1'`` (``-mean(|sigmoid - 0.5|)``, ``TriSeparateLoss``);
    ``zero_one_weight`` is its ``aux_loss_weight``. Entropy: the mean binary entropy of
    the sigmoids (:func:`binary_entropy`).
    """
    del total_steps
    if not 0 < threshold < 1:
        raise JaxnasError(f'fairdarts threshold must be in (0, 1), got {threshold}')
    if zero_one not in ('l2', 'l1'):
        raise JaxnasError(f"fairdarts zero_one must be 'l2' or 'l1', got {zero_one!r}")
    distance = jnp.square if zero_one == 'l2' else jnp.abs
    mask = _op_mask(space)

    def normalized(logits):
        return _map(jax.nn.sigmoid, _masked_logits(logits, mask))

    def weights(logits, key, step):
        del key, step
        return normalized(logits)

    def penalty(logits):
        if mask is None:
            sig = jnp.concatenate([jax.nn.sigmoid(a).ravel() for a in _cells(logits).values()])
            return -zero_one_weight * jnp.mean(distance(sig - 0.5))
        terms = [(distance(jax.nn.sigmoid(a) - 0.5), mask.get(k, jnp.ones(a.shape, bool)))
                 for k, a in _cells(logits).items()]
        total = sum(jnp.sum(t * m) for t, m in terms)
        return -zero_one_weight * total / sum(int(np.asarray(m).sum()) for _, m in terms)

    np_mask = None if mask is None else {k: np.asarray(v) for k, v in mask.items()}
    return Relaxation(init_logits, weights, penalty, normalized, threshold=threshold,
                      entropy=lambda w: binary_entropy(w, np_mask), cost_weights=_softmax_cost(space))


def random_path(*, space=None, total_steps: int = 1) -> Relaxation:
    """A uniformly random op per edge each step (weight-sharing supernet training); with
    the space's op mask, uniform over each edge's allowed ops."""
    del total_steps
    mask = _op_mask(space)

    def weights(logits, key, step):
        del step
        keys = _keys(key, logits)
        if mask is None:
            return {k: jax.nn.one_hot(jax.random.randint(keys[k], a.shape[:-1], 0, a.shape[-1]), a.shape[-1])
                    for k, a in _cells(logits).items()}
        return {k: jax.nn.one_hot(jax.random.categorical(keys[k], jnp.where(mask[k], 0.0, -jnp.inf)), a.shape[-1])
                if k in mask else
                jax.nn.one_hot(jax.random.randint(keys[k], a.shape[:-1], 0, a.shape[-1]), a.shape[-1])
                for k, a in _cells(logits).items()}

    return Relaxation(init_logits, weights, _no_penalty, _softmax_weights(mask), mode='single_path')


RELAXATIONS = {
    'darts': softmax,
    'gdas': gdas,
    'snas': snas,
    'drnas': drnas,
    'pcdarts': pcdarts,
    'fairdarts': fairdarts,
    'random_path': random_path,
}


def make_relaxation(name: str, *, space=None, total_steps: int = 1, **kwargs) -> Relaxation:
    """Build a registered relaxation; unknown names or arguments give a one-line error.

    ``space`` is the :class:`~jaxnas.spaces.base.SearchSpace` (edge structure, for PC-DARTS) and
    ``total_steps`` the length of the search (temperature schedules).
    """
    if name not in RELAXATIONS:
        raise JaxnasError(f"unknown relaxation {name!r}; choose one of {', '.join(RELAXATIONS)}")
    try:
        return RELAXATIONS[name](space=space, total_steps=total_steps, **kwargs)
    except TypeError as e:
        raise JaxnasError(f'bad arguments for relaxation {name!r}: {e}') from None


def entropy(weights: dict, relaxation: Optional[Relaxation] = None) -> float:
    """The logged entropy (nats) of normalized weights: the ``relaxation``'s own
    (``Relaxation.entropy``, e.g. FairDARTS's binary entropy), else the mean entropy of
    the per-edge weights, each row renormalised to sum to one."""
    if relaxation is not None and relaxation.entropy is not None:
        return float(relaxation.entropy(weights))
    rows = np.concatenate([np.asarray(w, np.float64).reshape(-1, np.shape(w)[-1]) for w in weights.values()])
    p = rows / np.maximum(rows.sum(-1, keepdims=True), 1e-12)
    return float(np.mean(-(p * np.log(np.maximum(p, 1e-12))).sum(-1)))


def binary_entropy(weights: dict, mask: Optional[dict] = None) -> float:
    """Mean binary entropy (nats) ``-(p log p + (1 - p) log(1 - p))`` of independent
    probabilities ``p`` (FairDARTS's sigmoids), over the allowed entries of ``mask``."""
    values = []
    for k, w in weights.items():
        p = np.clip(np.asarray(w, np.float64), 1e-12, 1 - 1e-12)
        h = -(p * np.log(p) + (1 - p) * np.log1p(-p))
        values.append(h[np.asarray(mask[k], bool)] if mask is not None and k in mask else h.ravel())
    return float(np.mean(np.concatenate(values)))
