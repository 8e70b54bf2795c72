"""Discrete search on the embedded digits: random search, regularized evolution, REINFORCE.

    jaxnas discrete --config experiments/digits_discrete.py --searcher=evolution
    jaxnas discrete --config experiments/digits_discrete.py:weight_sharing --searcher=random
    jaxnas discrete --config experiments/digits_discrete.py:tiny --searcher=reinforce   # seconds
    jaxnas retrain ... runs/digits_discrete_evolution     # the best genotype, as after `jaxnas search`

The argument is a comma-separated list of: a fitness mode (short_training, the default,
or weight_sharing), ``hparams`` (search learning rate and weight decay with the cell;
short training only), ``tiny`` (a 2-channel, 3-cell network on 120 digits).
The short-training default searches the cell with 60 SGD steps per candidate, 4
candidates trained at once under vmap; weight sharing trains the supernet once with
uniformly random single paths (Li & Talwalkar 2019), then scores every candidate with it.
"""
from jaxnas.config import base_config

FITNESS = ('short_training', 'weight_sharing')


def get_config(arg=None):
    parts = [p for p in (arg or '').split(',') if p]
    c = base_config()
    c.name = 'digits_discrete'
    d = c.discrete
    d.max_evaluations = 48
    d.batch_size = 4
    d.evolution.population_size = 12
    d.evolution.sample_size = 4
    for p in parts:
        if p in FITNESS:
            d.fitness.mode = p
            c.name += f'_{p}'
        elif p == 'hparams':
            d.hparams.lr = (0.025, 0.05, 0.1)
            d.hparams.weight_decay = (0.0, 3e-4, 3e-3)
            c.name += '_hparams'
        elif p == 'tiny':
            c.name += '_tiny'
            c.model.channels = 2
            c.model.layers = 3
            c.data.limit = 120
            c.data.batch_size = 8
            c.data.eval_batch_size = 64
            d.max_evaluations = 8
            d.batch_size = 2
            d.evolution.population_size = 4
            d.evolution.sample_size = 2
            d.short_training.steps = 4
            d.short_training.batch_size = 8
            d.weight_sharing.epochs = 1
        else:
            raise ValueError(f'unknown digits_discrete variant {p!r}; use {", ".join(FITNESS)}, hparams, tiny')
    return c


def sweep(add):
    for searcher in ('random', 'evolution', 'reinforce'):
        for fitness in FITNESS:
            add(**{'discrete.searcher': searcher, 'discrete.fitness.mode': fitness})
