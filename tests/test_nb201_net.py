"""NAS-Bench-201 networks: the search network's configuration errors, and the evaluation
network's parameter counts and multiply-adds against the benchmark's records.

The execution modes (shapes, single path == dense, partial channel k=1 == dense,
gradients to every logit) are checked for every space in tests/test_contract.py."""
import functools

import jax
import jax.numpy as jnp
import pytest

from jaxnas.costs import xla
from jaxnas.spaces.nb201 import network as nb201_net
from jaxnas.errors import JaxnasError
from jaxnas.nn import init_variables

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


@pytest.fixture(scope='module')
def batch():
    return jax.random.normal(jax.random.key(0), (B, H, H, 3))


@pytest.fixture(scope='module')
def dense_setup(batch):
    net = nb201_net.NB201SearchNetwork(**TINY)
    mix = {'cell': jnp.zeros((6, 5))}
    return net, init_variables(net, 0, batch, mix, train=False)


@pytest.mark.parametrize('kwargs, message', [
    ({'mode': 'both'}, 'unknown execution mode'),
    ({'mode': 'partial_channel', 'partial_channels': 3}, 'positive divisor'),
    ({'primitives': ('none', 'conv_9x9')}, 'unknown op'),
    ({'primitives': ('none', 'conv_7x1_1x7')}, 'no supernet'),
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
