"""NAS-Bench-201 space: architecture strings, genotypes, benchmark index order, derive."""
import bz2
import itertools
import json
import os
import pickle

import jax
import numpy as np
import pytest

from jaxnas.spaces import nb201
from jaxnas.spaces.darts import GenotypeError

FIXTURE = os.path.join(os.path.dirname(__file__), 'data', 'nats_bench_fake', 'NATS-tss-v1_0-3ffb9-simple')
CELL_11 = '|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|'


@pytest.fixture(scope='module')
def benchmark_archs():
    with bz2.open(os.path.join(FIXTURE, 'meta.pickle.pbz2'), 'rb') as f:
        meta = pickle.load(f)
    return meta['meta_archs']


def test_constants():
    assert nb201.NUM_EDGES == 6 and nb201.NUM_NODES == 4 and nb201.NUM_ARCHS == 15625
    assert nb201.ARCH_SHAPES == {'cell': (6, 5)}
    assert [nb201.edge_index(t, s) for t, s in nb201.EDGES] == list(range(6))
    with pytest.raises(GenotypeError, match='no NAS-Bench-201 edge'):
        nb201.edge_index(1, 1)


def test_index_order_matches_benchmark(benchmark_archs):
    assert len(benchmark_archs) == nb201.NUM_ARCHS
    assert [str(g) for g in nb201.all_genotypes()] == benchmark_archs


def test_round_trips_all_cells(benchmark_archs):
    seen = set()
    for i, text in enumerate(benchmark_archs):
        g = nb201.from_text(text)
        assert str(g) == text
        assert nb201.to_index(g) == i and nb201.to_index(text) == i
        assert nb201.from_index(i) == g
        assert nb201.from_json(json.dumps(g.to_json())) == g
        seen.add(tuple(g))
    assert seen == set(itertools.product(nb201.PRIMITIVES, repeat=6))


def test_genotype_api():
    g = nb201.from_text(CELL_11)
    assert g.ops == ('nor_conv_3x3', 'nor_conv_3x3', 'avg_pool_3x3', 'none', 'nor_conv_3x3', 'avg_pool_3x3')
    assert g.count(('nor_conv_3x3',)) == 3
    assert g.count(nb201.PARAMETER_FREE) == 3
    assert nb201.resolve(11) == nb201.resolve('11') == nb201.resolve(CELL_11) == nb201.resolve(list(g.ops)) == g
    with pytest.raises(GenotypeError, match='single cell'):
        g.count(('none',), 'reduce')


def test_resolve_json_file(tmp_path):
    g = nb201.from_index(284)
    path = tmp_path / 'g.json'
    path.write_text(json.dumps(g.to_json()))
    assert nb201.resolve(str(path)) == g
    with pytest.raises(GenotypeError, match='cannot read genotype file'):
        nb201.resolve(str(tmp_path / 'missing.json'))


@pytest.mark.parametrize('text, message', [
    ('|foo~0|+|none~0|none~1|+|none~0|none~1|none~2|', "unknown NAS-Bench-201 op 'foo'"),
    ('|none~0|+|none~0|none~1|', 'has 2 node'),
    ('|none~0|+|none~0|+|none~0|none~1|none~2|', 'node 2 .* has 1 incoming edge'),
    ('|none~0|+|none~0|none~2|+|none~0|none~1|none~2|', 'should read op~1'),
    ('|none~0|+|none~0|none~1|+|none~0|none~1|none|', 'should read op~2'),
    ('none~0|+|none~0|none~1|+|none~0|none~1|none~2|', r'wrapped in \|'),
    ('|none~0|+|none~0|none~1|+|none~0|none~1|none~2|none~3|', 'node 3 .* has 4 incoming'),
])
def test_bad_strings_rejected(text, message):
    with pytest.raises(GenotypeError, match=message) as e:
        nb201.from_text(text)
    assert '\n' not in str(e.value)


@pytest.mark.parametrize('spec, message', [
    (15625, 'index must be an integer'), (-1, 'index must be an integer'), ('nope', 'unknown NAS-Bench-201'),
    (1.5, 'cannot resolve')])
def test_bad_specs_rejected(spec, message):
    with pytest.raises(GenotypeError, match=message):
        nb201.resolve(spec)


def test_bad_json_and_ops_rejected():
    with pytest.raises(GenotypeError, match='does not parse'):
        nb201.from_json('{')
    with pytest.raises(GenotypeError, match='must be an object'):
        nb201.from_json({'normal': []})
    with pytest.raises(GenotypeError, match='6 edges'):
        nb201.make_genotype(['none'] * 5)
    with pytest.raises(GenotypeError, match='unknown NAS-Bench-201 op'):
        nb201.make_genotype(['none'] * 5 + ['sep_conv_3x3'])


def test_derive_argmax_includes_none():
    w = np.zeros((6, 5))
    target = nb201.from_index(11)
    w[np.arange(6), [nb201.PRIMITIVES.index(op) for op in target]] = 1.0
    assert nb201.derive({'cell': w}) == target
    # ties go to the lowest index; `none` is a candidate like any other op, but a cell is never
    # left disconnected: here the direct edge 0 -> 3 takes its best other op
    assert nb201.derive({'cell': np.zeros((6, 5))}) == nb201.make_genotype(['none'] * 3 + ['skip_connect']
                                                                           + ['none'] * 2)
    # a search over a subset of the primitives
    sub = ('skip_connect', 'nor_conv_3x3')
    assert nb201.derive({'cell': np.tile([0.2, 0.8], (6, 1))}, sub).count(('nor_conv_3x3',)) == 6
    with pytest.raises(GenotypeError, match='shape'):
        nb201.derive({'cell': np.zeros((6, 4))})


def test_init_arch_and_sample():
    arch = nb201.init_arch(jax.random.key(0))
    assert arch['cell'].shape == (6, 5) and float(np.abs(arch['cell']).max()) < 1e-2
    g1, g2 = nb201.sample(jax.random.key(1)), nb201.sample(jax.random.key(1))
    assert g1 == g2 and isinstance(g1, nb201.Genotype)
    assert len({nb201.sample(jax.random.key(i)) for i in range(20)}) > 10


def test_derive_with_fairdarts_threshold():
    w = np.full((6, 5), 0.1)
    w[:, 3] = 0.9          # nor_conv_3x3 clears the threshold on every edge ...
    w[2, 3] = 0.5          # ... except edge 2, which falls back to `none`
    w[:, 0] = 0.95         # the `none` weight itself never wins under the threshold rule
    g = nb201.derive({'cell': w}, threshold=0.85)
    assert g.ops[2] == 'none' and all(op == 'nor_conv_3x3' for i, op in enumerate(g.ops) if i != 2)
    # argmax: `none` everywhere, then connected through the direct edge 0 -> 3
    assert nb201.derive({'cell': w}).ops == ('none',) * 3 + ('nor_conv_3x3',) + ('none',) * 2
