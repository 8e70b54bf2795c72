"""A smoke-test pipeline (seconds of training): the search of experiments/tiny.py, 2-channel 3-cell evaluation
network, 2 epochs, 2 seeds, 2 random architectures, on a slice of the digits.

    jaxnas run --config experiments/tiny_pipeline.py --workdir /tmp/jaxnas-tiny-run
    jaxnas retrain --config experiments/tiny_pipeline.py --genotype DARTS_V2 --workdir /tmp/jaxnas-tiny-rt
"""
from jaxnas.config import base_config


def get_config(arg=None):
    del arg
    c = base_config()
    c.name = 'tiny_pipeline'
    c.model.channels = 2
    c.model.layers = 3
    c.data.limit = 120
    c.data.batch_size = 8
    c.data.eval_batch_size = 64
    c.search.epochs = 2                    # the search of experiments/tiny.py (shares its compiled step)
    c.pipeline.search_epochs = 0
    c.pipeline.num_seeds = 2
    c.pipeline.random_archs = 2            # random cells of the space beside NAS (their own compiles)
    c.retrain.channels = 2
    c.retrain.layers = 3
    c.retrain.epochs = 2
    c.retrain.batch_size = 16
    c.retrain.eval_batch_size = 32
    c.retrain.aux_channels = (4, 8)
    c.retrain.checkpoint_every = 1
    c.retrain.latency_calls = 2
    c.retrain.latency_warmup = 1
    return c
