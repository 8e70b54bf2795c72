"""The two convolution implementations (jaxnas.nn.convolutions) agree: values and gradients of
every conv form (depthwise with strides and dilations, pointwise, dense), of BatchNorm's
hand-written VJP, and of whole mixed edges of every space in every execution mode.

``lax`` is the accelerators' form (``conv_general_dilated``); checking it against ``taps`` here
on CPU makes it correct before an accelerator ever runs it.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxnas import config as config_lib
from jaxnas import nn as jnn
from jaxnas.errors import JaxnasError
from jaxnas.nn import convolutions as cv
from jaxnas.ops.modes import MixedEdges
from jaxnas.spaces import darts
from jaxnas.spaces.mbconv import genotype as mbG, ops as mb_ops
from jaxnas.spaces.nb201 import genotype as nbG

B, H, C = 2, 8, 3


def _rand(seed, shape):
    return jax.random.normal(jax.random.PRNGKey(seed), shape)


def _value_and_grads(fn, args, impl, cotangent_seed=99):
    """``fn(*args)`` and the gradients of ``<fn(*args), r>`` (a fixed random ``r``) under ``impl``."""
    with cv.conv_impl(impl):
        y = fn(*args)
        r = _rand(cotangent_seed, y.shape)
        grads = jax.grad(lambda *a: jnp.sum(fn(*a) * r), argnums=tuple(range(len(args))))(*args)
    return y, grads


def _conv_count(fn, args, impl):
    """``conv_general_dilated`` ops in ``fn``'s program under ``impl`` (a fresh function each
    time: JAX caches traces by function, and the choice is read when tracing)."""
    with cv.conv_impl(impl):
        return str(jax.make_jaxpr(lambda *a: fn(*a))(*args)).count('conv_general_dilated')


def _assert_really_two_impls(fn, args):
    assert _conv_count(fn, args, 'lax') > _conv_count(fn, args, 'taps')


def _assert_impls_agree(fn, args, rtol=2e-5, atol=2e-5):
    _assert_really_two_impls(fn, args)
    y_t, g_t = _value_and_grads(fn, args, 'taps')
    y_l, g_l = _value_and_grads(fn, args, 'lax')
    assert y_t.shape == y_l.shape
    np.testing.assert_allclose(y_t, y_l, rtol=rtol, atol=atol)
    for a, b in zip(g_t, g_l):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    return y_t


DEPTHWISE_CASES = [
    # k, stride, dilations, per_op_input, x shape, w shape (O, *Lw, k, k, C)
    (3, 1, (1, 2), False, (1, 2, B, H, H, C), (2, 3, 2, 3, 3, C)),     # shared sources, 3 targets
    (5, 1, (1, 2), False, (1, 2, B, H, H, C), (2, 3, 2, 5, 5, C)),
    (3, 2, (1, 2), False, (1, 2, B, H, H, C), (2, 3, 2, 3, 3, C)),     # strided (reduction cell)
    (5, 2, (1,), False, (3, 2, B, H, H, C), (1, 3, 2, 5, 5, C)),        # one input per edge
    (3, 1, (1, 1), True, (2, 3, 2, B, H, H, C), (2, 3, 2, 3, 3, C)),   # one input per op (block 2)
    (3, 1, (2,), False, (B, H, H, C), (1, 3, 3, C)),                    # a single edge
    (7, 2, (1,), False, (B, H, H, C), (1, 7, 7, C)),                    # MBConv 7x7, strided
]


@pytest.mark.parametrize('k,stride,dilations,per_op_input,xs,ws', DEPTHWISE_CASES)
def test_depthwise_taps_and_lax_agree(k, stride, dilations, per_op_input, xs, ws):
    fn = lambda x, w: cv.depthwise(x, w, k=k, stride=stride, dilations=dilations, per_op_input=per_op_input)
    y = _assert_impls_agree(fn, (_rand(0, xs), _rand(1, ws)))
    assert y.shape[-3:-1] == (-(-H // stride),) * 2


def test_depthwise_is_the_reference_grouped_conv():
    """Both forms are PyTorch's depthwise conv (groups=C, padding d(k-1)/2), checked directly."""
    x, w = _rand(0, (B, H, H, C)), _rand(1, (5, 5, C))
    ref = lax.conv_general_dilated(x, w[:, :, None, :], (2, 2), ((4, 4), (4, 4)), rhs_dilation=(2, 2),
                                   dimension_numbers=('NHWC', 'HWIO', 'NHWC'), feature_group_count=C)
    for impl in ('taps', 'lax'):
        with cv.conv_impl(impl):
            np.testing.assert_allclose(cv.depthwise_conv(x, w, 2, 2), ref, rtol=1e-5, atol=1e-5)


def test_depthwise_kernel_gradient_batch_not_divisible_by_the_loop_step():
    """The kernel gradient's loop over images (image_sums) with a batch of 7 (one image per step)."""
    fn = lambda x, w: cv.depthwise(x, w, k=3, stride=1, dilations=(1,))
    _assert_impls_agree(fn, (_rand(0, (1, 7, H, H, C)), _rand(1, (1, 2, 3, 3, C))))


def test_second_order_and_hessian_vector_products_through_the_custom_vjp():
    """Second-order DARTS differentiates the gradient; the Hessian diagnostic takes a JVP of it."""
    x, w = _rand(0, (1, 2, B, H, H, C)), _rand(1, (2, 3, 2, 3, 3, C))
    v = _rand(2, w.shape)

    def f(w):
        return jnp.sum(jnp.tanh(cv.depthwise(x, w, k=3, stride=1, dilations=(1, 2))))

    out = {}
    for impl in ('taps', 'lax'):
        with cv.conv_impl(impl):
            g = jax.grad(f)
            hvp = jax.jvp(g, (w,), (v,))[1]
            gg = jax.grad(lambda w: jnp.sum(g(w) * v))(w)
        out[impl] = (hvp, gg)
    for a, b in zip(out['taps'], out['lax']):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out['taps'][0], out['taps'][1], rtol=1e-4, atol=1e-4)   # symmetric Hessian


@pytest.mark.parametrize('xs,ws', [((B, H, H, C), (C, 5)), ((2, 3, B, H, H, C), (2, 3, C, 4)),
                                   ((1, 3, B, H, H, C), (2, 3, C, 4))])
def test_pointwise_taps_and_lax_agree(xs, ws):
    _assert_impls_agree(cv.pointwise, (_rand(0, xs), _rand(1, ws)))


@pytest.mark.parametrize('k', [1, 3])
@pytest.mark.parametrize('Nx', [1, 2])
def test_dense_edge_convs_taps_and_lax_agree(k, Nx):
    _assert_impls_agree(cv.edge_conv, (_rand(0, (Nx, 2, B, H, H, C)), _rand(1, (2, 2, k, k, C, 4))))


def test_batch_norm_vjp_matches_autodiff_of_the_formula():
    """BatchNorm's moments and hand-written VJP against autodiff of the plain formula, including
    the cotangents of the batch mean and variance (B = 6: a loop step of 6 images)."""
    x = _rand(0, (2, 3, 6, 4, 4, C)) * 3 + 1

    def plain(x):
        axes = (2, 3, 4)
        m = jnp.mean(x, axes)
        v = jnp.mean(jnp.square(x - m[:, :, None, None, None]), axes)
        return (x - m[:, :, None, None, None]) * lax.rsqrt(v + 1e-5)[:, :, None, None, None], m, v

    ours = lambda x: jnn.batch_moments_normalize(x, 1e-5)
    for a, b in zip(ours(x), plain(x)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    r = _rand(1, x.shape)
    loss = lambda f: (lambda x: jnp.sum(f(x)[0] * r) + jnp.sum(jnp.sin(f(x)[1])) + jnp.sum(jnp.cos(f(x)[2])))
    np.testing.assert_allclose(jax.grad(loss(ours))(x), jax.grad(loss(plain))(x), rtol=1e-4, atol=1e-5)


def _edges_case(space):
    if space == 'darts':
        return dict(C=4, N=3, S=2, primitives=darts.PRIMITIVES, space=None), (1, 2, B, H, H, 4)
    if space == 'nb201':
        return dict(C=4, N=3, S=1, primitives=nbG.PRIMITIVES, space='nb201'), (1, 1, B, H, H, 4)
    return dict(C=4, N=1, S=1, primitives=mbG.PRIMITIVES, space=mb_ops.SPACE_NAME), (1, 1, B, H, H, 4)


MODES = [('darts', 'dense', 1), ('darts', 'dense', 2), ('darts', 'single_path', 1), ('darts', 'single_path', 2),
         ('darts', 'partial_channel', 1), ('nb201', 'dense', 1), ('nb201', 'single_path', 1),
         ('mbconv', 'dense', 1), ('mbconv', 'dense', 2), ('mbconv', 'single_path', 1)]


@pytest.mark.parametrize('space,mode,stride', MODES)
def test_mixed_edges_of_every_space_and_mode_agree(space, mode, stride):
    """A whole mixed-edge group, its output and the gradients of weights, input and mix."""
    kw, xs = _edges_case(space)
    if space == 'nb201' and stride == 2:
        pytest.skip('nb201 edges run at stride 1')
    m = MixedEdges(kw['C'], kw['N'], kw['S'], stride, kw['primitives'], space=kw['space'], mode=mode,
                   partial_channels=2 if mode == 'partial_channel' else 1)
    P = len(kw['primitives'])
    x = _rand(0, xs)
    logits = _rand(1, (kw['N'], kw['S'], P))
    mix = jax.nn.softmax(logits, -1)
    if mode == 'single_path':   # straight-through one-hot, as GDAS
        hard = jax.nn.one_hot(jnp.argmax(logits, -1), P)
        mix = hard - lax.stop_gradient(mix) + mix
    variables = jnn.init_variables(m, 0, x, mix, train=True)

    def fn(params, x, mix):
        y, _ = m.apply({'params': params, 'batch_stats': variables['batch_stats']}, x, mix, True,
                       mutable=['batch_stats'])
        return y

    _assert_really_two_impls(fn, (variables['params'], x, mix))
    out = {}
    for impl in ('taps', 'lax'):
        with cv.conv_impl(impl):
            y = fn(variables['params'], x, mix)
            r = _rand(7, y.shape)
            g = jax.grad(lambda p, x, q: jnp.sum(fn(p, x, q) * r), argnums=(0, 1, 2))(variables['params'], x, mix)
        out[impl] = (y, g)
    np.testing.assert_allclose(out['taps'][0], out['lax'][0], rtol=1e-4, atol=1e-4)
    flat_t, flat_l = jax.tree.leaves(out['taps'][1]), jax.tree.leaves(out['lax'][1])
    assert len(flat_t) == len(flat_l)
    for a, b in zip(flat_t, flat_l):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def _primitives(fn, *args):
    return {e.primitive.name: e for e in jax.make_jaxpr(fn)(*args).jaxpr.eqns}, str(jax.make_jaxpr(fn)(*args))


def test_choice_is_made_in_one_place_and_auto_is_taps_on_cpu():
    x, w = _rand(0, (1, 2, B, H, H, C)), _rand(1, (1, 3, 2, 3, 3, C))
    fn = lambda x, w: cv.depthwise(x, w, k=3, stride=1, dilations=(1,))
    assert jax.default_backend() != 'cpu' or cv.resolve('auto') == 'taps'
    with cv.conv_impl('lax'):
        text = str(jax.make_jaxpr(lambda *a: fn(*a))(x, w))
    assert 'conv_general_dilated' in text and f'feature_group_count={3 * 2 * C}' in text
    with cv.conv_impl('taps'):
        text = str(jax.make_jaxpr(lambda *a: fn(*a))(x, w))
    assert 'conv_general_dilated' not in text and 'custom_vjp_call' in text
    bound = cv.bind_conv_impl('lax', fn)   # a bound function traces with its choice wherever it runs
    with cv.conv_impl('taps'):
        assert 'conv_general_dilated' in str(jax.make_jaxpr(bound)(x, w))
    with pytest.raises(JaxnasError, match="unknown conv implementation 'cudnn'"):
        cv.check_impl('cudnn')


def test_config_fields_are_checked():
    config = config_lib.get_config()
    with pytest.raises(config_lib.ConfigError, match='model.conv_impl'):
        config_lib.apply_overrides(config, [('model.conv_impl', 'cudnn')])
    with pytest.raises(config_lib.ConfigError, match='search.compute_dtype'):
        config_lib.apply_overrides(config, [('search.compute_dtype', 'float16')])


def test_sharded_batch_sums_equal_the_loop():
    """With the batch split over devices the batch sums are plain reductions (no loop over batch
    slices for the SPMD partitioner to gather): same values and gradients as the loop."""
    x, w = _rand(0, (1, 2, 2 * cv.IMAGES_PER_STEP, 4, 4, C)), _rand(1, (2, 3, 2, 3, 3, C))

    def f(x, w):
        y = cv.depthwise(x, w, k=3, stride=1, dilations=(1, 2))
        return jnp.sum(jnp.tanh(jnn.batch_norm(y, jnp.zeros(y.shape[:-4] + (C,)), jnp.ones(y.shape[:-4] + (C,)),
                                               True)[0]))

    looped = jax.grad(cv.bind_conv_impl('taps', f), (0, 1))(x, w)
    plain = jax.grad(cv.bind_conv_impl('taps', f, sharded_batch=True), (0, 1))(x, w)
    loops = lambda sharded: str(jax.make_jaxpr(cv.bind_conv_impl('taps', jax.grad(f, (0, 1)), sharded_batch=sharded))(
        x, w)).count('scan[')
    assert loops(True) < loops(False)   # the batch loops are gone (the kernel gradient's tap scan stays)
    for a, b in zip(looped, plain):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
