"""The op registry, its built-in families, the shared blocks and the DARTS search network.

The execution-mode contract over whole networks (every space x mode x relaxation) is in
tests/test_contract.py; here: registry behaviour, each family against its evaluation form,
and edge-level properties of :class:`jaxnas.ops.modes.MixedEdges`.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict, unflatten_dict
from jax import lax

from jaxnas import ops
from jaxnas.errors import JaxnasError
from jaxnas.nn import batch_norm
from jaxnas.ops import eval_forms
from jaxnas.ops.families import ConvFamily, PoolFamily
from jaxnas.ops.modes import MixedEdges
from jaxnas.spaces import darts
from jaxnas.spaces.darts.supernet import SearchCell, SearchNetwork
from jaxnas import nn as jnn

B, H, C = 2, 8, 4
P = len(darts.PRIMITIVES)


def _x(key=0, shape=(1, 1, B, H, H, C)):
    return jax.random.normal(jax.random.PRNGKey(key), shape)


def _apply(module, *args, train=True):
    v = jnn.init_variables(module, 0, *args, train=train)
    out, _ = module.apply(v, *args, train=train, mutable=['batch_stats'])
    return v, out


# --- the registry ---------------------------------------------------------------------------

SUPERNET_OPS = [n for n in ops.names() if ops.get(n).family is not None]


@pytest.mark.parametrize('name', SUPERNET_OPS)
@pytest.mark.parametrize('stride', [1, 2])
def test_every_supernet_op_alone_on_an_edge_group(name, stride):
    x = _x(0, (1, 2, B, H, H, C))
    _, y = _apply(MixedEdges(C, 3, 2, stride, (name,)), x, jnp.ones((3, 2, 1)))
    assert y.shape == (3, B, H // stride, H // stride, C)
    assert np.isfinite(np.asarray(y)).all()
    if ops.get(name).family is ops.ZERO:
        assert float(jnp.abs(y).max()) == 0.0


def test_unknown_op_and_evaluation_only_op():
    with pytest.raises(JaxnasError, match="unknown op 'conv_9x9'"):
        ops.get('conv_9x9')
    with pytest.raises(JaxnasError, match='no supernet'):
        ops.lookup(['sep_conv_3x3', 'conv_7x1_1x7'])
    assert isinstance(ops.get('conv_7x1_1x7').eval_form(C, 1), nn.Module)


def test_every_op_has_an_evaluation_form_except_none():
    for name in ops.names():
        if name != 'none':
            assert isinstance(ops.get(name).eval_form(C, 2), nn.Module), name
    assert ops.get('skip_connect').identity and not ops.get('sep_conv_3x3').identity
    assert {n for n in darts.PRIMITIVES if ops.get(n).parameter_free} == set(darts.PARAMETER_FREE)


def test_space_entries_shadow_the_shared_vocabulary():
    assert ops.get('avg_pool_3x3', 'nb201').family is ops.BARE_POOLS
    assert ops.get('avg_pool_3x3').family is ops.POOLS
    assert ops.get('skip_connect', 'nb201') is ops.get('skip_connect')
    with pytest.raises(JaxnasError, match='unknown op'):
        ops.get('nor_conv_3x3')


def test_register_is_idempotent_and_refuses_a_different_definition():
    entry = ops.get('sep_conv_3x3')
    assert ops.register(entry) is entry
    with pytest.raises(JaxnasError, match='already registered'):
        ops.register(ops.OpDef('sep_conv_3x3', ops.SEP_DIL_CONVS, ops.ConvSpec(3, 2, 1)))


# A family defined outside the package: a learned per-edge, per-channel scale.
class _Scale(nn.Module):
    group: ops.EdgeGroup

    @nn.compact
    def __call__(self, x, train):
        g = self.group
        w = self.param('scale', lambda k, s: jax.random.normal(k, s), (g.N, g.S, g.C_in))
        return (w[:, :, None, None, None, :] * x)[None]


def _scale_branch(defs, o, ctx):
    return lambda xe, n, s, stats: (ctx.params['scale'][n, s] * xe, stats)


SCALE = ops.Family('scale', lambda defs, group, name: _Scale(group, name=name), _scale_branch)
ops.register(ops.OpDef('scale', SCALE), space='test_toy')


def test_an_op_registered_from_outside_runs_in_every_mode():
    x = _x(9, (1, 2, B, H, H, C))
    prims = ('scale', 'skip_connect', 'avg_pool_3x3')
    m = MixedEdges(C, 3, 2, 1, prims, space='test_toy')
    mix = jax.nn.one_hot(jnp.array([[0, 1], [2, 0], [0, 0]]), 3)
    v = m.init(jax.random.PRNGKey(0), x, mix, True)
    assert v['params']['scale']['scale'].shape == (3, 2, C)
    y_dense, _ = m.apply(v, x, mix, True, mutable=['batch_stats'])
    y_single, _ = m.clone(mode='single_path').apply(v, x, mix, True, mutable=['batch_stats'])
    np.testing.assert_allclose(y_single, y_dense, rtol=1e-5, atol=1e-5)
    # target 0: `scale` on source 0 plus `skip_connect` on source 1
    np.testing.assert_allclose(y_dense[0], v['params']['scale']['scale'][0, 0] * x[0, 0] + x[0, 1],
                               rtol=1e-5, atol=1e-5)


# --- shared blocks ----------------------------------------------------------------------------

@pytest.mark.parametrize('k, dilations, stride', [(3, (1, 2), 1), (5, (1, 2), 2), (3, (1,), 2), (5, (1,), 1)])
def test_depthwise_matches_grouped_conv(k, dilations, stride):
    x = _x(1, (B, H, H, C))
    w = jax.random.normal(jax.random.PRNGKey(2), (len(dilations), k, k, C))
    y = jnn.depthwise(x, w, k=k, stride=stride, dilations=dilations)
    for o, d in enumerate(dilations):
        p = d * (k - 1) // 2
        ref = lax.conv_general_dilated(x, w[o].reshape(k, k, 1, C), (stride, stride), [(p, p)] * 2,
                                       rhs_dilation=(d, d), dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                       feature_group_count=C)
        np.testing.assert_allclose(y[o], ref, rtol=1e-5, atol=1e-5)


def test_edge_conv_matches_one_conv_per_edge():
    from jaxnas.nn import conv, edge_conv
    w = jax.random.normal(jax.random.PRNGKey(3), (3, 2, 3, 3, C, 5))
    for Nx in (1, 3):
        x = _x(4, (Nx, 2, B, H, H, C))
        y = edge_conv(x, w)
        for n in range(3):
            for s in range(2):
                np.testing.assert_allclose(y[n, s], conv(x[n % Nx, s], w[n, s]), rtol=1e-4, atol=1e-4)


def test_avg_pool_excludes_padding():
    x = jnp.ones((1, 4, 4, 1))
    np.testing.assert_allclose(jnn.pool(x, 'avg', 1), 1.0)
    assert float(jnn.pool(x, 'max', 2).min()) == 1.0


def test_batchnorm_train_and_eval():
    x = _x(3, (1, B, H, H, C)) * 3 + 1
    bn = jnn.BatchNorm((1, C))
    v = bn.init(jax.random.PRNGKey(0), x, True)
    y, upd = bn.apply(v, x, True, mutable=['batch_stats'])
    np.testing.assert_allclose(np.asarray(y).mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(y).std(axis=(1, 2, 3)), 1, atol=1e-3)
    mean = np.asarray(x).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(upd['batch_stats']['mean'], 0.1 * mean, rtol=1e-5)
    y_eval = bn.apply({'batch_stats': upd['batch_stats']}, x, False)
    assert y_eval.shape == x.shape


def test_channel_shuffle_matches_pytorch_semantics():
    x = jnp.arange(6.0).reshape(1, 1, 1, 6)
    # PyTorch: view(groups=2, 3).transpose -> channels [0, 3, 1, 4, 2, 5]
    np.testing.assert_array_equal(jnn.channel_shuffle(x, 2)[0, 0, 0], [0, 3, 1, 4, 2, 5])


# --- families against the evaluation forms -------------------------------------------------

def _eval_form_params(family_params, name):
    """The evaluation form's parameters from a one-op, one-edge family's."""
    spec, k = ops.get(name).spec, ops.get(name).spec.k
    blocks = {f'DilConv_{b}': {'depthwise': family_params[f'block{b + 1}_depthwise_{k}x{k}'][0, 0, 0],
                               'pointwise': family_params[f'block{b + 1}_pointwise'][0, 0, 0]}
              for b in range(spec.blocks)}
    return blocks if spec.blocks == 2 else blocks['DilConv_0']


@pytest.mark.parametrize('name', [n for n in ops.names() if ops.get(n).family is ops.SEP_DIL_CONVS])
@pytest.mark.parametrize('stride', [1, 2])
def test_conv_family_equals_the_evaluation_form(name, stride):
    """In training mode an affine BN at its init (scale 1, bias 0) is the search cells' BN."""
    x = _x(4, (1, 1, B, H, H, C))
    v, y = _apply(ConvFamily(ops.EdgeGroup(C, C, 1, 1, stride), (ops.get(name).spec,)), x)
    op = ops.get(name).eval_form(C, stride)
    init = jnn.init_variables(op, 0, x[0, 0], train=True)
    params = flatten_dict(init['params'])
    params.update(flatten_dict(_eval_form_params(v['params'], name)))
    params = unflatten_dict(params)
    ref, _ = op.apply({'params': params, 'batch_stats': init['batch_stats']}, x[0, 0], train=True,
                      mutable=['batch_stats'])
    np.testing.assert_allclose(y[0, 0, 0], ref, rtol=1e-4, atol=1e-4)


def test_pool_family_is_the_evaluation_pool_then_batch_norm():
    x = _x(5)
    names = ('max_pool_3x3', 'avg_pool_3x3')
    _, y = _apply(PoolFamily(ops.EdgeGroup(C, C, 1, 1, 2), tuple(ops.get(n).spec for n in names)), x)
    for o, name in enumerate(names):
        pooled = eval_forms.EVAL_FORMS[name](C, 2).apply({}, x[0, 0], True)
        ref, _ = batch_norm(pooled, jnp.zeros(C), jnp.ones(C), True)
        np.testing.assert_allclose(y[o, 0, 0], ref, rtol=1e-5, atol=1e-5)


# --- MixedEdges: edge-level properties ---------------------------------------------------------

def _edges(stride, Nx, N, S, seed=0, **kw):
    x = jax.random.normal(jax.random.PRNGKey(seed), (Nx, S, B, H, H, C))
    m = MixedEdges(C, N, S, stride, darts.PRIMITIVES, **kw)
    return x, m, jnn.init_variables(m, seed, x, jnp.full((N, S, P), 1.0 / P), train=True)


def test_mixed_edges_one_hot_selects_one_op():
    """A one-hot mix on every edge gives exactly that op's output (summed over sources)."""
    x = _x(6, (1, 2, B, H, H, C))
    mix = jax.nn.one_hot(jnp.full((3, 2), darts.PRIMITIVES.index('skip_connect')), P)
    _, y = _apply(MixedEdges(C, 3, 2, 1, darts.PRIMITIVES), x, mix)
    np.testing.assert_allclose(y, jnp.broadcast_to(x[0].sum(0), (3, B, H, H, C)), rtol=1e-6)
    mix_none = jax.nn.one_hot(jnp.zeros((3, 2), jnp.int32), P)
    _, y0 = _apply(MixedEdges(C, 3, 2, 1, darts.PRIMITIVES), x, mix_none)
    assert float(jnp.abs(y0).max()) == 0.0


def test_partial_channel_bypass_is_scaled_by_the_edge_weight_and_pooled_on_strided_edges():
    """PC-DARTS's code: the edge weight multiplies the whole mixed-op output, bypass included."""
    x, pc2, v2 = _edges(2, 1, 4, 2, seed=4, mode='partial_channel', partial_channels=2)
    assert v2['params']['convs']['block1_pointwise'].shape[-1] == C // 2
    none_only = jax.nn.one_hot(jnp.zeros((4, 2), jnp.int32), P) * 0.5   # edge weight 0.5 on `none`
    y, _ = pc2.apply(v2, x, none_only, True, mutable=['batch_stats'])
    rest = x[0, :, :, :, :, C // 2:].reshape(2, B, H // 2, 2, H // 2, 2, C // 2).max(axis=(3, 5))
    expected = jnn.channel_shuffle(jnp.concatenate([jnp.zeros((B, H // 2, H // 2, C // 2)), 0.5 * rest.sum(0)], -1), 2)
    np.testing.assert_allclose(y, jnp.broadcast_to(expected, y.shape), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('op', ['max_pool_3x3', 'avg_pool_3x3'])
def test_single_path_shared_pool_statistics_move_once_like_dense(op):
    """Every target picks the same pool of a shared input: its BatchNorm slot moves once."""
    x, m, v = _edges(1, 1, 4, 2, seed=6)
    mix = jax.nn.one_hot(jnp.full((4, 2), darts.PRIMITIVES.index(op)), P)
    y_dense, s_dense = m.apply(v, x, mix, True, mutable=['batch_stats'])
    y_single, s_single = m.clone(mode='single_path').apply(v, x, mix, True, mutable=['batch_stats'])
    np.testing.assert_allclose(y_single, y_dense, rtol=1e-5, atol=1e-5)
    o = ['max_pool_3x3', 'avg_pool_3x3'].index(op)   # the chosen pool's slot
    for key in ('mean', 'var'):
        np.testing.assert_allclose(s_single['batch_stats']['pools']['BatchNorm_0'][key][o],
                                   s_dense['batch_stats']['pools']['BatchNorm_0'][key][o], rtol=1e-5, atol=1e-6)


def test_unknown_mode():
    x, m, v = _edges(1, 1, 2, 1)
    with pytest.raises(JaxnasError, match='unknown execution mode'):
        m.clone(mode='both').apply(v, x, jnp.ones((2, 1, P)), True, mutable=['batch_stats'])


# --- the DARTS search network -----------------------------------------------------------------

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
    a = jnn.init_variables(net, 3, *args, train=True)
    b = jnn.init_variables(net, 3, *args, train=True)
    c = jnn.init_variables(net, 4, *args, train=True)
    leaves_a, leaves_b, leaves_c = (jax.tree.leaves(t['params']) for t in (a, b, c))
    assert all(np.array_equal(x, y) for x, y in zip(leaves_a, leaves_b))
    assert not all(np.array_equal(x, y) for x, y in zip(leaves_a, leaves_c))
    stem = np.asarray(a['params']['stem_conv'])
    bound = 1 / np.sqrt(9 * 1)
    assert np.abs(stem).max() <= bound and np.abs(stem).max() > 0.5 * bound
