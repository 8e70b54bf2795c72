"""benchmarks/cost_validation.py at tiny shapes, the ``measured`` model's cache, and the
multiply-add counts the validation compares (depthwise convs included)."""
import importlib.util
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import make_tiny_config
from jaxnas import costs, spaces
from jaxnas.costs import measured
from jaxnas.nn import depthwise
from jaxnas.ops.eval_forms import depthwise_conv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location('cost_validation', os.path.join(ROOT, 'benchmarks', 'cost_validation.py'))
cv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cv)


def tiny_nb201():
    return make_tiny_config(**{'space': 'nb201', 'model.channels': 2, 'model.cells_per_stage': 1})


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv('JAXNAS_COST_CACHE', str(tmp_path / 'cache'))
    monkeypatch.setenv('JAXNAS_MEASURED_CALLS', '3')
    monkeypatch.setenv('JAXNAS_MEASURED_WARMUP', '1')
    return tmp_path / 'cache'


def test_validate_space_tiny(cache_dir, tmp_path):
    config = tiny_nb201()
    res = cv.validate_space('nb201', config, n_genotypes=3, batch=4, calls=3, warmup=1, rounds=2)
    space = spaces.get('nb201')
    rows = res['genotypes']
    assert len(rows) == 3 and len({r['genotype'] for r in rows}) == 3
    table = costs.table_for_config(config, 'measured')   # cached now: the same figures
    assert table.batch == 4 and res['batch'] == 4
    for r in rows:
        assert r['predicted_wall_us'] == pytest.approx(table.genotype_cost(space.parse(r['genotype'])))
        assert r['predicted_process_us'] > 0
        assert all(r[f'{n}_{c}_us'] > 0 for n in ('search', 'eval') for c in ('wall', 'process'))
    for name in ('search', 'eval'):
        for clock in ('wall', 'process'):
            s = res['networks'][name][clock]
            assert -1 <= s['spearman'] <= 1 and -1 <= s['pearson'] <= 1
            assert -1 <= s['repeatability_spearman'] <= 1
            assert set(s['fit']) == {'a', 'b', 'r2'} and s['spread'] >= 1
            assert math.isfinite(s['dispatch_corrected']['spearman'])
    assert res['table_cache']['wall'] != res['table_cache']['process']
    # single path: each edge a switch over its ops (a select would run every op)
    assert res['networks']['search']['hlo_conditionals'] > 0
    assert len(res['load_before']) == len(res['load_after']) == 3 and isinstance(res['loaded'], bool)
    assert res['dispatch_us']['wall'] > 0
    json.dumps(res)
    cv.plot_space(res, 'search', str(tmp_path / 'scatter.png'))
    assert (tmp_path / 'scatter.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    report = {'command': 'x', 'jax': jax.__version__, 'device_kind': 'cpu', 'cpu_count': 2, 'machine': 'm',
              'runtime_s': 1.0, 'latency': {'nb201': res}, 'macs': []}
    md = cv.markdown(report)
    assert '| nb201 | search | wall | 3 |' in md and '| nb201 | eval | process | 3 |' in md


def test_rank_statistics():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, 40).astype(float)          # ties
    y = x + rng.normal(0, 2, 40)
    from scipy import stats
    assert cv.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    assert cv.spearman([1, 2, 3, 4], [10, 20, 25, 100]) == pytest.approx(1.0)
    assert cv.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    fit = cv.linear_fit([1.0, 2.0, 4.0], [5.0, 7.0, 11.0])
    assert fit['a'] == pytest.approx(2) and fit['b'] == pytest.approx(3) and fit['r2'] == pytest.approx(1)
    g = cv.distinct_genotypes(spaces.get('mbconv'), 5)
    assert len({str(v) for v in g}) == 5


def test_measured_cache_times_once_per_device_and_jax_version(cache_dir, monkeypatch):
    timed = []

    def fake_prepare(module, entry):
        timed.append(entry.key())
        return lambda: jnp.zeros(())

    monkeypatch.setattr(measured, 'prepare', fake_prepare)
    assert measured.settings() == (3, 1, measured.ROUNDS)   # from the environment
    config = tiny_nb201()
    t1 = costs.table_for_config(config, 'measured')
    unique = {e.key() for *_, e in costs.table.entries(spaces.get('nb201'), config.model, (8, 8, 1), batch=64,
                                                        dtype='float32') if e is not None}
    assert sorted(timed) == sorted(unique)
    path = measured.cache_path()
    assert os.path.dirname(path) == str(cache_dir)
    assert os.path.basename(path) == f'measured-{measured.device_kind()}-jax{jax.__version__}.json'.replace(' ', '_')
    assert set(json.load(open(path))) == unique
    timed.clear()
    t2 = costs.table_for_config(config, 'measured')      # a second build times nothing
    assert timed == [] and all(np.array_equal(t1.costs[c], t2.costs[c]) for c in t1.costs)
    # a broken entry is timed again, the others read back
    data = json.load(open(path))
    bad = sorted(data)[0]
    data[bad] = -1.0
    open(path, 'w').write(json.dumps(data))
    costs.table_for_config(config, 'measured')
    assert timed == [bad]
    # another jax version or device kind: another file, timed afresh
    monkeypatch.setattr(measured.jax, '__version__', '0.0.0-test')
    assert measured.cache_path() != path
    monkeypatch.setattr(measured, 'device_kind', lambda: 'gpu-Test GPU')
    assert 'gpu-Test_GPU' in measured.cache_path()
    timed.clear()
    costs.table_for_config(config, 'measured')
    assert sorted(timed) == sorted(unique)


def test_measured_settings_reject_bad_values(monkeypatch):
    monkeypatch.setenv('JAXNAS_MEASURED_CALLS', '0')
    with pytest.raises(costs.CostError, match='JAXNAS_MEASURED_CALLS'):
        measured.settings()
    monkeypatch.setenv('JAXNAS_MEASURED_CALLS', 'many')
    with pytest.raises(costs.CostError, match='integer'):
        measured.settings()
    assert measured.settings(calls=5, warmup=0, rounds=2) == (5, 0, 2)
    with pytest.raises(costs.CostError, match='rounds >= 1'):
        measured.settings(calls=5, warmup=0, rounds=0)
    monkeypatch.setenv('JAXNAS_MEASURED_CLOCK', 'sundial')
    with pytest.raises(costs.CostError, match='JAXNAS_MEASURED_CLOCK'):
        measured.clock()
    monkeypatch.setenv('JAXNAS_MEASURED_CLOCK', 'process')
    assert measured.cache_path().endswith('-process.json')


@pytest.mark.parametrize('stride, dilation, k', [(1, 1, 3), (2, 1, 5), (1, 2, 3)])
def test_depthwise_multiply_adds_are_counted(stride, dilation, k):
    # written as shifted multiply-adds (no conv primitive): k*k*C*Ho*Wo, the papers' count
    B, H, C = 2, 8, 3
    x = jax.ShapeDtypeStruct((B, H, H, C), jnp.float32)
    Ho = (H - 1) // stride + 1
    expected = k * k * C * Ho * Ho * B
    w = jax.ShapeDtypeStruct((k, k, C), jnp.float32)
    assert costs.conv_linear_macs(lambda x, w: depthwise_conv(x, w, stride, dilation), x, w) == expected
    w2 = jax.ShapeDtypeStruct((1, k, k, C), jnp.float32)
    assert costs.conv_linear_macs(lambda x, w: depthwise(x, w, k=k, stride=stride, dilations=(dilation,)),
                                  x, w2) == expected


def test_analytic_counts_equal_xla_counts():
    from jaxnas.spaces.nb201 import network as nb201_net
    from jaxnas.spaces.mbconv import macro as M
    nb = spaces.get('nb201')
    for arch in ('|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|',
                 '|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|',
                 str(nb.sample(jax.random.key(3)))):
        info = nb201_net.cost_info(nb.parse(arch), 10, 8, C=4, N=2)
        assert info['macs'] == cv.nb201_analytic_macs(arch, C=4, N=2, image=8), arch
    mb = spaces.get('mbconv')
    r = cv.space_config('mbconv').retrain
    macro = M.from_config(r.mbconv)
    for g in (mb.published['MBCONV_K7E6'], mb.sample(jax.random.key(1))):
        net = mb.eval_network(g, r, 10)
        v = costs.variable_shapes(net, (8, 8, 1))
        fwd = lambda p, s, x: net.apply({'params': p, 'batch_stats': s}, x, train=False)[0]
        macs = costs.conv_linear_macs(fwd, v['params'], v['batch_stats'], jax.ShapeDtypeStruct((1, 8, 8, 1), jnp.float32))
        assert macs == cv.mbconv_analytic_macs(g, macro), str(g)
