"""Discrete search on the embedded digits: random search, regularized evolution, REINFORCE.

    jaxnas discrete --config experiments/digits_discrete.py --searcher=evolution
    jaxnas discrete --config experiments/digits_discrete.py:weight_sharing --searcher=random
    jaxnas discrete --config experiments/digits_discrete.py:tiny --searcher=reinforce   # seconds
    jaxnas retrain ... runs/digits_discrete_evolution     # the best genotype, as after `jaxnas search`

The argument is a comma-separated list of: a fitness mode (short_training, the default,
or weight_sharing), ``hparams`` (search learning rate and weight decay with the cell;
short training only), ``dense`` (short training and weight-sharing scoring in the dense
execution mode, candidates vmapped in groups of ``batch_size``: the slow comparison),
``tiny`` (a 2-channel, 3-cell network on 120 digits, for tests).

Budget (2-core CPU, the search network of the gradient search: C=8, 5 cells):

- short training: 32 candidates, each trained from scratch for 30 SGD steps at batch 32
  in the single-path execution mode (only the chosen op of each edge runs), one
  candidate per call of one compiled program, scored on the 719 arch-val digits.
- weight sharing: one supernet trained for 10 epochs with uniformly random single paths
  (Li & Talwalkar 2019), cached in ``supernets/`` beside the workdir and reused by all
  three searchers; then 200 candidates, each scored by a single-path forward pass on the
  arch-val split.

Measured on the shared 2-core CPU (load average 4-7 from other jobs), jax 0.10:
short training took 402 s for the first searcher (cold compile, ~2.5 min) and 232-247 s
for the next two (compile loaded from the persistent cache), 11-15 evaluations/minute
after the first round; weight sharing took 149 s to train the supernet once, then
109-145 s per searcher at 83-110 evaluations/minute. benchmarks/discrete_speed.py
(10 steps, interleaved, medians): single-path one by one 52.5 evaluations/minute,
dense 4 vmapped 7.9, dense one by one 9.4 (vmapping candidates: 0.84x); 4 seeds of one
candidate vmapped in single path: 1.30x the trainings/minute of one by one.
"""
from jaxnas.config import base_config

FITNESS = ('short_training', 'weight_sharing')


def get_config(arg=None):
    parts = [p for p in (arg or '').split(',') if p]
    c = base_config()
    c.name = 'digits_discrete'
    d = c.discrete
    d.max_evaluations = 32
    d.batch_size = 4
    d.evolution.population_size = 12
    d.evolution.sample_size = 4
    d.short_training.steps = 30
    # Fields of this study (jaxnas.fitness reads them with these defaults when absent).
    d.short_training.execution = 'single_path'   # single_path: one candidate per call | dense: vmapped groups
    d.short_training.seeds = 1                   # > 1: initialisations per candidate, vmapped, metrics averaged
    d.weight_sharing.execution = 'single_path'
    d.weight_sharing.cache_dir = ''              # '' : supernets/ beside the workdir, shared by the searchers
    for p in parts:
        if p in FITNESS:
            d.fitness.mode = p
            c.name += f'_{p}'
            if p == 'weight_sharing' and 'tiny' not in parts:
                d.max_evaluations = 200
        elif p == 'hparams':
            d.hparams.lr = (0.025, 0.05, 0.1)
            d.hparams.weight_decay = (0.0, 3e-4, 3e-3)
            c.name += '_hparams'
        elif p == 'dense':
            d.short_training.execution = 'dense'
            d.weight_sharing.execution = 'dense'
            c.name += '_dense'
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
            raise ValueError(f'unknown digits_discrete variant {p!r}; use {", ".join(FITNESS)}, hparams, dense, tiny')
    return c


def sweep(add):
    for searcher in ('random', 'evolution', 'reinforce'):
        for fitness in FITNESS:
            add(**{'discrete.searcher': searcher, 'discrete.fitness.mode': fitness})
