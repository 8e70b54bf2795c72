"""The MBConv chain space: genotype text/JSON, codec, sampling and derivation rules, edge
shapes against the networks, the evaluation network's parameter count by hand, the
supernet's modes, and one CLI smoke run each of search, retrain and discrete."""
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT
from jaxnas import cli, config as config_lib, spaces
from jaxnas.nn import init_variables
from jaxnas.spaces import mbconv as G
from jaxnas.spaces.base import ChoiceError
from jaxnas.spaces.mbconv import evalnet, supernet

SPACE = spaces.get('mbconv')
SKIP = G.PRIMITIVES.index('skip_connect')
FIRST_ROWS = [0, 2, 5]   # the first layer of each stage of the (2, 3, 3) layout


def tiny_macro(**changes):
    m = config_lib.mbconv_config()
    m.stem_channels, m.widths, m.head_channels = 4, (4, 4, 8), 8
    m.update(changes)
    return m


def model_cfg(**changes):
    c = config_lib.base_config()
    c.model.mbconv = tiny_macro(**changes)
    c.retrain.mbconv = tiny_macro(**changes)
    return c


# --- genotype, text, JSON ---------------------------------------------------------------

def test_text_and_json_round_trips():
    samples = [SPACE.sample(jax.random.key(i)) for i in range(30)] + list(SPACE.published.values())
    for g in samples:
        assert SPACE.parse(str(g)) == g
        assert SPACE.from_json(json.loads(json.dumps(SPACE.to_json(g)))) == g
        assert SPACE.to_json(g)['space'] == 'mbconv'
        assert spaces.parse_any(str(g))[1] == g and spaces.of_genotype(g) is SPACE
    g = SPACE.parse('mbconv:k3e6-k5e3|k3e3-skip-k7e6|k5e6-skip-skip')
    assert g.ops[:3] == ('mbconv_k3_e6', 'mbconv_k5_e3', 'mbconv_k3_e3') and g.layers == (2, 3, 3)
    assert g.depth() == 5 and g.count(('skip_connect',)) == 3
    assert SPACE.parse('MOBILENETV2').ops == ('mbconv_k3_e6',) * 8
    assert SPACE.parse(json.dumps(g.to_json())) == g


@pytest.mark.parametrize('text, message', [
    ('mbconv:skip-k3e3|k3e3-k3e3-k3e3|k3e3-k3e3-k3e3', 'stage 0 starts with skip'),
    ('mbconv:k3e3-k4e3|k3e3-k3e3-k3e3|k3e3-k3e3-k3e3', "unknown MBConv op 'k4e3'"),
    ('mbconv:k3e3--k3e3', 'empty layer'),
    ('k3e3-k3e3', "a text 'mbconv:"),
    ('NOT_A_NAME', 'unknown MBConv genotype'),
])
def test_bad_genotypes_are_one_line_errors(text, message):
    with pytest.raises(G.GenotypeError, match=message) as info:
        SPACE.parse(text)
    assert '\n' not in str(info.value)


def test_a_genotype_of_another_layout_parses_but_has_no_mix():
    g = SPACE.parse('mbconv:k3e3|k5e6-skip')
    assert g.layers == (1, 2)
    with pytest.raises(G.GenotypeError, match='layers per stage'):
        SPACE.one_hot(g)
    with pytest.raises(ChoiceError, match='layers per stage'):
        SPACE.choices().encode(g)


# --- codec, sampling, derivation ---------------------------------------------------------

def test_codec_round_trip_and_every_vector_valid():
    codec = SPACE.choices()
    assert codec.sizes == (6, 7, 6, 7, 7, 6, 7, 7) and len(codec.names) == 8
    for i in range(20):
        g = SPACE.sample(jax.random.key(i))
        assert codec.decode(codec.encode(g)) == g
    rng = np.random.default_rng(0)
    vectors = [np.zeros(8, int), np.asarray(codec.sizes) - 1] + [rng.integers(0, codec.sizes) for _ in range(50)]
    for v in vectors:
        g = codec.decode(v)
        assert G.validate(g) == g and list(codec.encode(g)) == list(v)
        assert all(g.ops[r] != 'skip_connect' for r in FIRST_ROWS)


def test_sample_is_uniform_over_the_allowed_ops():
    ops = np.array([SPACE.sample(jax.random.key(i)).ops for i in range(300)])
    for r in range(8):
        seen = set(ops[:, r])
        assert seen == (set(G.MBCONV_OPS) if r in FIRST_ROWS else set(G.PRIMITIVES)), r


def test_derive_never_picks_a_disallowed_skip():
    w = np.full((8, 7), 0.1)
    w[:, SKIP] = 0.9                        # skip strongest everywhere
    w[:, 3] = 0.5                           # then k5e6
    g = SPACE.derive({'layers': w})
    assert [op == 'skip_connect' for op in g.ops] == [r not in FIRST_ROWS for r in range(8)]
    assert all(g.ops[r] == 'mbconv_k5_e6' for r in FIRST_ROWS)
    # FairDARTS threshold: below it, skip where allowed; the first layers keep their best op
    w = np.full((8, 7), 0.2)
    w[:, 1] = 0.6
    w[1, 4] = 0.9
    g = SPACE.derive({'layers': w}, threshold=0.85)
    assert g.ops[1] == 'mbconv_k7_e3'
    assert [g.ops[r] for r in FIRST_ROWS] == ['mbconv_k3_e6'] * 3
    assert all(g.ops[r] == 'skip_connect' for r in (3, 4, 6, 7))
    assert SPACE.diagnostics({'layers': w}, g, 0.85)['edges_below_threshold'] == 3
    # one-hot mixes derive back to their genotype
    for i in range(10):
        g = SPACE.sample(jax.random.key(100 + i))
        assert SPACE.derive(SPACE.one_hot(g)) == g


# --- shapes and networks -----------------------------------------------------------------

def _record_layer_shapes(net, *args, module_type, **kwargs):
    calls = []

    def interceptor(next_fun, args_, kwargs_, context):
        if isinstance(context.module, module_type) and context.method_name == '__call__':
            m, x = context.module, args_[0]
            calls.append((tuple(x.shape[1:3]), x.shape[-1], m.c_out if hasattr(m, 'c_out') else m.C_out,
                          m.stride))
        return next_fun(*args_, **kwargs_)

    with nn.intercept_methods(interceptor):
        jax.eval_shape(lambda *a: net.init(jax.random.key(0), *a, **kwargs), *args)
    return calls


@pytest.mark.parametrize('input_shape', [(8, 8, 1), (9, 9, 3)])
def test_edge_shapes_match_the_networks(input_shape):
    c = model_cfg(stem_stride=1, strides=(1, 2, 2))
    shapes = SPACE.edge_shapes(c.model, input_shape)['layers']
    assert [s.row for s in shapes] == list(range(8)) and all(s.count == 1 for s in shapes)
    expected = [(s.input_hw, s.c_in, s.c_out, s.stride) for s in shapes]
    # the evaluation network of an all-MBConv chain runs every layer in order
    x = jnp.zeros((2,) + input_shape)
    net = SPACE.eval_network(SPACE.published['MBCONV_K3E3'], c.retrain, 10)
    assert _record_layer_shapes(net, x, module_type=evalnet.MBConvBlock, train=False) == expected
    # the search network: each stage's first layer, and its scanned body once per stage
    snet = SPACE.search_network(c.model, 10)
    mix = {'layers': jnp.full((8, 7), 1 / 7)}
    seen = _record_layer_shapes(snet, x, mix, module_type=supernet.SearchLayer, train=True)
    assert set(seen) == set(expected)
    # and the shapes come out: (2, 10) logits, stride-2 layers halve H and W (ceil)
    assert shapes[2].input_hw == (input_shape[0], input_shape[1])
    assert shapes[5].input_hw == (-(-input_shape[0] // 2),) * 2


def test_eval_network_parameter_count_by_hand():
    c = config_lib.base_config()
    c.retrain.mbconv.update(dict(stem_channels=4, stem_stride=1, widths=(4, 8), strides=(1, 2), head_channels=16))
    g = SPACE.parse('mbconv:k3e3|k5e6-skip')
    net = SPACE.eval_network(g, c.retrain, 10)
    x = jnp.zeros((2, 8, 8, 1))
    v = init_variables(net, 0, x, train=False)
    count = sum(a.size for a in jax.tree.leaves(v['params']))
    bn = lambda ch: 2 * ch                       # affine scale + bias
    stem = 9 * 1 * 4 + bn(4)
    k3e3 = 4 * 12 + bn(12) + 9 * 12 + bn(12) + 12 * 4 + bn(4)       # 4 -> 4, hidden 12
    k5e6 = 4 * 24 + bn(24) + 25 * 24 + bn(24) + 24 * 8 + bn(8)      # 4 -> 8, hidden 24
    head = 8 * 16 + bn(16) + 16 * 10 + 10
    assert count == stem + k3e3 + k5e6 + head == 1634
    (logits, aux), _ = net.apply(v, x, train=True, drop_prob=0.5, rngs={'drop_path': jax.random.key(1)},
                                 mutable=['batch_stats'])
    assert logits.shape == (2, 10) and aux is None and np.isfinite(logits).all()
    with pytest.raises(G.GenotypeError, match='has 2 widths'):
        SPACE.eval_network(SPACE.published['MOBILENETV2'], c.retrain, 10)


@pytest.fixture(scope='module')
def tiny_supernet():
    c = model_cfg()
    net = SPACE.search_network(c.model, 10)
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 1))
    v = init_variables(net, 0, x, {'layers': jnp.full((8, 7), 1 / 7)}, train=True)
    return c, net, x, v


def test_supernet_modes_and_the_excluded_skip(tiny_supernet):
    c, net, x, v = tiny_supernet
    g = SPACE.sample(jax.random.key(5))
    mix = jnp.asarray(SPACE.one_hot(g)['layers'])
    mix = mix.at[0].set(jax.nn.one_hot(SKIP, 7))   # a disallowed skip: that layer outputs zero
    apply = jax.jit(lambda n, m: n.apply(v, x, {'layers': m}, train=True, mutable=['batch_stats']),
                    static_argnums=0)
    y_dense, s_dense = apply(net, mix)
    y_single, s_single = apply(net.clone(mode='single_path'), mix)
    np.testing.assert_allclose(y_single, y_dense, rtol=1e-5, atol=1e-5)
    assert jax.tree.structure(s_single) == jax.tree.structure(s_dense)
    # a first layer's skip column contributes nothing, whatever its weight
    soft = jax.nn.softmax(jax.random.normal(jax.random.key(6), (8, 7)), -1)
    no_skip = soft.at[jnp.asarray(FIRST_ROWS), SKIP].set(0.0)
    np.testing.assert_allclose(apply(net, soft)[0], apply(net, no_skip)[0], rtol=1e-6, atol=1e-6)
    # partial channel: only the shape-keeping layers split (widths 4, 4, 8 divisible by 2)
    pc = SPACE.search_network(c.model, 10, mode='partial_channel', partial_channels=2)
    vp = init_variables(pc, 0, x, {'layers': soft}, train=True)
    y, _ = pc.apply(vp, x, {'layers': soft}, train=True, mutable=['batch_stats'])
    assert y.shape == (4, 10) and np.isfinite(y).all()
    first = vp['params']['stage1_first']['mixed']['mbconvs']['expand']
    rest = vp['params']['stage1_rest']['layer']['mixed']['mbconvs']['expand']
    assert first.shape[-2] == 4 and rest.shape[-2] == 2


def test_config_checks():
    c = config_lib.base_config()
    c.space = 'mbconv'
    config_lib.validate(c)
    for overrides, message in [([('model.mbconv.widths', (8, 16))], 'needs one stride per stage'),
                               ([('model.mbconv.widths', (8, 16)), ('model.mbconv.strides', (1, 2))],
                                'the layout has 3 stages'),
                               ([('model.mbconv.strides', (1, 3, 2))], 'stride must be 1 or 2'),
                               ([('retrain.mbconv.head_channels', 0)], 'must be >= 1')]:
        bad = config_lib.apply_overrides(config_lib.base_config(), [('space', 'mbconv')] + overrides)
        with pytest.raises(config_lib.ConfigError, match=message):
            config_lib.validate(bad)
    bad = config_lib.apply_overrides(config_lib.base_config(), [
        ('space', 'mbconv'), ('relaxation.name', 'pcdarts'), ('model.mbconv.widths', (12, 18, 24))])
    with pytest.raises(config_lib.ConfigError, match='stage 1 width 18 must be divisible'):
        config_lib.validate(bad)


def test_drawing(tmp_path):
    paths = SPACE.draw(SPACE.parse('mbconv:k3e6-k5e3|k3e3-skip-k7e6|k5e6-skip-skip'), str(tmp_path))
    assert len(paths) == 1 and os.path.getsize(paths[0]) > 1000


# --- CLI smoke runs ----------------------------------------------------------------------

TINY = os.path.join(ROOT, 'experiments', 'tiny.py')
MACRO = ['--config.space=mbconv'] + [f'--config.{s}.mbconv.{k}={v}' for s in ('model', 'retrain')
                                     for k, v in (('stem_channels', 4), ('widths', '(4,4,8)'),
                                                  ('head_channels', 8))]


def test_cli_search_smoke(tmp_path, capsys):
    workdir = str(tmp_path / 'search')
    rc = cli.main(['search', '--config', TINY, '--workdir', workdir, '--no-progress', '--config.search.epochs=1']
                  + MACRO)
    out = capsys.readouterr().out
    assert rc == 0, out
    g = SPACE.parse(open(os.path.join(workdir, 'genotype.txt')).read())
    assert SPACE.from_json(json.load(open(os.path.join(workdir, 'genotype.json')))) == g
    assert all(g.ops[r] != 'skip_connect' for r in FIRST_ROWS)
    line = json.loads(open(os.path.join(workdir, 'log.jsonl')).readline())
    assert np.asarray(line['alphas']['layers']).shape == (8, 7)
    assert json.load(open(os.path.join(workdir, 'summary.json')))['complete']


def test_cli_retrain_smoke(tmp_path, capsys):
    workdir = str(tmp_path / 'retrain')
    rc = cli.main(['retrain', '--config', TINY, '--workdir', workdir, '--no-progress', '--config.retrain.epochs=1',
                   '--genotype', 'mbconv:k3e6-skip|k5e3-k7e6-skip|k3e3-skip-k5e6'] + MACRO)
    out = capsys.readouterr().out
    assert rc == 0, out
    scores = json.load(open(os.path.join(workdir, 'scores.json')))
    assert scores['complete'] and 0 <= scores['scores'][0]['accuracy'] <= 1
    assert scores['description']['genotype'] == 'mbconv:k3e6-skip|k5e3-k7e6-skip|k3e3-skip-k5e6'


@pytest.mark.slow
def test_cli_discrete_random_smoke(tmp_path, capsys):
    workdir = str(tmp_path / 'discrete')
    rc = cli.main(['discrete', '--config', os.path.join(ROOT, 'experiments', 'digits_discrete.py') + ':tiny',
                   '--workdir', workdir, '--no-progress', '--searcher=random',
                   '--config.discrete.max_evaluations=4'] + MACRO)
    out = capsys.readouterr().out
    assert rc == 0 and 'best genotype' in out, out
    history = [json.loads(l) for l in open(os.path.join(workdir, 'history.jsonl'))]
    assert len(history) == 4
    for h in history:
        assert all(SPACE.parse(h['genotype']).ops[r] != 'skip_connect' for r in FIRST_ROWS)
    SPACE.parse(open(os.path.join(workdir, 'genotype.txt')).read())
