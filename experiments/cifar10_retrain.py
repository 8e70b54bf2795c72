"""The DARTS CIFAR-10 evaluation (Liu et al. 2019, section A.2): 20 cells, C=36, 600 epochs,
batch 96, SGD 0.025 cosine to 0, momentum 0.9, wd 3e-4, clip 5, cutout 16, drop path 0.2,
auxiliary weight 0.4; trained on all 50k training images, scored on the test set.
Variants: `imagenet` (mobile setting: 14 cells, C=48, 250 epochs, batch 128, lr 0.1,
wd 3e-5, label smoothing 0.1, no drop path; needs an ImageNet tfds source wired into
jaxnas.data first), `bf16` (bfloat16 compute).

    jaxnas retrain --config experiments/cifar10_retrain.py --genotype DARTS_V2
    jaxnas run --config experiments/cifar10_retrain.py      # with the paper's CIFAR-10 search
Meant for an accelerator (set --config.retrain.seed_batching=vmap there).
"""
from jaxnas.config import base_config


def get_config(arg=None):
    c = base_config()
    c.name = 'cifar10_retrain' + (f'_{arg}' if arg else '')
    c.data.name = 'cifar10'
    c.data.batch_size = 64
    c.model.channels = 16
    c.model.layers = 8
    c.search.epochs = 50
    c.pipeline.search_epochs = 0
    r = c.retrain
    r.network, r.channels, r.layers = 'cifar', 36, 20
    r.epochs, r.batch_size = 600, 96
    r.lr, r.lr_min, r.momentum, r.weight_decay, r.grad_clip = 0.025, 0.0, 0.9, 3e-4, 5.0
    r.cutout_length, r.drop_path_prob, r.auxiliary_weight = 16, 0.2, 0.4
    r.label_smoothing = 0.0
    c.baseline.blocks = (3, 3, 3)
    if arg == 'imagenet':
        r.network, r.channels, r.layers = 'imagenet', 48, 14
        r.epochs, r.batch_size, r.lr, r.weight_decay = 250, 128, 0.1, 3e-5
        r.label_smoothing, r.drop_path_prob, r.cutout_length = 0.1, 0.0, 0
    elif arg == 'bf16':
        r.compute_dtype = 'bfloat16'
    elif arg:
        raise ValueError(f"unknown variant {arg!r}; use 'imagenet', 'bf16' or nothing")
    return c
