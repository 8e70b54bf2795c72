"""Evaluation networks: published parameter counts, auxiliary head, drop path, scanning."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import baseline, costs
from jaxnas.ops import eval_forms
from jaxnas.ops.eval_forms import EVAL_FORMS, is_identity
from jaxnas.spaces.darts import evalnet
from jaxnas.spaces import darts
from jaxnas import nn as jnn


@pytest.mark.parametrize('name,expected', [('DARTS_V2', 3_349_342), ('DARTS_V1', 3_169_414)])
def test_published_cifar_param_counts(name, expected):
    # published.md: C=36, 20 cells, 10 classes, auxiliary head excluded (476,426 alone).
    net = evalnet.make_network(darts.PUBLISHED[name], C=36, num_classes=10, layers=20)
    counts = costs.param_counts(net, (32, 32, 3))
    assert counts['network'] == expected
    assert counts['aux_head'] == 476_426
    assert counts['total'] == expected + 476_426


def test_imagenet_mobile_network_size():
    # DARTS (ImageNet mobile): C=48, 14 cells, 4.7M parameters.
    net = evalnet.make_network(darts.PUBLISHED['DARTS_V2'], network='imagenet', C=48, num_classes=1000, layers=14)
    assert round(costs.param_counts(net, (224, 224, 3))['network'] / 1e6, 1) == 4.7


def test_equal_cells_are_scanned():
    specs, C_aux, C_last = evalnet.cell_specs(darts.PUBLISHED['DARTS_V2'], 36, 20, 108, False)
    runs = evalnet.runs_of_equal_cells(specs)
    # 20 cells: stage cells 2-5, 8-12 and 15-19 each run as one scan.
    assert [r for r in runs if len(r) > 1] == [[2, 3, 4, 5], [8, 9, 10, 11, 12], [15, 16, 17, 18, 19]]
    assert [len(r) for r in runs if r[0] == 13] == [1]  # the aux cell stands alone
    assert C_aux == 4 * 144 and C_last == 4 * 144


def _tiny_net(auxiliary=True):
    return evalnet.make_network(darts.PUBLISHED['DARTS_V2'], C=4, num_classes=10, layers=5,
                                auxiliary=auxiliary, aux_channels=(8, 16))


def test_forward_shapes_and_aux_head_only_in_training():
    net = _tiny_net()
    x = jnp.ones((3, 8, 8, 1))
    v = jnn.init_variables(net, 0, x, train=True)
    assert 'aux_head' in v['params']
    (logits, aux), _ = net.apply(v, x, train=True, drop_prob=0.2, rngs={'drop_path': jax.random.key(1)},
                                 mutable=['batch_stats'])
    assert logits.shape == (3, 10) and aux.shape == (3, 10)
    assert np.all(np.isfinite(logits)) and np.all(np.isfinite(aux))
    logits, aux = net.apply(v, x, train=False)
    assert logits.shape == (3, 10) and aux is None
    # the reference geometry: an 8x8 input to the CIFAR head (32x32 images, two reductions)
    head = evalnet.AuxiliaryHead(10, (8, 16))
    y, _ = head.init_with_output(jax.random.key(0), jnp.ones((2, 8, 8, 12)), train=False)
    assert y.shape == (2, 10)
    no_aux = _tiny_net(auxiliary=False)
    assert 'aux_head' not in jnn.init_variables(no_aux, 0, x, train=True)['params']


def test_drop_path_statistics():
    x = jnp.ones((4000, 2, 2, 3))
    y = evalnet.drop_path(x, 0.3, jax.random.key(0))
    kept = np.asarray(y[:, 0, 0, 0] > 0)
    # whole examples are dropped, survivors scaled by 1 / keep, so the mean is preserved
    assert np.all((y == 0) | np.isclose(y, 1 / 0.7)), 'values must be 0 or 1/keep'
    assert np.all(np.ptp(np.asarray(y).reshape(4000, -1), axis=1) == 0), "one mask per example"
    assert abs(kept.mean() - 0.7) < 0.03
    assert abs(float(y.mean()) - 1.0) < 0.05
    np.testing.assert_array_equal(evalnet.drop_path(x, 0.0, jax.random.key(0)), x)


def test_drop_path_changes_training_output_only_when_on():
    net = _tiny_net()
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 1))
    v = jnn.init_variables(net, 0, x, train=True)
    run = lambda p, k: net.apply(v, x, train=True, drop_prob=p, rngs={'drop_path': jax.random.key(k)},
                                 mutable=['batch_stats'])[0][0]
    np.testing.assert_allclose(run(0.0, 1), run(0.0, 2), rtol=1e-6)
    assert not np.allclose(run(0.5, 1), run(0.5, 2))


def test_conv_helpers_match_lax():
    x = jax.random.normal(jax.random.key(0), (2, 7, 7, 3))
    w = jax.random.normal(jax.random.key(1), (3, 3, 3, 5))
    for stride in (1, 2):
        ref = jax.lax.conv_general_dilated(x, w, (stride, stride), [(1, 1), (1, 1)],
                                           dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
        np.testing.assert_allclose(eval_forms.conv2d(x, w, stride, 1), ref, rtol=1e-5, atol=1e-5)
    # the asymmetric convs of conv_7x1_1x7: 1x7 strided along W, 7x1 strided along H
    for kernel, stride, pad in (((1, 7), (1, 2), (0, 3)), ((7, 1), (2, 1), (3, 0))):
        w = jax.random.normal(jax.random.key(3), kernel + (3, 5))
        ref = jax.lax.conv_general_dilated(x, w, stride, [(pad[0], pad[0]), (pad[1], pad[1])],
                                           dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
        np.testing.assert_allclose(eval_forms.conv2d(x, w, stride, pad), ref, rtol=1e-5, atol=1e-5)
    dw = jax.random.normal(jax.random.key(2), (5, 5, 3))
    for stride, dil in ((1, 1), (2, 1), (1, 2), (2, 2)):
        pad = dil * 2
        ref = jax.lax.conv_general_dilated(x, dw[:, :, None, :], (stride, stride), [(pad, pad)] * 2,
                                           rhs_dilation=(dil, dil), dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                           feature_group_count=3)
        np.testing.assert_allclose(eval_forms.depthwise_conv(x, dw, stride, dil), ref, rtol=1e-5, atol=1e-5)


def test_bad_networks_rejected():
    with pytest.raises(evalnet.NetworkError, match='unknown evaluation network'):
        evalnet.make_network(darts.PUBLISHED['DARTS_V2'], network='mobile', C=4, num_classes=10, layers=5)
    with pytest.raises(evalnet.NetworkError, match='>= 3 cells'):
        evalnet.make_network(darts.PUBLISHED['DARTS_V2'], C=4, num_classes=10, layers=2)


@pytest.mark.parametrize('blocks', [(1, 1, 1), (3, 3, 3)])
def test_baseline_param_formula_and_matching(blocks):
    for widths in ((4, 8, 16), (5, 9, 19)):
        net = baseline.ResNet(widths, blocks, 10)
        v = jax.eval_shape(lambda x: net.init(jax.random.key(0), x, train=True), jnp.zeros((2, 8, 8, 1)))
        assert costs.count_params(v['params']) == baseline.param_count(widths, blocks, 1, 10)
    for target in (20_000, 245_242, 3_349_342):
        net, info = baseline.make_baseline(target, blocks=blocks, in_channels=3, num_classes=10)
        assert abs(info['relative_difference']) < 0.01
        w1, w2, w3 = info['widths']
        assert w1 <= w2 <= w3
    with pytest.raises(baseline.BaselineError, match='closest baseline'):
        baseline.make_baseline(50, blocks=blocks, in_channels=3, num_classes=10, tolerance=0.01)


# ---- genotypes of any node count: NASNet and AmoebaNet (quark0/darts genotypes.py) ----

# Parameter counts of the reference code's own networks (quark0/darts cnn/model.py,
# NetworkCIFAR(36, 10, 20, True, g) and NetworkImageNet(48, 1000, 14, True, g)), counted with
# PyTorch 2.13 (CPU) from a scratch copy of the reference code: every parameter whose name
# lacks 'auxiliary' (as its utils.count_parameters_in_MB) and the auxiliary head apart. The
# same script reproduced published.md's DARTS_V1/V2 and aux-head counts exactly.
REFERENCE_COUNTS = {
    ('NASNet', 'cifar'): (3_830_950, 457_994),
    ('AmoebaNet', 'cifar'): (3_145_078, 457_994),
    ('NASNet', 'imagenet'): (5_564_320, 1_236_200),
    ('AmoebaNet', 'imagenet'): (4_627_360, 1_236_200),
    ('DARTS_V2', 'imagenet'): (4_718_752, 1_260_776),
}


@pytest.mark.parametrize('name,network', list(REFERENCE_COUNTS))
def test_reference_param_counts_of_any_node_count(name, network):
    C, classes, layers, shape = (36, 10, 20, (32, 32, 3)) if network == 'cifar' else (48, 1000, 14, (224, 224, 3))
    net = evalnet.make_network(darts.PUBLISHED[name], network=network, C=C, num_classes=classes, layers=layers)
    counts = costs.param_counts(net, shape)
    assert (counts['network'], counts['aux_head']) == REFERENCE_COUNTS[name, network]


def test_eval_forms_cover_the_genotype_vocabulary():
    assert set(EVAL_FORMS) == set(darts.GENOTYPE_OPS) - {'none'}
    assert is_identity('skip_connect', 1) and not is_identity('skip_connect', 2)
    assert not any(is_identity(op, 1) for op in EVAL_FORMS if op != 'skip_connect')


def test_channel_bookkeeping_follows_concat_length():
    g = darts.PUBLISHED['NASNet']
    specs, C_aux, C_last = evalnet.cell_specs(g, 8, 5, 24, False)
    # reductions at cells 1 and 3: the reduce cell concatenates 3 nodes, the normal cell 5
    assert [s.C for s, _, _ in specs] == [8, 16, 16, 32, 32]
    assert [(s.C_pp, s.C_p) for s, _, _ in specs] == [(24, 24), (24, 40), (40, 48), (48, 80), (80, 96)]
    assert C_aux == 3 * 32 and C_last == 5 * 32


@pytest.mark.parametrize('name', ['NASNet', 'AmoebaNet'])
@pytest.mark.parametrize('network,shape', [('cifar', (32, 32, 3)), ('imagenet', (64, 64, 3))])
def test_any_node_count_forward_with_drop_path(name, network, shape):
    net = evalnet.make_network(darts.PUBLISHED[name], network=network, C=4, num_classes=7, layers=3,
                               aux_channels=(4, 8))
    x = jax.random.normal(jax.random.key(0), (2,) + shape)
    v = jnn.init_variables(net, 0, x, train=True)
    step = jax.jit(lambda v, x, k: net.apply(v, x, train=True, drop_prob=0.3, rngs={'drop_path': k},
                                             mutable=['batch_stats'])[0])
    logits, aux = step(v, x, jax.random.key(1))
    assert logits.shape == (2, 7) and aux.shape == (2, 7)
    assert np.all(np.isfinite(logits)) and np.all(np.isfinite(aux))
    assert not np.allclose(logits, step(v, x, jax.random.key(2))[0])  # drop path is on


def test_unknown_eval_op_is_a_clear_error():
    g = darts.PUBLISHED['DARTS_V2']._replace(normal=(('conv_9x9', 0),) + darts.PUBLISHED['DARTS_V2'].normal[1:])
    net = evalnet.NetworkCIFAR(g, 4, 10, 3)
    with pytest.raises(evalnet.NetworkError, match="'conv_9x9' has no evaluation-network module"):
        jax.eval_shape(lambda x: net.init(jax.random.key(0), x), jnp.zeros((1, 8, 8, 3)))
    with pytest.raises(darts.GenotypeError, match="unknown op 'conv_9x9'"):
        evalnet.make_network(g, C=4, num_classes=10, layers=3)


def test_normal_concat_may_name_the_cell_inputs():
    # As the reference Cell (torch.cat of any states): in a normal cell the two preprocessed
    # inputs have the nodes' shape; validation keeps them out of a reduction cell's concat.
    g = darts.PUBLISHED['DARTS_V2']._replace(normal_concat=(0, 1))
    net = evalnet.make_network(g, C=4, num_classes=10, layers=3, aux_channels=(4, 8))
    x = jnp.zeros((2, 8, 8, 3))
    v = jax.eval_shape(lambda x: net.init(jax.random.key(0), x, train=True), x)
    (logits, aux), _ = jax.eval_shape(lambda v, x: net.apply(v, x, train=True, drop_prob=0.2, mutable=['batch_stats'],
                                                             rngs={'drop_path': jax.random.key(0)}), v, x)
    assert logits.shape == (2, 10) and aux.shape == (2, 10)
    # cell 1 (reduction, C=8) preprocesses the stem (3 * 4 channels) and cell 0 (2 * 4)
    assert v['params']['cells']['cell_1']['ReLUConvBN_0']['conv'].shape == (3 * 4, 8)
    assert v['params']['cells']['cell_1']['ReLUConvBN_1']['conv'].shape == (2 * 4, 8)


def test_input_too_small_for_the_reductions_is_a_clear_error():
    from jaxnas.errors import JaxnasError
    net = evalnet.make_network(darts.PUBLISHED['NASNet'], network='imagenet', C=4, num_classes=10, layers=3)
    with pytest.raises(JaxnasError, match='needs even spatial sizes, got 1x1') as info:
        jax.eval_shape(lambda x: net.init(jax.random.key(0), x, train=True), jnp.zeros((2, 8, 8, 1)))
    assert '\n' not in str(info.value)
