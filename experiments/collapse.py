"""A collapse study on the NAS-Bench-201 cell space: DARTS, GDAS and DrNAS for 50 epochs on
the embedded digits (about a second per GDAS epoch on a 2-core CPU).

    jaxnas compare --config experiments/collapse.py

It is a normal ``jaxnas compare`` study (resumable, one search per relaxation and seed in
runs/collapse_nb201_compare/<relaxation>_seed<s>). Besides the table, ``collapse.png`` plots
per epoch the derived cell's skip_connect count, the signed dominant Hessian eigenvalue
(Zela et al., ICLR 2020) and the supernet metric, the question being whether DARTS drifts
to parameter-free ops (the NAS-Bench-201 paper: DARTS collapses to the all-skip_connect
cell on CIFAR-10) while GDAS does not.
"""
from jaxnas.config import base_config


def get_config(arg=None):
    if arg:
        raise ValueError(f'unknown variant {arg!r}; use experiments/collapse.py')
    c = base_config()
    c.name = 'collapse_nb201'
    c.space = 'nb201'
    c.model.channels = 8
    c.model.cells_per_stage = 2
    c.search.epochs = 50
    c.search.hessian_every = 1
    c.search.hessian_iters = 10
    c.compare.relaxations = ('darts', 'gdas', 'drnas')
    c.compare.seeds = (0,)
    return c
