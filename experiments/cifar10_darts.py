"""The DARTS paper's CIFAR-10 search (Liu et al. 2019): C=16, 8 cells, batch 64, 50 epochs,
half of the training set for weights and half for the architecture.

Prepare the data once (needs network and TensorFlow):
    pip install -e '.[prepare]' && tfds build cifar10 --file_format=array_record
Then:
    jaxnas search --config experiments/cifar10_darts.py          # first order (DARTS V1)
    jaxnas search --config experiments/cifar10_darts.py:second   # second order (DARTS V2)
Meant for an accelerator; on a 2-core CPU one step takes tens of seconds.
"""
from jaxnas.config import base_config


def get_config(arg=None):
    c = base_config()
    c.name = 'cifar10_darts' + (f'_{arg}' if arg else '')
    c.data.name = 'cifar10'
    c.data.batch_size = 64
    c.model.channels = 16
    c.model.layers = 8
    c.search.epochs = 50
    # The paper's architecture step (base_config's is scaled to the digits' short budget).
    c.optim.a_lr, c.optim.a_schedule = 3e-4, 'constant'
    if arg:
        c.search.order = arg
    return c
