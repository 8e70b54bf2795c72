"""NAS-Bench-201 networks: execution modes agree, gradients reach the logits, and the
evaluation network has the benchmark's parameter counts and multiply-adds."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.costs import xla
from jaxnas.spaces.nb201 import network as nb201_net
from jaxnas.errors import JaxnasError
from jaxnas.ops import init_variables
from jaxnas.spaces import nb201

B, H, CLASSES = 2, 8, 3
TINY = {'C': 4, 'N': 1, 'num_classes': CLASSES}

# NATS-Bench tss records (tests/data/nats_bench_fake/README.md): params, FLOPs (= multiply-adds)
# of the evaluation network (C=16, N=5) per data set: (classes, image size) -> (params, MACs).
RECORDS = {
    0: {'cifar10': (129306, 15647370), 'cifar100': (135156, 15653220), 'ImageNet16-120': (136456, 3919480)},
    11: {'cifar10': (802426, 113951370), 'cifar100': (808276, 113957220), 'ImageNet16-120': (809576, 28495480)},
    284: {'cifar10': (101306, 11715210), 'cifar100': (107156, 11721060), 'ImageNet16-120': (108456, 2936440)},
}
DATASETS = {'cifar10': (10, 32), 'cifar100': (100, 32), 'ImageNet16-120': (120, 16)}


def one_hot_mix(genotype):
    idx = [nb201.PRIMITIVES.index(op) for op in genotype]
    return {'cell': jax.nn.one_hot(jnp.asarray(idx), len(nb201.PRIMITIVES))}


@pytest.fixture(scope='module')
def batch():
    return jax.random.normal(jax.random.key(0), (B, H, H, 3))


@pytest.fixture(scope='module')
def dense_setup(batch):
    net = nb201_net.NB201SearchNetwork(**TINY)
    mix = {'cell': jnp.zeros((6, 5))}
    return net, init_variables(net, 0, batch, mix, train=False)


@functools.partial(jax.jit, static_argnums=0)
def apply_train(net, variables, x, mix):
    return net.apply(variables, x, mix, train=True, mutable=['batch_stats'])


@functools.partial(jax.jit, static_argnums=0)
def apply_eval(net, variables, x, mix):
    return net.apply(variables, x, mix, train=False)


@pytest.mark.parametrize('mode', nb201_net.MODES)
def test_search_network_shapes(mode, dense_setup, batch):
    net, variables = dense_setup
    if mode == 'partial_channel':  # ops with C / K channels: variables of their own
        net = net.clone(mode=mode, partial_channels=2)
        variables = init_variables(net, 0, batch, {'cell': jnp.zeros((6, 5))}, train=False)
    else:  # dense and single_path share the variables
        net = net.clone(mode=mode)
    mix = {'cell': jax.nn.softmax(nb201.init_arch(jax.random.key(1))['cell'] * 1e3)}
    logits, new = apply_train(net, variables, batch, mix)
    assert logits.shape == (B, CLASSES) and bool(jnp.all(jnp.isfinite(logits)))
    assert jax.tree.structure(new['batch_stats']) == jax.tree.structure(variables['batch_stats'])
    # stage 0 ops have C / K channels in partial_channel mode, C otherwise
    conv = variables['params']['stage_0']['edges_from_0']['conv3x3']
    cp = TINY['C'] // (2 if mode == 'partial_channel' else 1)
    assert conv.shape == (TINY['N'], 3, 3, cp, 3 * cp)


def test_single_path_equals_dense_for_one_hot(dense_setup, batch):
    net, variables = dense_setup
    mix = one_hot_mix(nb201.from_index(11))  # conv, conv, pool, none, conv, pool
    single = net.clone(mode='single_path')
    out_d, new_d = apply_train(net, variables, batch, mix)
    out_s, new_s = apply_train(single, variables, batch, mix)
    np.testing.assert_allclose(out_s, out_d, rtol=1e-5, atol=1e-5)
    # single path updates only the selected ops' BN statistics, to the dense values
    for old, d, s in zip(*(jax.tree.leaves(v) for v in (variables['batch_stats'], new_d['batch_stats'],
                                                         new_s['batch_stats']))):
        close = lambda a, b: np.isclose(a, b, rtol=1e-5, atol=1e-6)
        assert np.all(close(s, d) | close(s, old))
    np.testing.assert_allclose(apply_eval(single, variables, batch, mix), apply_eval(net, variables, batch, mix),
                               rtol=1e-5, atol=1e-5)


def test_partial_channel_k1_equals_dense(dense_setup, batch):
    net, variables = dense_setup
    mix = {'cell': jax.nn.softmax(jax.random.normal(jax.random.key(2), (6, 5)))}
    out_d, _ = apply_train(net, variables, batch, mix)
    out_p, _ = apply_train(net.clone(mode='partial_channel', partial_channels=1), variables, batch, mix)
    np.testing.assert_allclose(out_p, out_d, rtol=1e-5, atol=1e-5)


def test_channel_shuffle_is_the_pc_darts_permutation():
    x = jnp.arange(6.0).reshape(1, 1, 1, 6)  # groups [0 1 2] [3 4 5] interleave
    np.testing.assert_array_equal(nb201_net.channel_shuffle(x, 2)[0, 0, 0], [0, 3, 1, 4, 2, 5])


def test_single_path_straight_through_gradient_reaches_every_logit(dense_setup, batch):
    net, variables = dense_setup
    single = net.clone(mode='single_path')
    # no edge selects `none` (its output is zero, so no gradient passes that edge)
    logits = jax.random.normal(jax.random.key(3), (6, 5)).at[:, 1:].add(3.0)

    def loss(logits):
        p = jax.nn.softmax(logits)
        hard = jax.nn.one_hot(jnp.argmax(p, -1), 5) - jax.lax.stop_gradient(p) + p
        out, _ = apply_train(single, variables, batch, {'cell': hard})
        return jnp.sum(jax.nn.log_softmax(out)[:, 0])

    grad = jax.jit(jax.grad(loss))(logits)
    assert bool(jnp.all(jnp.isfinite(grad))) and bool(jnp.all(grad != 0))


@pytest.mark.parametrize('kwargs, message', [
    ({'mode': 'both'}, 'unknown execution mode'),
    ({'mode': 'partial_channel', 'partial_channels': 3}, 'positive divisor'),
    ({'primitives': ('none', 'sep_conv_3x3')}, 'cannot build op'),
])
def test_search_network_errors(kwargs, message, batch):
    net = nb201_net.NB201SearchNetwork(**{**TINY, **kwargs})
    with pytest.raises(JaxnasError, match=message):
        jax.eval_shape(functools.partial(net.init, train=False), jax.random.key(0), batch,
                       {'cell': jnp.zeros((6, 5))})


def test_search_network_rejects_bad_mix(dense_setup, batch):
    net, variables = dense_setup
    with pytest.raises(JaxnasError, match=r"mix\['cell'\] has shape"):
        net.apply(variables, batch, {'cell': jnp.zeros((6, 4))}, train=False)


def test_evaluation_network_tiny(batch):
    net = nb201_net.NB201Network(11, **TINY)
    variables = init_variables(net, 0, batch, train=False)
    out, _ = jax.jit(functools.partial(net.apply, train=True, mutable=['batch_stats']))(variables, batch)
    assert out.shape == (B, CLASSES) and bool(jnp.all(jnp.isfinite(out)))
    # only the chosen ops hold weights: 3 nor_conv_3x3 edges, from nodes 0 (x2) and 1 (x1)
    cell = variables['params']['stage_0']
    assert sorted(cell) == ['src0_bn3x3', 'src0_conv3x3', 'src1_bn3x3', 'src1_conv3x3']
    assert cell['src0_conv3x3'].shape == (1, 3, 3, 4, 8)


@pytest.mark.parametrize('index', sorted(RECORDS))
def test_evaluation_network_params_and_macs_equal_records(index):
    for dataset, (classes, size) in DATASETS.items():
        info = nb201_net.cost_info(index, classes, size)
        assert (info['params'], info['macs']) == RECORDS[index][dataset], dataset
        # XLA leaves out the taps over zero padding: fewer, never more
        assert 0.8 * info['macs'] < info['xla_conv_macs'] < info['macs']


def test_whole_program_cost_counts_more_than_conv_linear():
    info = nb201_net.cost_info(284, 10, 32, whole_program=True)
    # the whole forward (cells unrolled) also counts BN, ReLU, pooling and adds
    assert info['xla_other'] > 0 and info['xla_macs'] == info['xla_conv_macs'] + info['xla_other']
    assert info['xla_other'] < 0.1 * info['macs']
    # with the scan kept, XLA counts the cell body once per stage: the whole-program
    # figure would undercount, which is why conv_linear_macs walks the jaxpr and
    # xla_macs unrolls the scans
    net = nb201_net.NB201Network(284)
    x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    variables = jax.eval_shape(functools.partial(net.init, train=False), jax.random.key(0), x)
    scanned = xla.xla_flops(lambda v, x: net.apply(v, x, train=False), variables, x) / 2
    assert scanned < info['xla_macs']
