"""Relaxation x seed on the embedded digits: the default digits search (DARTS cell space,
10 epochs, first order) under each relaxation, three seeds each, as a sweep.

    jaxnas sweep --config experiments/sweep_digits.py                       # 18 trials, one after another
    jaxnas sweep --config experiments/sweep_digits.py --workers 2           # two subprocesses, a core each
    jaxnas sweep --config experiments/sweep_digits.py --executor ray        # Ray tasks (pip install -e '.[ray]')
    jaxnas sweep --config experiments/sweep_digits.py:tiny                  # 2-epoch tiny supernet (seconds a trial)
    jaxnas report runs/sweep_digits_sweep --by relaxation.name --metric derived_val_acc \
        --metric derived_test_acc --metric log:derived_val_acc:max --plot log:derived_val_acc --out runs/sweep_digits_report

Each trial is a normal search in runs/sweep_digits_sweep/<relaxation.name=...,seed=...>
(resumable); sweep.jsonl indexes them. The digits default takes about 3.5 minutes a
search on a 2-core CPU, so the whole sweep about an hour. PC-DARTS samples 1/k of the 8
channels with k=2 (as experiments/compare.py); the other relaxations use their defaults.
"""
from jaxnas.config import base_config

RELAXATIONS = ('darts', 'gdas', 'snas', 'drnas', 'pcdarts', 'fairdarts')
SEEDS = (0, 1, 2)
SWEEP = {'command': 'search', 'retries': 1}


def get_config(arg=None):
    c = base_config()
    c.name = 'sweep_digits'
    if arg == 'tiny':
        c.name += '_tiny'
        c.model.channels, c.model.layers = 2, 3
        c.data.limit, c.data.batch_size, c.data.eval_batch_size = 120, 8, 64
        c.search.epochs, c.search.hessian_every = 2, 0
    elif arg:
        raise ValueError(f'unknown variant {arg!r}; use experiments/sweep_digits.py or experiments/sweep_digits.py:tiny')
    return c


def sweep(add):
    for relaxation in RELAXATIONS:
        kwargs = {'relaxation.kwargs.k': 2} if relaxation == 'pcdarts' else {}
        for seed in SEEDS:
            add(**{'relaxation.name': relaxation, 'seed': seed, **kwargs})
