"""NAS-Bench-201 / NATS-Bench tabular scores of NAS-Bench-201 cells.

Dong & Yang, "NAS-Bench-201", ICLR 2020; Dong et al., "NATS-Bench", TPAMI 2021 (its
topology search space, ``tss``, is the NAS-Bench-201 space). Queries go through the
official ``nats_bench`` API on the user's copy of the benchmark, normally the folder
``NATS-tss-v1_0-3ffb9-simple`` (read lazily, one record per cell queried)::

    bench = open_benchmark('~/.torch/NATS-tss-v1_0-3ffb9-simple')   # or its parent folder
    query(bench, '|nor_conv_3x3~0|+|...|', dataset='cifar100')
    score_genotype(path, genotype)   # all three data sets; never raises for a missing file

Which numbers (mean over the benchmark's seeds, after ``hp`` = 200 epochs by default):

- ``cifar10``: ``test_acc`` is the CIFAR-10 test accuracy of the network trained on
  train + valid (the benchmark's ``cifar10``); ``val_acc`` the validation accuracy of
  the network trained on the train split only (the benchmark's ``cifar10-valid``) --
  the pair the NAS-Bench-201 paper reports as CIFAR-10 valid / test.
- ``cifar10-valid``: the ``cifar10-valid`` run alone (``test_acc`` on the test set).
- ``cifar100``, ``ImageNet16-120``: ``val_acc`` / ``test_acc`` on the benchmark's two
  halves of the test set (``x-valid`` / ``x-test``).

``params`` are in millions, ``flops`` in millions of multiply-adds (conv and linear),
``latency`` in seconds per batch, all as recorded by the benchmark.
"""
from __future__ import annotations

import contextlib
import functools
import io
import os

from jaxnas.errors import JaxnasError
from jaxnas.spaces import nb201

EXPECTED_DIR = 'NATS-tss-v1_0-3ffb9-simple'
DATASETS = ('cifar10', 'cifar100', 'ImageNet16-120')
QUERY_DATASETS = DATASETS + ('cifar10-valid',)
_HOW = (f'download the NATS-Bench topology benchmark ({EXPECTED_DIR}) and pass its folder, or the '
        'folder holding it, as the path (config field tabular.path)')


class TabularError(JaxnasError):
    """The benchmark is missing, unreadable, or lacks the queried record."""


class NB201Benchmark:
    """An opened NATS-Bench topology benchmark (the official API object is ``.api``)."""

    def __init__(self, api, path: str):
        self.api = api
        self.path = path

    def index(self, genotype) -> int:
        """The benchmark's index of a cell (as the official API finds it)."""
        g = nb201.resolve(genotype)
        index = self.api.query_index_by_arch(str(g))
        if index < 0:
            raise TabularError(f'the benchmark at {self.path} does not list the cell {g}')
        return int(index)

    def _info(self, index: int, dataset: str, hp: str) -> dict:
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                return self.api.get_more_info(index, dataset, hp=hp, is_random=False)
        except (AssertionError, ValueError, KeyError, OSError) as e:
            raise TabularError(f'the benchmark at {self.path} has no {hp}-epoch {dataset} record of cell '
                               f'{index} ({type(e).__name__}: {str(e)[:120]}); the "-simple" folder of the '
                               'full benchmark holds all 15,625') from None

    def query(self, genotype, dataset: str = 'cifar10', hp: str = '200') -> dict:
        """Accuracies (%), params (M), flops (M multiply-adds) and latency (s) of a cell."""
        if dataset not in QUERY_DATASETS:
            raise TabularError(f"unknown NAS-Bench-201 data set {dataset!r}; choose one of {', '.join(QUERY_DATASETS)}")
        hp = str(hp)
        g = nb201.resolve(genotype)
        index = self.index(g)
        if dataset == 'cifar10':
            test, valid = self._info(index, 'cifar10', hp), self._info(index, 'cifar10-valid', hp)
        else:
            test = valid = self._info(index, dataset, hp)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                cost = self.api.get_cost_info(index, dataset, hp=hp)
        except (AssertionError, ValueError, KeyError) as e:
            raise TabularError(f'the benchmark at {self.path} has no {dataset} cost record of cell {index} '
                               f'({type(e).__name__})') from None
        return {
            'index': index,
            'arch': str(g),
            'dataset': dataset,
            'hp': hp,
            'test_acc': float(test['test-accuracy']),
            'val_acc': float(valid['valid-accuracy']),
            'params': float(cost['params']),
            'flops': float(cost['flops']),
            'latency': float(cost['latency']),
        }

    def score(self, genotype, hp: str = '200') -> dict:
        """:meth:`query` on cifar10, cifar100 and ImageNet16-120, keyed by data set."""
        return {dataset: self.query(genotype, dataset, hp) for dataset in DATASETS}


def _benchmark_dir(path: str | None) -> str:
    if not path:
        raise TabularError(f'no NAS-Bench-201 benchmark path given; {_HOW}')
    path = os.path.abspath(os.path.expanduser(str(path)))
    if os.path.isdir(os.path.join(path, EXPECTED_DIR)):
        path = os.path.join(path, EXPECTED_DIR)
    if not os.path.exists(path):
        raise TabularError(f'no NAS-Bench-201 benchmark at {path}; {_HOW}')
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, 'meta.pickle.pbz2')):
        raise TabularError(f'{path} is not a NATS-Bench topology folder (it has no meta.pickle.pbz2, nor a '
                           f'{EXPECTED_DIR} subfolder); {_HOW}')
    if os.path.isfile(path) and not path.endswith('.pickle.pbz2'):
        raise TabularError(f'{path} is not a NATS-Bench topology file (NATS-tss-*.pickle.pbz2); {_HOW}')
    return path


@functools.lru_cache(maxsize=4)
def _open(path: str) -> NB201Benchmark:
    try:
        from nats_bench import create
    except ImportError:
        raise TabularError('NAS-Bench-201 scores need the official API: pip install nats_bench') from None
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            api = create(path, 'tss', fast_mode=os.path.isdir(path), verbose=False)
    except Exception as e:  # the API raises assorted errors on unreadable files  # noqa: BLE001
        raise TabularError(f'cannot open the NATS-Bench topology benchmark at {path} '
                           f'({type(e).__name__}: {str(e)[:120]}); {_HOW}') from None
    return NB201Benchmark(api, path)


def open_benchmark(path: str | None) -> NB201Benchmark:
    """Open the benchmark at ``path``: the ``NATS-tss-v1_0-3ffb9-simple`` folder, the folder
    holding it, or a ``NATS-tss-*.pickle.pbz2`` file (loaded whole). Cached per path."""
    return _open(_benchmark_dir(path))


def query(bench: NB201Benchmark, genotype, dataset: str = 'cifar10', hp: str = '200') -> dict:
    """:meth:`NB201Benchmark.query` as a function (``bench`` from :func:`open_benchmark`)."""
    return bench.query(genotype, dataset, hp)


def score_genotype(path: str | None, genotype, hp: str = '200') -> dict:
    """Benchmark scores of a searched cell on the three data sets, for the end of a search.

    Returns ``{'arch', 'index', 'available': True, 'cifar10': {...}, 'cifar100': {...},
    'ImageNet16-120': {...}}``; when the benchmark is missing or lacks the cell,
    ``{'arch', 'index', 'available': False, 'error': <one-line message>}`` instead of
    raising, so a search still completes. The index comes from the space, no file needed.
    """
    g = nb201.resolve(genotype)
    out = {'arch': str(g), 'index': nb201.to_index(g)}
    try:
        return {**out, 'available': True, **open_benchmark(path).score(g, hp)}
    except TabularError as e:
        return {**out, 'available': False, 'error': str(e)}
