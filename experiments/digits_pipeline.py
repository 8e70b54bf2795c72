"""`jaxnas run` on the embedded digits: DARTS search -> retrain NAS cell, width-matched
ResNet and 3 random cells over 3 seeds -> report (the default of `jaxnas run`, spelled out).

    jaxnas run --config experiments/digits_pipeline.py --workdir runs/digits_pipeline
    jaxnas run --config experiments/digits_pipeline.py:full     # the full 10-epoch search

Search: the default digits supernet (C=8, 5 cells), first order, 4 epochs (of
`jaxnas search`'s 10, to fit the pipeline in about 10 minutes on a 2-core CPU).
Retraining: DARTS protocol (SGD 0.025 cosine, momentum 0.9, wd 3e-4, clip 5, drop path
0.2 ramped, auxiliary weight 0.4) on a digits-sized evaluation network (C=8, 5 cells),
10 epochs, batch 64, no cutout (8x8 images).
"""
from jaxnas.config import base_config


def get_config(arg=None):
    c = base_config()
    c.name = 'digits_pipeline'
    c.pipeline.num_seeds = 3
    c.pipeline.search_epochs = 4
    c.pipeline.random_archs = 3            # random cells of the DARTS space beside the NAS cell
    if arg == 'full':
        c.name = 'digits_pipeline_full'
        c.pipeline.search_epochs = 0
    elif arg:
        raise ValueError(f"unknown variant {arg!r}; use 'full' or nothing")
    return c


def sweep(add):
    for seeds in (3, 5):
        add(**{'pipeline.num_seeds': seeds})
    for k in (0, 10):
        add(**{'pipeline.random_archs': k})
