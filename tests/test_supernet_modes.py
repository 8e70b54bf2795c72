"""Execution modes of the DARTS mixed op: single_path and partial_channel against dense."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import ops, relax
from jaxnas.spaces import darts
from jaxnas.spaces.darts.supernet import MixedEdges, channel_shuffle

B, H, C = 2, 8, 4
P = len(darts.PRIMITIVES)


def _setup(stride, Nx, N, S, seed=0):
    x = jax.random.normal(jax.random.PRNGKey(seed), (Nx, S, B, H, H, C))
    m = MixedEdges(C, N, S, stride)
    v = ops.init_variables(m, seed, x, jnp.full((N, S, P), 1.0 / P), train=True)
    return x, m, v


@pytest.mark.parametrize('stride, Nx, N, S', [(1, 1, 4, 2), (2, 1, 4, 2), (1, 2, 2, 1)])
@pytest.mark.parametrize('train', [True, False])
def test_single_path_equals_dense_for_a_one_hot_mix(stride, Nx, N, S, train):
    x, m, v = _setup(stride, Nx, N, S)
    # every op appears: edges cycle through the primitives
    choice = jnp.arange(N * S).reshape(N, S) % P + (stride == 2)
    mix = jax.nn.one_hot(choice % P, P)
    y_dense, s_dense = m.apply(v, x, mix, train, mutable=['batch_stats'])
    y_single, s_single = m.clone(mode='single_path').apply(v, x, mix, train, mutable=['batch_stats'])
    np.testing.assert_allclose(y_single, y_dense, rtol=1e-5, atol=1e-5)
    assert jax.tree.structure(s_single) == jax.tree.structure(s_dense)
    if train:  # only the chosen ops' BatchNorm statistics move
        moved = [not np.array_equal(a, b) for a, b in
                 zip(jax.tree.leaves(s_single), jax.tree.leaves(v['batch_stats']))]
        assert any(moved)
        conv_mean = np.asarray(s_single['batch_stats']['convs']['block1_bn']['mean'])
        conv_init = np.asarray(v['batch_stats']['convs']['block1_bn']['mean'])
        convs = [p for p in darts.PRIMITIVES if p in ops.CONV_SPECS]
        for n in range(N):
            for s in range(S):
                op = darts.PRIMITIVES[int(choice[n, s]) % P]
                for o, name in enumerate(convs):
                    same = np.array_equal(conv_mean[o, n, s], conv_init[o, n, s])
                    assert same == (name != op)
                    if name == op:
                        np.testing.assert_allclose(
                            conv_mean[o, n, s], s_dense['batch_stats']['convs']['block1_bn']['mean'][o, n, s],
                            rtol=1e-5, atol=1e-6)


def test_single_path_gradient_reaches_every_logit_through_the_straight_through_weights():
    x, m, v = _setup(1, 1, 4, 2, seed=1)
    r = relax.make_relaxation('gdas', total_steps=10)
    logits = {'normal': jax.random.normal(jax.random.PRNGKey(2), (4 * 2, P))}
    single = m.clone(mode='single_path')

    def loss(a):
        mix = r.weights(a, jax.random.PRNGKey(3), 0)['normal'].reshape(4, 2, P)
        y, _ = single.apply(v, x, mix, True, mutable=['batch_stats'])
        return jnp.sum(jnp.sin(y))

    g = np.asarray(jax.grad(loss)(logits)['normal'])
    chosen = np.asarray(jnp.argmax(r.weights(logits, jax.random.PRNGKey(3), 0)['normal'], -1))
    live = chosen != darts.PRIMITIVES.index('none')   # a `none` edge contributes nothing
    assert live.any()
    assert (np.abs(g[live]) > 0).all() and np.isfinite(g).all()


def test_partial_channel_with_k1_equals_dense_and_k2_bypasses_half_the_channels():
    x, m, v = _setup(2, 1, 4, 2, seed=4)
    mix = jax.nn.softmax(jax.random.normal(jax.random.PRNGKey(5), (4, 2, P)), -1)
    y_dense, _ = m.apply(v, x, mix, True, mutable=['batch_stats'])
    y_pc1, _ = m.clone(mode='partial_channel', partial_channels=1).apply(v, x, mix, True, mutable=['batch_stats'])
    np.testing.assert_allclose(y_pc1, y_dense, rtol=1e-6, atol=1e-6)

    pc2 = MixedEdges(C, 4, 2, 2, mode='partial_channel', partial_channels=2)
    v2 = ops.init_variables(pc2, 0, x, mix, train=True)
    assert v2['params']['convs']['block1_pointwise'].shape[-1] == C // 2
    none_only = jax.nn.one_hot(jnp.zeros((4, 2), jnp.int32), P) * 0.5   # edge weight 0.5 on `none`
    y, _ = pc2.apply(v2, x, none_only, True, mutable=['batch_stats'])
    rest = x[0, :, :, :, :, C // 2:].reshape(2, B, H // 2, 2, H // 2, 2, C // 2).max(axis=(3, 5))
    expected = channel_shuffle(jnp.concatenate(
        [jnp.zeros((B, H // 2, H // 2, C // 2)), 0.5 * rest.sum(0)], -1), 2)
    np.testing.assert_allclose(y, jnp.broadcast_to(expected, y.shape), rtol=1e-6, atol=1e-6)


def test_channel_shuffle_matches_pytorch_semantics():
    x = jnp.arange(6.0).reshape(1, 1, 1, 6)
    # PyTorch: view(groups=2, 3).transpose -> channels [0, 3, 1, 4, 2, 5]
    np.testing.assert_array_equal(channel_shuffle(x, 2)[0, 0, 0], [0, 3, 1, 4, 2, 5])


@pytest.mark.parametrize('op', ['max_pool_3x3', 'avg_pool_3x3'])
def test_single_path_shared_pool_statistics_move_once_like_dense(op):
    """Every target picks the same pool of a shared input: its BatchNorm slot moves once."""
    x, m, v = _setup(1, 1, 4, 2, seed=6)
    mix = jax.nn.one_hot(jnp.full((4, 2), darts.PRIMITIVES.index(op)), P)
    y_dense, s_dense = m.apply(v, x, mix, True, mutable=['batch_stats'])
    y_single, s_single = m.clone(mode='single_path').apply(v, x, mix, True, mutable=['batch_stats'])
    np.testing.assert_allclose(y_single, y_dense, rtol=1e-5, atol=1e-5)
    o = [p for p in darts.PRIMITIVES if p in ops.POOL_KINDS].index(op)   # the chosen pool's slot
    for key in ('mean', 'var'):
        np.testing.assert_allclose(s_single['batch_stats']['pools']['BatchNorm_0'][key][o],
                                   s_dense['batch_stats']['pools']['BatchNorm_0'][key][o], rtol=1e-5, atol=1e-6)
