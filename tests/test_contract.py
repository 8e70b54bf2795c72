"""The search-network contract over every registered space x execution mode x relaxation.

Every space's search network is built through its :class:`~jaxnas.spaces.base.SearchSpace`
(``search_network(model, num_classes, mode=..., partial_channels=...)``) on tiny shapes,
and its edges run through the shared execution modes (:mod:`jaxnas.ops.modes`):

- every mode gives logits of the right shape and keeps the BatchNorm-statistics tree;
- ``single_path`` equals ``dense`` for a one-hot mix (same variables; only the chosen
  ops' statistics move, to the dense values);
- ``partial_channel`` with ``k = 1`` equals ``dense``;
- the architecture gradient of every relaxation reaches every logit its weights depend on.

Compile count: one jitted ``(logits, statistics, d loss / d mix)`` function per (space,
network); the mode equalities are properties of the network alone (checked once per
space), and the gradient test composes that function's mix gradient with the
relaxation's own VJP (``d loss / d logits = J_weights^T . d loss / d mix``, the chain rule
autodiff applies), so a relaxation costs no network compile of its own.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_tiny_config

from jaxnas import ops, relax, spaces
from jaxnas.nn import init_variables
from jaxnas.ops.modes import MODES

B, SIZE, CLASSES = 2, 8, 3
SPACES = spaces.names()
RELAXATIONS = tuple(relax.RELAXATIONS)


def _relaxation(relaxation: str, space):
    return relax.make_relaxation(relaxation, space=space, total_steps=10)


@functools.cache
def _partial_k(name: str) -> int:
    """The largest ``k`` a registered partial-channel relaxation uses (2 if none does)."""
    space = spaces.get(name)
    ks = [r.partial_channels for r in (_relaxation(n, space) for n in RELAXATIONS) if r.mode == 'partial_channel']
    return max(ks + [2])


class Setup:
    """One space on tiny shapes: its networks, an input, variables and mixes."""

    def __init__(self, name: str):
        self.space = spaces.get(name)
        self.model = make_tiny_config(**{'space': name, 'model.channels': 4, 'model.cells_per_stage': 1}).model
        self.x = jax.random.normal(jax.random.key(0), (B, SIZE, SIZE, 1))
        self.net('dense')   # a space may register its ops when its network is first built
        # soft weights whose argmax is never `none`: every single-path edge has an output
        favour = _without_none(self.space, jax.random.key(4))
        self.soft = {c: jax.nn.softmax(jax.random.normal(jax.random.fold_in(jax.random.key(1), i), shape)
                                       + 3.0 * favour[c], -1)
                     for i, (c, shape) in enumerate(sorted(self.space.arch_shapes.items()))}
        self.dense_variables = init_variables(self.net('dense'), 0, self.x, self.soft, train=True)
        self._partial = {}

    def net(self, mode: str, k: int = 1):
        return self.space.search_network(self.model, CLASSES, mode=mode, partial_channels=k)

    def variables(self, mode: str, k: int = 1):
        """Dense and single-path share the dense variables; partial channel with ``k > 1``
        builds its ops with ``C / k`` channels, so it has variables of its own."""
        if mode == 'partial_channel' and k > 1:
            if k not in self._partial:
                self._partial[k] = init_variables(self.net(mode, k), 0, self.x, self.soft, train=True)
            return self._partial[k]
        return self.dense_variables


@functools.cache
def setup(name: str) -> Setup:
    return Setup(name)


@functools.partial(jax.jit, static_argnums=0)
def forward(net, variables, x, mix):
    """Logits, the new BatchNorm statistics and the gradient of a cross-entropy w.r.t. the mix."""
    labels = jnp.arange(x.shape[0]) % CLASSES

    def loss(mix):
        logits, new = net.apply(variables, x, mix, train=True, mutable=['batch_stats'])
        nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1).mean()
        return nll, (logits, new['batch_stats'])

    (_, (logits, stats)), g_mix = jax.value_and_grad(loss, has_aux=True)(mix)
    return logits, stats, g_mix


def _mode_k(setup: Setup, mode: str) -> int:
    return _partial_k(setup.space.name) if mode == 'partial_channel' else 1


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('name', SPACES)
def test_every_mode_gives_logits_and_keeps_the_statistics_tree(name, mode):
    s = setup(name)
    k = _mode_k(s, mode)
    variables = s.variables(mode, k)
    logits, stats, g_mix = forward(s.net(mode, k), variables, s.x, s.soft)
    assert logits.shape == (B, CLASSES) and bool(jnp.all(jnp.isfinite(logits)))
    assert jax.tree.structure(stats) == jax.tree.structure(variables['batch_stats'])
    for cell, g in g_mix.items():
        assert g.shape == s.space.arch_shapes[cell] and bool(jnp.all(jnp.isfinite(g)))
        # the supernet passes gradient to every edge (some op of each row)
        assert bool(jnp.all(jnp.any(g != 0, axis=-1))), cell


def _cycling_one_hot(space) -> dict:
    """A one-hot mix whose rows cycle through the ops, so every op runs on some edge of
    every cell type (each stride)."""
    mix = {}
    for i, (cell, (E, P)) in enumerate(sorted(space.arch_shapes.items())):
        mix[cell] = jax.nn.one_hot((jnp.arange(E) + i) % P, P)
    return mix


@pytest.mark.parametrize('name', SPACES)
def test_single_path_equals_dense_for_a_one_hot_mix(name):
    s = setup(name)
    mix = _cycling_one_hot(s.space)
    old = s.dense_variables['batch_stats']
    out_d, stats_d, _ = forward(s.net('dense'), s.dense_variables, s.x, mix)
    out_s, stats_s, _ = forward(s.net('single_path'), s.dense_variables, s.x, mix)
    np.testing.assert_allclose(out_s, out_d, rtol=1e-5, atol=1e-5)
    moved = False
    for o, d, sp in zip(*(jax.tree.leaves(t) for t in (old, stats_d, stats_s))):
        close = lambda a, b: np.isclose(a, b, rtol=1e-5, atol=1e-6)
        # single path moves only the chosen ops' statistics, to the dense values
        assert np.all(close(sp, d) | close(sp, o))
        moved |= not np.array_equal(sp, o)
    assert moved


@pytest.mark.parametrize('name', SPACES)
def test_partial_channel_with_k1_equals_dense(name):
    s = setup(name)
    out_d, stats_d, g_d = forward(s.net('dense'), s.dense_variables, s.x, s.soft)
    out_p, stats_p, g_p = forward(s.net('partial_channel', 1), s.dense_variables, s.x, s.soft)
    for a, b in zip(jax.tree.leaves((out_p, stats_p, g_p)), jax.tree.leaves((out_d, stats_d, g_d))):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def _without_none(space, key) -> dict:
    """A one-hot mix in which no edge picks a `none` (zero-output) op, so that every edge
    of a single-path network passes gradient: a sampled genotype's choices (valid where
    a space excludes ops), and a random op with an output on the rows it leaves empty."""
    live = np.array([ops.get(op, space.name).family is not ops.ZERO for op in space.primitives])
    for i in range(100):
        k1, k2 = jax.random.split(jax.random.fold_in(key, i))
        mix = {c: np.asarray(m, np.float32) for c, m in space.one_hot(space.sample(k1)).items()}
        for j, c in enumerate(sorted(mix)):
            empty = mix[c].sum(-1) == 0
            pick = jax.random.choice(jax.random.fold_in(k2, j), np.flatnonzero(live), (int(empty.sum()),))
            mix[c][np.flatnonzero(empty), np.asarray(pick)] = 1.0
        if all(live[np.argmax(m, -1)].all() for m in mix.values()):
            return {c: jnp.asarray(m) for c, m in mix.items()}
    raise AssertionError('no sampled genotype without `none` edges')


@pytest.mark.parametrize('relaxation', RELAXATIONS)
@pytest.mark.parametrize('name', SPACES)
def test_gradients_reach_every_alpha(name, relaxation):
    """The architecture gradient (the network through the relaxation's weights, plus its
    penalty) is finite and nonzero for every logit the weights depend on; logits they do
    not depend on (a random path; PC-DARTS's edge weight of a node with one input edge)
    get exactly zero."""
    s = setup(name)
    r = _relaxation(relaxation, s.space)
    key = jax.random.key(2)
    logits = r.init(jax.random.key(3), dict(s.space.arch_shapes))
    if r.mode == 'single_path':   # make every edge pick an op with an output
        favour = _without_none(s.space, jax.random.key(4))
        logits = {c: a + 100.0 * favour[c] if c in favour else a for c, a in logits.items()}
    k = r.partial_channels if r.mode == 'partial_channel' else 1
    weights, pullback = jax.vjp(lambda a: r.weights(a, key, 0), logits)
    _, _, g_mix = forward(s.net(r.mode, k), s.variables(r.mode, k), s.x, weights)
    (g,) = pullback(g_mix)
    g = jax.tree.map(jnp.add, g, jax.grad(r.penalty)(logits))
    probe_cotangent = {c: jax.random.normal(jax.random.fold_in(key, i), w.shape) for i, (c, w) in
                       enumerate(sorted(weights.items()))}
    (depends,) = pullback(probe_cotangent)
    for name_, grad in g.items():
        grad, reach = np.asarray(grad), np.asarray(depends[name_]) != 0
        assert np.isfinite(grad).all(), name_
        assert (grad[reach] != 0).all(), (name_, np.argwhere((grad == 0) & reach)[:5])
        assert (grad[~reach] == 0).all(), name_
