import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxnas import ops
from jaxnas.errors import JaxnasError
from jaxnas.spaces import darts
from jaxnas.spaces.darts.supernet import ConvFamily, MixedEdges, PoolFamily, SearchCell, SearchNetwork

B, H, C = 2, 8, 4


def _x(key=0, shape=(1, 1, B, H, H, C)):
    return jax.random.normal(jax.random.PRNGKey(key), shape)


def _apply(module, *args, train=True):
    v = ops.init_variables(module, 0, *args, train=train)
    out, _ = module.apply(v, *args, train=train, mutable=['batch_stats'])
    return v, out


@pytest.mark.parametrize('name', [p for p in darts.PRIMITIVES])
@pytest.mark.parametrize('stride', [1, 2])
def test_every_op_shape(name, stride):
    _, y = _apply(ops.make_op(name, C, stride), _x())
    if name == 'none':
        assert y is None
        return
    assert y.shape == (1, 1, B, H // stride, H // stride, C)
    assert np.isfinite(np.asarray(y)).all()


def test_unknown_op():
    with pytest.raises(JaxnasError, match="unknown op 'conv_9x9'"):
        ops.make_op('conv_9x9', C, 1)


@pytest.mark.parametrize('k, dilations, stride', [(3, (1, 2), 1), (5, (1, 2), 2), (3, (1,), 2), (5, (1,), 1)])
def test_depthwise_matches_grouped_conv(k, dilations, stride):
    x = _x(1, (B, H, H, C))
    w = jax.random.normal(jax.random.PRNGKey(2), (len(dilations), k, k, C))
    y = ops.depthwise(x, w, k=k, stride=stride, dilations=dilations)
    for o, d in enumerate(dilations):
        p = d * (k - 1) // 2
        ref = lax.conv_general_dilated(x, w[o].reshape(k, k, 1, C), (stride, stride), [(p, p)] * 2,
                                       rhs_dilation=(d, d), dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                       feature_group_count=C)
        np.testing.assert_allclose(y[o], ref, rtol=1e-5, atol=1e-5)


def test_avg_pool_excludes_padding():
    x = jnp.ones((1, 4, 4, 1))
    np.testing.assert_allclose(ops.pool(x, 'avg', 1), 1.0)
    assert float(ops.pool(x, 'max', 2).min()) == 1.0


def test_batchnorm_train_and_eval():
    x = _x(3, (1, B, H, H, C)) * 3 + 1
    bn = ops.BatchNorm((1, C))
    v = bn.init(jax.random.PRNGKey(0), x, True)
    y, upd = bn.apply(v, x, True, mutable=['batch_stats'])
    np.testing.assert_allclose(np.asarray(y).mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(y).std(axis=(1, 2, 3)), 1, atol=1e-3)
    mean = np.asarray(x).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(upd['batch_stats']['mean'], 0.1 * mean, rtol=1e-5)
    y_eval = bn.apply({'batch_stats': upd['batch_stats']}, x, False)
    assert y_eval.shape == x.shape


def _copy_single_op_params(family_params, name):
    spec = ops.CONV_SPECS[name]
    k = spec.k
    blocks = {}
    for b in range(spec.blocks):
        blocks[f'DilConv_{b}'] = {
            'depthwise': family_params[f'block{b + 1}_depthwise_{k}x{k}'][0],
            'pointwise': family_params[f'block{b + 1}_pointwise'][0],
        }
    return blocks if spec.blocks == 2 else blocks['DilConv_0']


@pytest.mark.parametrize('name', list(ops.CONV_SPECS))
@pytest.mark.parametrize('stride', [1, 2])
def test_batched_conv_family_equals_registry_op(name, stride):
    x = _x(4, (1, 1, B, H, H, C))
    family = ConvFamily(C, 1, 1, stride, (name,))
    v, y = _apply(family, x)
    op = ops.make_op(name, C, stride)
    ref, _ = op.apply({'params': _copy_single_op_params(v['params'], name),
                       'batch_stats': ops.init_variables(op, 0, x, train=True)['batch_stats']},
                      x, train=True, mutable=['batch_stats'])
    np.testing.assert_allclose(y[0], ref, rtol=1e-4, atol=1e-4)


def test_pool_family_equals_registry_ops():
    x = _x(5)
    _, y = _apply(PoolFamily(C, 2, ('max_pool_3x3', 'avg_pool_3x3')), x)
    for o, name in enumerate(['max_pool_3x3', 'avg_pool_3x3']):
        _, ref = _apply(ops.make_op(name, C, 2), x)
        np.testing.assert_allclose(y[o], ref, rtol=1e-5, atol=1e-5)


def test_mixed_edges_one_hot_selects_one_op():
    """A one-hot mix on every edge gives exactly that op's output (summed over sources)."""
    x = _x(6, (1, 2, B, H, H, C))
    p = darts.PRIMITIVES.index('skip_connect')
    mix = jax.nn.one_hot(jnp.full((3, 2), p), len(darts.PRIMITIVES))
    _, y = _apply(MixedEdges(C, 3, 2, 1), x, mix)
    np.testing.assert_allclose(y, jnp.broadcast_to(x[0].sum(0), (3, B, H, H, C)), rtol=1e-6)
    mix_none = jax.nn.one_hot(jnp.zeros((3, 2), jnp.int32), len(darts.PRIMITIVES))
    _, y0 = _apply(MixedEdges(C, 3, 2, 1), x, mix_none)
    assert float(jnp.abs(y0).max()) == 0.0


@pytest.mark.parametrize('reduction, reduction_prev', [(False, False), (True, False), (False, True)])
def test_cell_shapes(reduction, reduction_prev):
    size = H * 2 if reduction_prev else H
    s0 = _x(7, (B, size, size, 6))
    s1 = _x(8, (B, H, H, 5))
    mix = jax.nn.softmax(darts.init_arch(jax.random.PRNGKey(0))['normal'], -1)
    _, y = _apply(SearchCell(C, 6, 5, reduction, reduction_prev), s0, s1, mix)
    out = H // 2 if reduction else H
    assert y.shape == (B, out, out, darts.NUM_NODES * C)


def test_network_logits_shape():
    arch = darts.init_arch(jax.random.PRNGKey(0))
    mix = jax.tree.map(lambda a: jax.nn.softmax(a, -1), arch)
    _, y = _apply(SearchNetwork(2, 10, 3), jnp.ones((B, 8, 8, 1)), mix)
    assert y.shape == (B, 10)


def test_search_network_parameter_count_matches_reference_code():
    """The reference code logs 'param size = 1.930618MB' for its CIFAR-10 search network."""
    arch = darts.init_arch(jax.random.PRNGKey(0))
    shapes = jax.eval_shape(SearchNetwork(16, 10, 8).init, jax.random.PRNGKey(0), jnp.ones((2, 32, 32, 3)),
                            arch, True)
    assert sum(np.prod(p.shape) for p in jax.tree.leaves(shapes['params'])) == 1_930_618


def test_init_variables_is_deterministic_and_pytorch_scaled():
    net = SearchNetwork(2, 10, 3)
    arch = darts.init_arch(jax.random.PRNGKey(0))
    args = (jnp.ones((B, 8, 8, 1)), arch)
    a = ops.init_variables(net, 3, *args, train=True)
    b = ops.init_variables(net, 3, *args, train=True)
    c = ops.init_variables(net, 4, *args, train=True)
    leaves_a, leaves_b, leaves_c = (jax.tree.leaves(t['params']) for t in (a, b, c))
    assert all(np.array_equal(x, y) for x, y in zip(leaves_a, leaves_b))
    assert not all(np.array_equal(x, y) for x, y in zip(leaves_a, leaves_c))
    stem = np.asarray(a['params']['stem_conv'])
    bound = 1 / np.sqrt(9 * 1)
    assert np.abs(stem).max() <= bound and np.abs(stem).max() > 0.5 * bound
