"""All six relaxations side by side on the embedded digits, two seeds, one budget.

    jaxnas compare --config experiments/compare.py            # DARTS cell space
    jaxnas compare --config experiments/compare.py:nb201      # NAS-Bench-201 cell space
    jaxnas compare --config experiments/compare.py:nb201 --config.tabular.path=PATH/NATS-tss-v1_0-3ffb9-simple

Every run is a normal search in runs/<name>_compare/<relaxation>_seed<s>; rerunning
resumes. The table (Markdown, CSV, JSON) and plots land in runs/<name>_compare/.
"""
from jaxnas.config import base_config


def get_config(arg=None):
    c = base_config()
    c.name = 'compare_digits'
    c.search.epochs = 4
    c.search.hessian_iters = 10
    c.compare.seeds = (0, 1)
    c.compare.kwargs = {'pcdarts': {'k': 2}}
    if arg == 'nb201':
        c.name = 'compare_digits_nb201'
        c.space = 'nb201'
        c.model.channels = 8
        c.model.cells_per_stage = 2
    elif arg:
        raise ValueError(f"unknown variant {arg!r}; use experiments/compare.py or experiments/compare.py:nb201")
    return c


def sweep(add):
    """The study itself is a sweep over relaxations x seeds (config.compare)."""
    for arg in (None, 'nb201'):
        add(arg=arg)
