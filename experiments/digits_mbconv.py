"""The MBConv chain space (ProxylessNAS / FBNet style) on the embedded digits.

    jaxnas search   --config experiments/digits_mbconv.py              # DARTS softmax: FBNet's weighted sum
    jaxnas search   --config experiments/digits_mbconv.py:gdas         # single path (ProxylessNAS-like sampling)
    jaxnas search   --config experiments/digits_mbconv.py:pcdarts      # any relaxation name
    jaxnas compare  --config experiments/digits_mbconv.py
    jaxnas discrete --config experiments/digits_mbconv.py --searcher=evolution
    jaxnas retrain  --config experiments/digits_mbconv.py --genotype runs/digits_mbconv
    jaxnas run      --config experiments/digits_mbconv.py
    jaxnas search   --config experiments/digits_mbconv.py:tiny         # seconds-long smoke run

The argument is a comma-separated list of a relaxation name (default ``darts``) and
``tiny`` (a 4-8 channel macro on 120 digits, 2 epochs).

Space: 8 searchable layers in stages of (2, 3, 3), each a choice of MBConv kernel 3/5/7 x
expansion 3/6, plus the identity on the 5 layers that keep their shape (3.6 million
chains). Macro (``model.mbconv`` and ``retrain.mbconv``, the base config's defaults):
stem 3x3 conv to 8 channels, stage widths 12 / 16 / 24 at strides 1 / 2 / 2 (8x8 -> 2x2),
head 1x1 conv to 64, pool, linear. Search: 10 epochs, first order, batch 32, the DARTS
optimisers. Retraining: the same macro, 10 epochs (``retrain.*``). Discrete search:
32 candidates of 30 single-path SGD steps each.
"""
from jaxnas.config import base_config


def get_config(arg=None):
    parts = [p for p in (arg or '').split(',') if p]
    c = base_config()
    c.space = 'mbconv'
    c.name = 'digits_mbconv'
    c.pipeline.search_epochs = 4
    d = c.discrete
    d.max_evaluations = 32
    d.short_training.steps = 30
    d.evolution.population_size = 12
    d.evolution.sample_size = 4
    for p in parts:
        if p == 'tiny':
            c.name += '_tiny'
            for section in (c.model.mbconv, c.retrain.mbconv):
                section.stem_channels, section.widths, section.head_channels = 4, (4, 4, 8), 8
            c.data.limit = 120
            c.data.batch_size = 8
            c.search.epochs = 2
            c.search.hessian_every = 0
            c.retrain.epochs = 1
            c.pipeline.num_seeds = 1
            c.pipeline.search_epochs = 1
            d.max_evaluations = 4
            d.short_training.steps = 5
        else:
            c.relaxation.name = p
            c.name += f'_{p}'
    return c


def sweep(add):
    for relaxation in ('darts', 'gdas', 'snas', 'drnas', 'pcdarts', 'fairdarts'):
        add(**{'relaxation.name': relaxation})
