"""The bilevel step: hypergradients, fused phases, determinism."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import ToyMixed
from jaxnas import bilevel, relax, train


def _toy_state(seed=0, momentum_buffer=True):
    key = jax.random.PRNGKey(seed)
    k1, k2, k3, k4 = jax.random.split(key, 4)
    x_t, x_v = jax.random.normal(k1, (16, 5)), jax.random.normal(k2, (16, 5))
    y_t, y_v = jax.random.randint(k3, (16,), 0, 4), jax.random.randint(k4, (16,), 0, 4)
    arch = {'normal': 0.5 * jax.random.normal(key, (2, 3))}
    net = ToyMixed()
    variables = net.init(key, x_t, relax.softmax().normalized(arch))
    schedule = train.make_cosine_schedule(0.1, 0.001, 10, 5)
    w_tx = train.make_sgd(schedule)
    a_tx = bilevel.make_arch_optimizer()
    w_opt = w_tx.init(variables['params'])
    if momentum_buffer:  # a non-zero momentum buffer, so the virtual step's momentum term matters
        w_opt = optax.tree_utils.tree_set(
            w_opt, trace=jax.tree.map(lambda p: 0.3 * jnp.ones_like(p), variables['params']))
    state = bilevel.SearchState(jnp.zeros((), jnp.int32), variables['params'], variables['batch_stats'], arch,
                                w_opt, a_tx.init(arch), jax.random.PRNGKey(1))
    return net, state, (x_t, y_t), (x_v, y_v), (w_tx, a_tx, schedule)


def _hyper(order, net, state, train, val, lr=0.1):
    loss = bilevel.make_loss(net, relax.softmax())
    k = jax.random.PRNGKey(0)
    return bilevel.hypergradient(order, loss, state, state.arch, train, val, k, k, lr, 0.9, 3e-4)[1]


def test_exact_and_finite_difference_hypergradients_agree_and_second_order_term_is_not_zero():
    net, state, train, val, _ = _toy_state()
    lr = 1.0  # a large virtual step, so the second-order term is large
    exact = _hyper('second', net, state, train, val, lr)['normal']
    fd = _hyper('finite_difference', net, state, train, val, lr)['normal']
    # the first-order part at the virtual weights: grad_a L_val(w', a) with w' held fixed
    loss = bilevel.make_loss(net, relax.softmax())
    k = jax.random.PRNGKey(0)
    w_virtual = bilevel.virtual_step(loss, state, state.arch, train, k, lr, 0.9, 3e-4)
    first = jax.grad(lambda a: loss(w_virtual, state.batch_stats, a, val, k, state.step)[0])(state.arch)['normal']
    second_exact, second_fd = exact - first, fd - first
    assert float(jnp.linalg.norm(second_exact)) > 1e-2 * float(jnp.linalg.norm(first))
    np.testing.assert_allclose(second_fd, second_exact, rtol=0.05, atol=1e-3 * float(jnp.abs(second_exact).max()))
    # and the second order is not just the first order at w
    plain = _hyper('first', net, state, train, val)['normal']
    assert not np.allclose(plain, exact)


def test_virtual_step_honours_momentum_and_weight_decay():
    net, state, train, _, _ = _toy_state()
    loss = bilevel.make_loss(net, relax.softmax())
    k = jax.random.PRNGKey(0)
    g = jax.grad(lambda p: loss(p, state.batch_stats, state.arch, train, k, 0)[0])(state.params)
    w_virtual = bilevel.virtual_step(loss, state, state.arch, train, k, 0.1, 0.9, 3e-4)
    expected = jax.tree.map(lambda w, g_: w - 0.1 * (0.9 * 0.3 + g_ + 3e-4 * w), state.params, g)
    for a, b in zip(jax.tree.leaves(w_virtual), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize('order', bilevel.ORDERS)
def test_step_updates_both_parameter_sets(order):
    net, state, train, val, (w_tx, a_tx, schedule) = _toy_state(momentum_buffer=False)
    step = jax.jit(bilevel.make_step(net, relax.softmax(), w_tx, a_tx, schedule, order=order))
    new, metrics = step(state, train, val)
    assert int(new.step) == 1
    assert not np.allclose(new.arch['normal'], state.arch['normal'])
    assert not np.allclose(new.params['w0'], state.params['w0'])
    assert not np.allclose(new.batch_stats['mean'], state.batch_stats['mean'])
    assert all(np.isfinite(float(v)) for v in metrics.values())


def test_fused_first_order_equals_two_separate_phases():
    net, state, train, val, (w_tx, a_tx, schedule) = _toy_state(momentum_buffer=False)
    fused = jax.jit(bilevel.make_step(net, relax.softmax(), w_tx, a_tx, schedule, fuse_phases=True))
    plain = jax.jit(bilevel.make_step(net, relax.softmax(), w_tx, a_tx, schedule, fuse_phases=False))
    a, b = state, state
    for _ in range(3):
        a, ma = fused(a, train, val)
        b, mb = plain(b, train, val)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)
    for k in ma:
        np.testing.assert_allclose(ma[k], mb[k], rtol=1e-5, atol=1e-7)


def test_unknown_order():
    net, state, *_ , (w_tx, a_tx, schedule) = _toy_state()
    with pytest.raises(ValueError, match='unknown search order'):
        bilevel.make_step(net, relax.softmax(), w_tx, a_tx, schedule, order='third')


def test_hessian_dominant_eigenvalue_matches_the_explicit_hessian():
    net, state, _, val, _ = _toy_state(seed=3)
    eig = bilevel.make_hessian_eigenvalue(net, relax.softmax(), iters=200)
    lam = float(eig(state.params, state.batch_stats, state.arch, val[0], val[1], jax.random.PRNGKey(0)))

    def val_loss(a):
        logits, _ = net.apply({'params': state.params, 'batch_stats': state.batch_stats}, val[0],
                              relax.softmax().normalized({'normal': a}), train=True, mutable=['batch_stats'])
        return train.cross_entropy(logits, val[1])

    a = state.arch['normal']
    hess = np.asarray(jax.hessian(val_loss)(a)).reshape(a.size, a.size)
    eigs = np.linalg.eigvalsh((hess + hess.T) / 2)
    dominant = eigs[np.argmax(np.abs(eigs))]
    assert lam == pytest.approx(float(dominant), rel=2e-3, abs=1e-6)
