"""A smoke-test search: 2-channel, 3-cell supernet on 120 digits, 2 epochs (seconds).

    jaxnas search --config experiments/tiny.py --workdir /tmp/jaxnas-tiny
"""
from jaxnas.config import base_config


def get_config(arg=None):
    c = base_config()
    c.name = 'tiny'
    c.model.channels = 2
    c.model.layers = 3
    c.data.limit = 120
    c.data.batch_size = 8
    c.data.eval_batch_size = 64
    c.search.epochs = 2
    c.search.hessian_every = 0             # the eigenvalue diagnostic compiles its own program
    if arg:
        c.search.order = arg
    return c


def sweep(add):
    """Two seeds: the smoke test of `jaxnas sweep` (jaxnas sweep --config experiments/tiny.py)."""
    for seed in (0, 1):
        add(seed=seed)
