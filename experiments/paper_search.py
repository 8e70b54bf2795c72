"""Paper presets: each relaxation with its own paper's CIFAR-10 search settings.

    jaxnas search --config experiments/paper_search.py:darts       # Liu et al., ICLR 2019
    jaxnas search --config experiments/paper_search.py:gdas        # Dong & Yang, CVPR 2019
    jaxnas search --config experiments/paper_search.py:snas        # Xie et al., ICLR 2019
    jaxnas search --config experiments/paper_search.py:pcdarts     # Xu et al., ICLR 2020
    jaxnas search --config experiments/paper_search.py:drnas       # Chen et al., ICLR 2021
    jaxnas search --config experiments/paper_search.py:fairdarts   # Chu et al., ECCV 2020
    jaxnas search --config experiments/paper_search.py:gdas_nb201  # NAS-Bench-201 / AutoDL GDAS

All search the DARTS cell space on CIFAR-10 with the DARTS search network (C=16, 8 cells)
unless the variant says otherwise; weights are SGD with momentum 0.9, weight decay 3e-4,
grad-norm clip 5 and a per-epoch cosine learning rate; the architecture is Adam. What each
paper changes:

- ``darts``: 50 epochs, batch 64, w lr 0.025 -> 0.001, arch Adam 3e-4, betas (0.5, 0.999),
  weight decay 1e-3; 50/50 train/val split (``:darts`` is first order; add
  ``--config.search.order=second`` for DARTS V2).
- ``gdas``: as DARTS, 240 epochs, Gumbel temperature linearly 10 -> 0.1, single-path
  execution of the sampled op.
- ``snas``: single level (weights and architecture from the same training loss on the whole
  training set: ``data.train_portion=1``), 150 epochs, batch 64, temperature annealed
  geometrically 1.0 -> 0.03.
- ``pcdarts``: partial channels K=4, batch 256, w lr 0.1 -> 0, arch Adam 6e-4, the
  architecture frozen for the first 15 epochs of 50.
- ``drnas``: Dirichlet concentrations, 50 epochs, batch 64, w lr 0.1 -> 0, arch Adam 6e-4,
  KL regulariser toward the uniform Dirichlet (scale 1e-3), no arch weight decay.
- ``fairdarts``: independent sigmoids with the zero-one loss (weight 10), 50 epochs, batch
  128, w lr 0.005 -> 0.001, arch Adam 3e-3 with betas (0.9, 0.999), threshold 0.85.
- ``gdas_nb201``: the NAS-Bench-201 space (C=16, N=5 cells per stage), 250 epochs, batch 64,
  otherwise as ``gdas`` (AutoDL-Projects' NB201 GDAS settings).

Prepare the data once (needs network and TensorFlow):
    pip install -e '.[prepare]' && tfds build cifar10 --file_format=array_record
Meant for an accelerator: on a 2-core CPU one step of the DARTS network takes tens of seconds.
Any field can still be overridden (``--config.search.epochs=...``).
"""
from jaxnas.config import base_config

PRESETS = ('darts', 'gdas', 'snas', 'pcdarts', 'drnas', 'fairdarts', 'gdas_nb201')


def get_config(arg='darts'):
    if arg not in PRESETS:
        raise ValueError(f"unknown preset {arg!r}; use experiments/paper_search.py:NAME with NAME one of "
                         f"{', '.join(PRESETS)}")
    c = base_config()
    c.name = f'cifar10_{arg}'
    c.data.name = 'cifar10'
    c.data.batch_size = 64
    c.model.channels = 16
    c.model.layers = 8
    c.search.epochs = 50
    # The DARTS paper's optimisers (base_config's weights already are; the architecture
    # step of base_config is scaled to the digits' short budget: the papers' is constant).
    c.optim.w_lr, c.optim.w_lr_min = 0.025, 0.001
    c.optim.a_lr, c.optim.a_b1, c.optim.a_b2, c.optim.a_weight_decay = 3e-4, 0.5, 0.999, 1e-3
    c.optim.a_schedule = 'constant'
    relaxation = arg
    if arg == 'darts':
        pass
    elif arg in ('gdas', 'gdas_nb201'):
        relaxation = 'gdas'
        c.search.epochs = 240
        c.relaxation.kwargs.tau_max, c.relaxation.kwargs.tau_min = 10.0, 0.1
        if arg == 'gdas_nb201':
            c.space = 'nb201'
            c.search.epochs = 250
            c.model.cells_per_stage = 5
    elif arg == 'snas':
        c.search.epochs = 150
        c.data.train_portion = 1.0
        c.relaxation.kwargs.single_level = True
        c.relaxation.kwargs.tau_max, c.relaxation.kwargs.tau_min = 1.0, 0.03
    elif arg == 'pcdarts':
        c.data.batch_size = 256
        c.optim.w_lr, c.optim.w_lr_min = 0.1, 0.0
        c.optim.a_lr = 6e-4
        c.relaxation.kwargs.k = 4
        c.relaxation.kwargs.warmup_epochs = 15.0
    elif arg == 'drnas':
        c.optim.w_lr, c.optim.w_lr_min = 0.1, 0.0
        c.optim.a_lr = 6e-4
        c.relaxation.kwargs.reg = 'kl'
        c.relaxation.kwargs.reg_scale = 1e-3
        c.relaxation.kwargs.arch_weight_decay = 0.0
    elif arg == 'fairdarts':
        c.data.batch_size = 128
        c.optim.w_lr, c.optim.w_lr_min = 0.005, 0.001
        c.optim.a_lr, c.optim.a_b1, c.optim.a_b2 = 3e-3, 0.9, 0.999
        c.relaxation.kwargs.zero_one_weight = 10.0
        c.relaxation.kwargs.threshold = 0.85
    c.relaxation.name = relaxation
    return c


def sweep(add):
    """Every preset once."""
    for arg in PRESETS:
        add(arg=arg)
