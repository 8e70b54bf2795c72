"""The relaxation registry: every entry checked for the contract, then method specifics."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import relax, spaces
from jaxnas.errors import JaxnasError
from jaxnas.spaces import darts

SPACES = {name: spaces.get(name) for name in spaces.names()}
STOCHASTIC = {'gdas', 'snas', 'drnas', 'random_path'}
NO_ARCH_GRADIENT = {'random_path'}


def _setup(name, space):
    r = relax.make_relaxation(name, space=space, total_steps=50)
    logits = r.init(jax.random.PRNGKey(0), space.arch_shapes)
    # spread the logits so the relaxed weights are far from uniform
    logits = {k: v * 1000.0 for k, v in logits.items()}
    return r, logits


@pytest.mark.parametrize('space_name', list(SPACES))
@pytest.mark.parametrize('name', list(relax.RELAXATIONS))
def test_registry_contract(name, space_name):
    space = SPACES[space_name]
    r, logits = _setup(name, space)
    assert r.mode in relax.MODES
    mix = r.weights(logits, jax.random.PRNGKey(1), 10)
    norm = r.normalized(logits)
    assert set(mix) == set(norm) == set(space.arch_shapes)
    for k, shape in space.arch_shapes.items():
        assert mix[k].shape == norm[k].shape == shape
        m, n = np.asarray(mix[k]), np.asarray(norm[k])
        assert np.isfinite(m).all() and (m >= 0).all() and (n >= 0).all()
        if name == 'fairdarts':                      # independent sigmoids
            assert (n < 1).all() and not np.allclose(n.sum(-1), 1)
        elif name == 'pcdarts':                      # op softmax x edge softmax over each node's edges
            per_node = np.bincount(space.edge_targets, weights=n.sum(-1))
            np.testing.assert_allclose(per_node[np.unique(space.edge_targets)], 1.0, rtol=1e-5)
        else:
            np.testing.assert_allclose(m.sum(-1), 1.0, rtol=1e-5)
            np.testing.assert_allclose(n.sum(-1), 1.0, rtol=1e-5)
    # determinism for a fixed key; a new key resamples the stochastic ones
    again = r.weights(logits, jax.random.PRNGKey(1), 10)
    assert all(np.array_equal(mix[k], again[k]) for k in mix)
    other = r.weights(logits, jax.random.PRNGKey(2), 10)
    assert any(not np.array_equal(mix[k], other[k]) for k in mix) == (name in STOCHASTIC)
    # gradients to every architecture parameter are finite (and not all zero)
    target = {k: jax.random.normal(jax.random.PRNGKey(3), s) for k, s in space.arch_shapes.items()}
    g = jax.grad(lambda a: sum(jnp.sum(w * target[k]) for k, w in r.weights(a, jax.random.PRNGKey(1), 10).items())
                 + r.penalty(a))(logits)
    assert set(g) == set(logits)
    assert all(np.isfinite(np.asarray(v)).all() for v in g.values())
    total = sum(float(jnp.abs(v).sum()) for v in g.values())
    assert (total == 0) == (name in NO_ARCH_GRADIENT)
    assert np.isfinite(float(r.penalty(logits)))


@pytest.mark.parametrize('name', ['gdas', 'random_path'])
def test_single_path_relaxations_are_one_hot(name):
    r, logits = _setup(name, darts.SPACE)
    mix = r.weights(logits, jax.random.PRNGKey(4), 0)
    for m in mix.values():
        m = np.asarray(m)
        np.testing.assert_allclose(np.sort(m, -1)[:, -1], 1.0, rtol=1e-6)
        np.testing.assert_allclose(np.sort(m, -1)[:, :-1], 0.0, atol=1e-6)
    assert r.mode == 'single_path'


def test_gdas_temperature_and_straight_through():
    r = relax.make_relaxation('gdas', total_steps=11)
    logits = {'normal': jnp.array([[0.0, 0.3, -0.2]])}
    # straight-through: the hard sample's gradient is the soft sample's gradient
    g_hard = jax.grad(lambda a: r.weights(a, jax.random.PRNGKey(0), 0)['normal'][0, 1])(logits)['normal']
    soft = lambda a: relax.gumbel_softmax(a['normal'], jax.random.split(jax.random.PRNGKey(0), 1)[0],
                                          10.0, hard=False)[0, 1]
    np.testing.assert_allclose(g_hard, jax.grad(soft)(logits)['normal'], rtol=1e-5, atol=1e-8)
    tau = relax.linear_schedule(10.0, 0.1, 11)
    np.testing.assert_allclose([float(tau(s)) for s in (0, 5, 10, 20)], [10.0, 5.05, 0.1, 0.1], rtol=1e-5)


def test_gumbel_resamples_non_finite_noise():
    key = jax.random.PRNGKey(0)
    first = jax.random.fold_in(key, 0)

    def noise(k, shape):  # the first draw is infinite
        bad = jnp.all(jax.random.key_data(k) == jax.random.key_data(first))
        return jnp.where(bad, jnp.inf, jax.random.gumbel(k, shape))

    p = relax.gumbel_softmax(jnp.zeros((2, 4)), key, 1.0, hard=True, noise=noise)
    assert np.isfinite(np.asarray(p)).all()
    np.testing.assert_allclose(np.asarray(p).sum(-1), 1.0)
    bad = relax.gumbel_softmax(jnp.zeros((2, 4)), key, 1.0, hard=True, max_tries=0, noise=noise)
    assert not np.isfinite(np.asarray(bad)).all()


def test_snas_temperature_anneals_geometrically():
    tau = relax.exponential_schedule(1.0, 0.01, 3)
    np.testing.assert_allclose([float(tau(s)) for s in range(3)], [1.0, 0.1, 0.01], rtol=1e-5)


def test_drnas_kl_penalty_is_zero_at_the_prior_and_positive_elsewhere():
    r = relax.make_relaxation('drnas', prior=1.0, reg_scale=1.0)
    at_prior = {'normal': jnp.zeros((3, 4))}           # elu(0) + 1 = 1 = prior
    assert float(r.penalty(at_prior)) == pytest.approx(0.0, abs=1e-5)
    assert float(r.penalty({'normal': jnp.ones((3, 4))})) > 0
    l2 = relax.make_relaxation('drnas', reg='l2', reg_scale=0.5)
    # DrNAS's code: weight decay of the logits toward 0 (concentration 1), reg_scale / 2 * ||a||^2
    assert float(l2.penalty(at_prior)) == 0.0
    assert float(l2.penalty({'normal': jnp.ones((3, 4))})) == pytest.approx(0.5 * 0.5 * 12)


def test_fairdarts_zero_one_loss_pushes_weights_to_zero_or_one():
    r = relax.make_relaxation('fairdarts', zero_one_weight=10.0)
    assert float(r.penalty({'normal': jnp.zeros((2, 2))})) == pytest.approx(0.0)
    extreme = float(r.penalty({'normal': jnp.full((2, 2), 20.0)}))
    assert extreme == pytest.approx(-10.0 * 0.25, rel=1e-4)
    g = jax.grad(r.penalty)({'normal': jnp.array([[0.5, -0.5]])})['normal']
    assert float(g[0, 0]) < 0 < float(g[0, 1])          # descent moves away from sigmoid = 0.5
    assert r.threshold == 0.85


def test_pcdarts_edge_weights_enter_the_derivation():
    r = relax.make_relaxation('pcdarts', space=darts.SPACE, k=2)
    logits = r.init(jax.random.PRNGKey(0), darts.ARCH_SHAPES)
    assert logits['normal_beta'].shape == (darts.NUM_EDGES,) and r.partial_channels == 2
    # node 0 has edges 0 and 1; both prefer sep_conv_3x3 equally, beta decides
    conv = darts.PRIMITIVES.index('sep_conv_3x3')
    logits['normal'] = logits['normal'].at[:, conv].set(5.0)
    logits['normal_beta'] = logits['normal_beta'].at[1].set(3.0)
    g = darts.derive(jax.tree.map(np.asarray, r.normalized(logits)))
    assert g.normal[0] == ('sep_conv_3x3', 1)


def test_entropy():
    assert relax.entropy({'a': np.full((3, 4), 0.25)}) == pytest.approx(np.log(4))
    assert relax.entropy({'a': np.eye(4)}) == pytest.approx(0.0, abs=1e-9)


def test_registry_errors():
    with pytest.raises(JaxnasError, match="unknown relaxation 'enas'"):
        relax.make_relaxation('enas')
    with pytest.raises(JaxnasError, match="bad arguments for relaxation 'darts'"):
        relax.make_relaxation('darts', tau=3)
    with pytest.raises(JaxnasError, match='temperature must be > 0'):
        relax.make_relaxation('darts', temperature=0)
    with pytest.raises(JaxnasError, match="drnas reg must be 'kl' or 'l2'"):
        relax.make_relaxation('drnas', reg='l1')
    with pytest.raises(JaxnasError, match='pcdarts k must be an integer >= 1'):
        relax.make_relaxation('pcdarts', k=0)


@pytest.mark.parametrize('name', list(relax.RELAXATIONS))
def test_op_mask_gives_disallowed_ops_no_weight_and_no_sample(name):
    """A space's op mask (mbconv: no identity on a layer that changes shape): every
    relaxation's weights and normalized weights are 0 there, rows stay normalised over the
    allowed ops, and gradients stay finite."""
    space = spaces.get('mbconv')
    assert space.op_mask is not None
    r = relax.make_relaxation(name, space=space, total_steps=50)
    logits = r.init(jax.random.PRNGKey(0), space.arch_shapes)
    cell = space.cell_types[0]
    forbidden = ~np.asarray(space.op_mask[cell])
    assert forbidden.any()
    logits[cell] = logits[cell].at[np.nonzero(forbidden)].set(5.0)   # the disallowed ops look best
    for step, key in enumerate(jax.random.split(jax.random.PRNGKey(1), 8)):
        for w in (r.weights(logits, key, step)[cell], r.normalized(logits)[cell]):
            w = np.asarray(w)
            assert np.isfinite(w).all() and (w[forbidden] == 0).all()
            if name not in ('fairdarts', 'pcdarts'):
                np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)
    loss = lambda a: jnp.sum(r.weights(a, jax.random.PRNGKey(3), 1)[cell] * jnp.arange(7.0)) + r.penalty(a)
    grads = jax.grad(loss)(logits)
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))
