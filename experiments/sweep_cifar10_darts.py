"""The DARTS paper's search on CIFAR-10 (experiments/cifar10_darts.py: C=16, 8 cells, batch 64,
50 epochs) swept over the architecture learning rate, the weights' weight decay and the
relaxation: the hyperparameters the DARTS results are most sensitive to (Liu et al. 2019
chose arch lr 3e-4 and weight decay 3e-4; Zela et al. 2020, RobustDARTS, show that a larger
weight decay counters the collapse to skip connections). For an accelerator: 3 x 3 x 3 = 27
searches, each hours on one GPU.

Prepare CIFAR-10 once (pip install -e '.[prepare]' && tfds build cifar10 --file_format=array_record),
then on a multi-GPU host or a Ray cluster:

    jaxnas sweep --config experiments/sweep_cifar10_darts.py --workers 8          # one GPU per worker
    jaxnas sweep --config experiments/sweep_cifar10_darts.py --executor ray       # a task per GPU
    jaxnas sweep --config experiments/sweep_cifar10_darts.py --executor ray --ray-address HOST:6379
    jaxnas report runs/cifar10_darts_sweep --by optim.a_lr --by optim.w_weight_decay --by relaxation.name \
        --metric derived_val_acc --metric skip_connect_normal --format latex --out runs/cifar10_darts_report

Add --config.search.epochs=1 to any of them for a quick end-to-end check.
"""
import importlib.util
import os

_base = importlib.util.spec_from_file_location(
    'jaxnas_cifar10_darts', os.path.join(os.path.dirname(os.path.abspath(__file__)), 'cifar10_darts.py'))
cifar10_darts = importlib.util.module_from_spec(_base)
_base.loader.exec_module(cifar10_darts)

ARCH_LRS = (1e-4, 3e-4, 1e-3)
WEIGHT_DECAYS = (3e-4, 9e-4, 2.7e-3)   # the paper's, and 3x / 9x it (RobustDARTS' range)
RELAXATIONS = ('darts', 'gdas', 'drnas')
# One GPU and 4 CPU cores (the input pipeline) per trial; a failed trial (preempted node,
# out of memory) is tried twice more.
SWEEP = {'command': 'search', 'retries': 2, 'num_cpus': 4, 'num_gpus': 1}


def get_config(arg=None):
    c = cifar10_darts.get_config(arg)
    c.name = 'cifar10_darts' + (f'_{arg}' if arg else '')
    return c


def sweep(add):
    for a_lr in ARCH_LRS:
        for wd in WEIGHT_DECAYS:
            for relaxation in RELAXATIONS:
                add(**{'optim.a_lr': a_lr, 'optim.w_weight_decay': wd, 'relaxation.name': relaxation})
