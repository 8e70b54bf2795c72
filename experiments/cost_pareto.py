"""Accuracy vs hardware cost on the digits: searches under cost targets beside random genotypes.

    jaxnas pareto --config experiments/cost_pareto.py              # DARTS space (the default)
    jaxnas pareto --config experiments/cost_pareto.py:mbconv       # MBConv chain space
    jaxnas pareto --config experiments/cost_pareto.py:darts,tpu-v5e   # another cost model
    jaxnas pareto --config experiments/cost_pareto.py:tiny         # seconds-long smoke run

The argument is a comma-separated list of a space (``darts`` | ``mbconv`` | ``nb201``), a
cost model name (default ``xla``: XLA multiply-adds per example) and ``tiny``.

Study (:mod:`jaxnas.pareto`): the default DARTS search (10 epochs, first order, the digits
defaults) without a cost term, then with a hinge cost term ``2 * max(0, E[C] / T - 1)`` at
targets of 0.75, 0.5 and 0.3 times the unconstrained genotype's cost; every derived genotype
and 30 random ones trained from scratch for 150 single-path SGD steps and scored on the
arch-val split.
"""
from jaxnas.config import base_config
from jaxnas.costs import models


def get_config(arg=None):
    parts = [p for p in (arg or '').split(',') if p]
    c = base_config()
    c.space = 'darts'
    c.cost.model = 'xla'
    c.cost.form = 'hinge'
    c.cost.weight = 2.0
    c.discrete.short_training.steps = 150
    c.search.hessian_every = 0             # the eigenvalue diagnostic is not needed here (it compiles a program)
    tiny = False
    for p in parts:
        if p in ('darts', 'mbconv', 'nb201'):
            c.space = p
        elif p in models.names():
            c.cost.model = p
        elif p == 'tiny':
            tiny = True
        else:
            raise ValueError(f'unknown cost_pareto argument {p!r}: give a space, a cost model or tiny')
    c.name = f'cost_pareto_{c.space}_{c.cost.model}'
    if tiny:
        c.name += '_tiny'
        c.model.channels = 2
        c.model.layers = 3
        for section in (c.model.mbconv, c.retrain.mbconv):
            section.stem_channels, section.widths, section.head_channels = 4, (4, 4, 8), 8
        c.data.limit = 120
        c.data.batch_size = 8
        c.data.eval_batch_size = 64
        c.search.epochs = 2
        c.search.hessian_every = 0
        c.pareto.targets = (0.5,)
        c.pareto.random_archs = 3
        c.discrete.short_training.steps = 5
        c.discrete.short_training.batch_size = 8
    return c
