"""The shipped TPU cost tables (jaxnas/costs/data/tpu-<chip>.json, jaxnas.costs.tpu): their
format, that the shipped configs' tables build from them without compiling, that
genotype costs order as the hardware says, clear errors; and, only where libtpu is
installed (not in CI), that a fresh regeneration equals the shipped entries."""
import importlib.util
import math
import os

import jax
import pytest

from jaxnas import config as config_lib, costs, spaces
from jaxnas.costs import models, table as T, tpu
from jaxnas.costs.xla import CostError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHIPS = models.TPU_CHIPS
# The digits configs of the three spaces, and the DARTS paper's CIFAR-10 search config.
DIGITS = {'darts': ('experiments/digits.py', []), 'nb201': ('experiments/digits.py', [('space', 'nb201')]),
          'mbconv': ('experiments/digits_mbconv.py', [])}
CIFAR = ('experiments/cifar10_darts.py', [])


def _config(spec):
    path, overrides = spec
    return config_lib.apply_overrides(config_lib.load_config(os.path.join(ROOT, path)), overrides)


def _all(space, op):
    """A genotype of ``space`` with ``op`` on every edge it may take."""
    if space.name == 'darts':
        g = space.sample(jax.random.key(0))
        return g._replace(normal=tuple((op, j) for _, j in g.normal), reduce=tuple((op, j) for _, j in g.reduce))
    if space.name == 'nb201':
        return space.parse(f'|{op}~0|+|{op}~0|{op}~1|+|{op}~0|{op}~1|{op}~2|')
    raise ValueError(space.name)


@pytest.mark.parametrize('chip', CHIPS)
def test_shipped_table_format(chip):
    table = tpu.load(chip)
    meta, entries = table['meta'], table['entries']
    for field in tpu.META_FIELDS:
        assert meta.get(field), field
    assert meta['chip'] == chip and meta['topology'] == tpu.TOPOLOGIES[chip] and meta['unit'] == tpu.UNIT
    assert meta['unit'] == models.get(f'tpu-{chip}').unit
    assert meta['command'].startswith(tpu.GENERATOR)
    assert len(entries) > 100
    for key, us in entries.items():
        assert isinstance(us, float) and math.isfinite(us) and us > 0, (key, us)
        e = tpu.parse_key(key)
        assert e.key() == key
        space = spaces.get(e.space)
        assert e.op in space.primitives and e.op != 'none'
        assert e.dtype in models.DTYPES and min(e.input_hw) >= 1 and e.c_in >= 1 and e.c_out >= 1
        assert e.stride in (1, 2) and e.batch >= 1
    # Every chip's table holds the same entries (one generator run, the same configs).
    assert set(entries) == set(tpu.load(CHIPS[0])['entries'])


@pytest.mark.parametrize('space_name', sorted(DIGITS))
def test_digits_tables_build_from_the_data(space_name, monkeypatch):
    """Every tpu model builds the digits config's full table from the data: nothing compiles."""
    monkeypatch.setattr(tpu, 'compile_us', None)   # any compile attempt would fail
    space = spaces.get(space_name)
    config = _config(DIGITS[space_name])
    for chip in CHIPS:
        t = costs.table_for_config(config, f'tpu-{chip}')
        assert t.unit == tpu.UNIT and t.batch == 64 and t.dtype == 'bfloat16'
        for cell in space.cell_types:
            c = t.costs[cell]
            assert c.shape == tuple(space.arch_shapes[cell]) and (c >= 0).all() and c.max() > 0
        for i in range(3):
            g = space.sample(jax.random.key(i))
            assert t.genotype_cost(g, space) > 0
            assert t.genotype_cost(g, space) == pytest.approx(sum(r['cost'] for r in t.breakdown(g, space)))


def test_genotype_costs_order_sensibly():
    """A genotype of convolutions costs more than one of parameter-free ops on every chip,
    a bigger kernel / expansion more than a smaller one; the CIFAR-10 search network
    (C=16, 8 cells, 32x32) more than the digits one (C=8, 5 cells, 8x8); the newer, faster
    chip (v6e: 4.7x v5e's bf16 peak, 2x its bandwidth) less for the CIFAR-10 network."""
    darts, nb201, mbconv = (spaces.get(n) for n in ('darts', 'nb201', 'mbconv'))
    cifar = {}
    for chip in CHIPS:
        model = f'tpu-{chip}'
        t = costs.table_for_config(_config(DIGITS['darts']), model)
        cost = {op: t.genotype_cost(_all(darts, op), darts) for op in darts.primitives if op != 'none'}
        assert cost['sep_conv_5x5'] > cost['sep_conv_3x3'] > max(cost['skip_connect'], cost['max_pool_3x3'],
                                                                  cost['avg_pool_3x3'])
        # (Not: dilated convs above the pools. At 8 channels on 128 lanes the pools are
        # memory-bound and XLA:TPU costs them above a dil_conv: a fact of the chip.)
        assert cost['dil_conv_5x5'] > cost['dil_conv_3x3'] > cost['skip_connect'] > 0
        t = costs.table_for_config(_config(DIGITS['nb201']), model)
        cost = {op: t.genotype_cost(_all(nb201, op), nb201) for op in nb201.primitives}
        assert cost['none'] == 0
        assert cost['nor_conv_3x3'] > cost['nor_conv_1x1'] > cost['skip_connect']
        assert cost['avg_pool_3x3'] > cost['skip_connect']    # (a pool may cost more than a conv, as above)
        t = costs.table_for_config(_config(DIGITS['mbconv']), model)
        big, small = (t.genotype_cost(mbconv.parse(n), mbconv) for n in ('MBCONV_K7E6', 'MBCONV_K3E3'))
        skips = t.genotype_cost(mbconv.parse('mbconv:k3e3-skip|k3e3-skip-skip|k3e3-skip-skip'), mbconv)
        assert big > small > skips > 0
        c = costs.table_for_config(_config(CIFAR), model)
        g = _all(darts, 'sep_conv_3x3')
        cifar[chip] = c.genotype_cost(g, darts)
        assert cifar[chip] > costs.table_for_config(_config(DIGITS['darts']), model).genotype_cost(g, darts)
    assert cifar['v6e'] < cifar['v5e']


def test_missing_entry_is_one_line_naming_the_generator():
    odd = T.OpEntry('darts', 'sep_conv_3x3', (7, 7), 13, 13, 1, 64, 'bfloat16')
    with pytest.raises(CostError) as e:
        tpu.lookup('v5e', [odd])
    msg = str(e.value)
    assert '\n' not in msg and odd.key() in msg and tpu.GENERATOR in msg and '--chips v5e' in msg and '[tpu]' in msg
    # The same through a config whose network has no table entries (13 channels).
    c = _config(DIGITS['darts'])
    c.model.channels = 13
    with pytest.raises(CostError, match='benchmarks/tpu_tables.py --chips v6e') as e:
        costs.table_for_config(c, 'tpu-v6e')
    assert '\n' not in str(e.value)


def test_malformed_tables_are_one_line_errors():
    good = tpu.load('v5e')
    key = next(iter(good['entries']))
    meta = dict(good['meta'])
    bad = [
        ([], 'not a jaxnas TPU table'),
        ({'entries': {}}, 'not a jaxnas TPU table'),
        ({'meta': {k: v for k, v in meta.items() if k != 'libtpu'}, 'entries': {}}, 'meta lacks libtpu'),
        ({'meta': {**meta, 'unit': 'seconds'}, 'entries': {}}, 'unit'),
        ({'meta': meta, 'entries': {key: -1.0}}, 'finite microseconds > 0'),
        ({'meta': meta, 'entries': {key: float('nan')}}, 'finite microseconds > 0'),
        ({'meta': meta, 'entries': {key: True}}, 'finite microseconds > 0'),
        ({'meta': meta, 'entries': {'darts/sep_conv_3x3/8x8': 1.0}}, 'not an op entry key'),
    ]
    for table, words in bad:
        with pytest.raises(CostError, match=words) as e:
            tpu.check_table(table, 'x.json')
        assert '\n' not in str(e.value)
    assert tpu.check_table(good, 'x.json') is good
    with pytest.raises(CostError, match='unknown TPU chip'):
        tpu.check_chip('v9')


@pytest.mark.parametrize('k, stride, padding', [(3, 1, 1), (3, 2, 1), (1, 2, 0), (1, 1, 0),
                                                ((1, 7), (1, 2), (0, 3)), ((7, 1), (2, 1), (3, 0))])
def test_tpu_forms_compute_the_same_convolution(k, stride, padding):
    """The TPU tables cost dense convs as one XLA convolution (tpu.tpu_forms): the same
    numbers as the evaluation forms' im2col matmul, on this CPU; the swap is undone after."""
    from jaxnas.ops import eval_forms
    kh, kw = eval_forms._pair(k)
    kx, kw_ = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (2, 7, 9, 3))
    w = jax.random.normal(kw_, (kh, kw, 3, 5))
    want = eval_forms.conv2d(x, w, stride, padding)
    got = tpu.lax_conv2d(x, w, stride, padding)
    assert got.shape == want.shape
    assert jax.numpy.allclose(got, want, atol=1e-4, rtol=1e-4)
    module = eval_forms.Conv(5, k, stride, padding)
    variables = module.init(jax.random.key(1), x)
    with tpu.tpu_forms():
        assert eval_forms.conv2d is tpu.lax_conv2d
        inside = module.apply(variables, x)
    assert eval_forms.conv2d is not tpu.lax_conv2d
    assert jax.numpy.allclose(inside, module.apply(variables, x), atol=1e-4, rtol=1e-4)


def _generator():
    spec = importlib.util.spec_from_file_location('tpu_tables', os.path.join(ROOT, 'benchmarks', 'tpu_tables.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_regeneration_equals_the_shipped_table(tmp_path, monkeypatch):
    """Only with libtpu (the [tpu] extra; CI has none): the generator, run afresh on the
    tiny NAS-Bench-201 config for v5e into an empty directory, gives the shipped entries;
    a rerun with another config adds its entries and keeps the first ones."""
    pytest.importorskip('libtpu', exc_type=ImportError)
    shipped = tpu.load('v5e')
    if {k: shipped['meta'][k] for k in ('jax', 'jaxlib', 'libtpu')} != tpu.versions():
        pytest.skip('the shipped v5e table was made with other jax / libtpu versions')
    monkeypatch.setenv('JAX_PLATFORMS', os.environ.get('JAX_PLATFORMS', 'cpu'))   # restored after the test
    monkeypatch.setenv('ALLOW_MULTIPLE_LIBTPU_LOAD', '1')
    gen = _generator()
    first = 'experiments/tiny.py --config.space=nb201'
    monkeypatch.chdir(ROOT)
    assert gen.main(['--chips', 'v5e', '--config', first, '--data-dir', str(tmp_path)]) == 0
    fresh = tpu.check_table(gen.read_table(str(tmp_path / 'tpu-v5e.json')), 'fresh')
    assert fresh['meta']['configs'] == [first] and fresh['meta']['libtpu'] == shipped['meta']['libtpu']
    keys = {e.key() for e in gen.config_entries(first, 64, 'bfloat16')}
    assert set(fresh['entries']) == keys and keys <= set(shipped['entries'])
    for k in keys:
        assert fresh['entries'][k] == pytest.approx(shipped['entries'][k], rel=1e-6), k
    # A rerun with a second config (two entries of it, to stay fast) adds, never drops.
    extra = sorted(set(shipped['entries']) - keys)[:2]
    monkeypatch.setattr(gen, 'config_entries', lambda spec, batch, dtype: [tpu.parse_key(k) for k in extra])
    assert gen.main(['--chips', 'v5e', '--config', 'two', '--data-dir', str(tmp_path)]) == 0
    again = gen.read_table(str(tmp_path / 'tpu-v5e.json'))
    assert set(again['entries']) == keys | set(extra) and again['meta']['configs'] == [first, 'two']
    assert all(again['entries'][k] == fresh['entries'][k] for k in keys)
    for k in extra:
        assert again['entries'][k] == pytest.approx(shipped['entries'][k], rel=1e-6), k
