"""DARTS search on the embedded scikit-learn digits (the default; no network needed).

    jaxnas search --config experiments/digits.py            # first order
    jaxnas search --config experiments/digits.py:second     # exact second-order hypergradient
    jaxnas search --config experiments/digits.py:finite_difference

About 3.5 minutes on a 2-core CPU for the first-order default, compile included.
"""
from jaxnas.config import base_config


def get_config(arg=None):
    c = base_config()
    if arg:
        c.search.order = arg
        c.name = f'digits_darts_{arg}'
    return c
