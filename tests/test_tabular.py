"""NATS-Bench / NAS-Bench-201 queries on the committed fixture (real records of 3 cells)."""
import os

import pytest

from jaxnas.spaces.nb201 import tabular
from jaxnas.spaces import nb201

DATA = os.path.join(os.path.dirname(__file__), 'data', 'nats_bench_fake')
FIXTURE = os.path.join(DATA, tabular.EXPECTED_DIR)

# (params M, flops M) as recorded (tests/data/nats_bench_fake/README.md)
COSTS = {
    0: {'cifar10': (0.129306, 15.64737), 'cifar100': (0.135156, 15.65322), 'ImageNet16-120': (0.136456, 3.91948)},
    11: {'cifar10': (0.802426, 113.95137), 'cifar100': (0.808276, 113.95722),
         'ImageNet16-120': (0.809576, 28.49548)},
    284: {'cifar10': (0.101306, 11.71521), 'cifar100': (0.107156, 11.72106), 'ImageNet16-120': (0.108456, 2.93644)},
}


@pytest.fixture(scope='module')
def bench():
    return tabular.open_benchmark(FIXTURE)


@pytest.mark.parametrize('index', sorted(COSTS))
def test_query_equals_records(bench, index):
    g = nb201.from_index(index)
    assert bench.index(g) == index == nb201.to_index(g)
    api = bench.api
    for dataset, (params, flops) in COSTS[index].items():
        r = tabular.query(bench, str(g), dataset)
        assert (r['index'], r['arch'], r['dataset'], r['hp']) == (index, str(g), dataset, '200')
        assert r['params'] == pytest.approx(params, abs=1e-9) and r['flops'] == pytest.approx(flops, abs=1e-9)
        assert r['latency'] > 0
        # cifar10: test accuracy of the train+valid run, valid accuracy of the cifar10-valid run
        test_set = api.get_more_info(index, dataset, hp='200', is_random=False)
        valid_set = api.get_more_info(index, 'cifar10-valid' if dataset == 'cifar10' else dataset,
                                      hp='200', is_random=False)
        assert r['test_acc'] == test_set['test-accuracy'] and r['val_acc'] == valid_set['valid-accuracy']
        assert 0 < r['val_acc'] < 100 and 0 < r['test_acc'] < 100


def test_known_accuracies_of_cell_11(bench):
    r = bench.query(nb201.from_index(11), 'cifar10')
    assert r['test_acc'] == pytest.approx(91.5833, abs=1e-3)   # trained on train + valid, 3 seeds
    assert r['val_acc'] == pytest.approx(87.94, abs=1e-3)      # cifar10-valid run
    assert bench.query(11, 'cifar10-valid', hp=12)['hp'] == '12'


def test_score_genotype(bench):
    s = tabular.score_genotype(DATA, nb201.from_index(284))  # the parent folder works too
    assert s['available'] and s['index'] == 284
    assert set(s) >= set(tabular.DATASETS)
    assert s['cifar100'] == bench.query(284, 'cifar100')


@pytest.mark.parametrize('path, message', [
    (None, 'no NAS-Bench-201 benchmark path given'),
    ('/nonexistent/bench', 'no NAS-Bench-201 benchmark at /nonexistent/bench'),
    (os.path.dirname(DATA), 'is not a NATS-Bench topology folder'),
    (os.path.join(DATA, 'README.md'), 'is not a NATS-Bench topology file'),
])
def test_missing_benchmark_gives_clear_message(path, message):
    s = tabular.score_genotype(path, 11)
    assert not s['available'] and s['index'] == 11
    assert message in s['error'] and tabular.EXPECTED_DIR in s['error'] and 'tabular.path' in s['error']
    assert '\n' not in s['error']
    with pytest.raises(tabular.TabularError, match=message):
        tabular.open_benchmark(path)


def test_missing_record_gives_clear_message(bench):
    s = tabular.score_genotype(FIXTURE, 1)  # the fixture holds only cells 0, 11 and 284
    assert not s['available'] and 'has no 200-epoch cifar10 record of cell 1' in s['error']
    with pytest.raises(tabular.TabularError, match='unknown NAS-Bench-201 data set'):
        bench.query(11, 'svhn')
