"""Configs as code: ``ml_collections.ConfigDict`` built by ``get_config(arg)`` in Python files.

:func:`base_config` holds every field with its default (the DARTS paper's optimiser
settings, a search on the embedded digits that finishes in a few minutes on a 2-core
CPU). Experiment files in ``experiments/`` derive from it. :func:`load_config` reads
``path.py[:arg]``, :func:`apply_overrides` applies dotted ``--config.a.b=value``
overrides with type checking, and :func:`validate` rejects bad values with one line
naming the field and the fix.
"""
from __future__ import annotations

import ast
import importlib.util
import inspect
import os
from typing import Iterable, Optional

import ml_collections
from ml_collections import config_dict

from jaxnas.errors import JaxnasError


class ConfigError(JaxnasError):
    """A config file, override or value that cannot be used."""


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = 'digits_darts'
    c.seed = 0
    c.space = 'darts'                      # a registered search space: darts | nb201 | mbconv

    c.data = ml_collections.ConfigDict()
    c.data.name = 'digits'                 # digits | cifar10 | cifar100 | svhn_cropped | mnist
    c.data.data_dir = config_dict.placeholder(str)   # tfds data dir (default ~/tensorflow_datasets)
    c.data.train_portion = 0.5             # DARTS: half of the training set trains weights
    c.data.limit = 0                       # > 0: read at most this many examples per split
    c.data.batch_size = 32
    c.data.eval_batch_size = 256

    c.model = ml_collections.ConfigDict()
    c.model.channels = 8                   # C of the search network (DARTS paper: 16)
    c.model.layers = 5                     # cells (DARTS paper: 8)
    c.model.stem_multiplier = 3
    c.model.cells_per_stage = 5            # nb201 space: N cells per stage (NAS-Bench-201: 5)
    c.model.mbconv = mbconv_config()       # mbconv space: the search network's mobile macro

    c.relaxation = ml_collections.ConfigDict()
    c.relaxation.name = 'darts'
    c.relaxation.kwargs = ml_collections.ConfigDict()
    c.relaxation.penalty_weight = 1.0      # multiplies the relaxation's own penalty

    c.search = ml_collections.ConfigDict()
    c.search.epochs = 10                   # DARTS paper: 50
    c.search.order = 'first'               # first | second | finite_difference
    c.search.fuse_phases = True            # first order: one compiled fwd/bwd for both phases
    c.search.mode = ''                     # '' (the relaxation's own) | dense | single_path | partial_channel
    c.search.hessian_every = 1             # epochs between dominant-eigenvalue estimates (0: off)
    c.search.hessian_iters = 20            # power iterations (Hessian-vector products)

    # `jaxnas compare`: relaxations x seeds with one budget (jaxnas.compare).
    c.compare = ml_collections.ConfigDict()
    c.compare.relaxations = ('darts', 'gdas', 'snas', 'drnas', 'pcdarts', 'fairdarts')
    c.compare.seeds = (0, 1)
    c.compare.kwargs = ml_collections.ConfigDict()   # relaxation name -> its kwargs, e.g. {'pcdarts': {'k': 2}}

    # NATS-Bench / NAS-Bench-201 tabular scores of a derived nb201 cell (jaxnas.tabular).
    c.tabular = ml_collections.ConfigDict()
    c.tabular.path = config_dict.placeholder(str)   # e.g. ~/NATS-tss-v1_0-3ffb9-simple

    c.optim = ml_collections.ConfigDict()
    c.optim.w_lr = 0.025
    c.optim.w_lr_min = 0.001
    c.optim.w_momentum = 0.9
    c.optim.w_weight_decay = 3e-4
    c.optim.grad_clip = 5.0
    c.optim.a_lr = 3e-4
    c.optim.a_b1 = 0.5
    c.optim.a_b2 = 0.999
    c.optim.a_weight_decay = 1e-3

    c.discrete = discrete_config()         # `jaxnas discrete`; checked by jaxnas.discrete.validate

    # Retraining from scratch (jaxnas.retrain; validated there). The DARTS CIFAR protocol
    # where the value is noted; digits-sized network and budget for a 2-core CPU.
    c.retrain = ml_collections.ConfigDict()
    c.retrain.network = 'cifar'            # cifar | imagenet (DARTS evaluation network)
    c.retrain.channels = 8                 # DARTS CIFAR: 36 (ImageNet: 48); NB201: C
    c.retrain.layers = 5                   # DARTS CIFAR: 20 (ImageNet: 14)
    c.retrain.cells_per_stage = 5          # NAS-Bench-201 networks only: N
    c.retrain.mbconv = mbconv_config()     # mbconv space: the evaluation network's mobile macro
    c.retrain.epochs = 10                  # DARTS: 600
    c.retrain.batch_size = 64              # DARTS: 96
    c.retrain.eval_batch_size = 512
    c.retrain.lr = 0.025
    c.retrain.lr_min = 0.0
    c.retrain.momentum = 0.9
    c.retrain.weight_decay = 3e-4
    c.retrain.grad_clip = 5.0
    c.retrain.cutout_length = 0            # DARTS CIFAR: 16 (0: off; 8x8 digits)
    c.retrain.drop_path_prob = 0.2         # ramped linearly from 0 with the epoch
    c.retrain.auxiliary_weight = 0.4       # 0 removes the auxiliary head
    c.retrain.aux_channels = (128, 768)
    c.retrain.label_smoothing = 0.0        # DARTS ImageNet: 0.1
    c.retrain.compute_dtype = 'float32'    # float32 | bfloat16 (accelerators)
    c.retrain.num_seeds = 1                # seeds config.seed, config.seed + 1, ... trained at once
    c.retrain.seed_batching = 'map'        # map: seeds in turn in one program (CPU) | vmap (accelerators)
    c.retrain.checkpoint_every = 5         # epochs
    c.retrain.latency_batch_size = 1
    c.retrain.latency_calls = 20
    c.retrain.latency_warmup = 3

    # The hand-designed comparison network (jaxnas.baseline), width-matched in parameters.
    c.baseline = ml_collections.ConfigDict()
    c.baseline.blocks = (1, 1, 1)          # basic blocks per stage (ResNet-20: (3, 3, 3))
    c.baseline.tolerance = 0.05            # relative parameter-count mismatch allowed

    # `jaxnas run` (jaxnas.pipeline): search -> derive -> retrain NAS and baseline -> report.
    c.pipeline = ml_collections.ConfigDict()
    c.pipeline.num_seeds = 3
    c.pipeline.search_epochs = 4           # the pipeline's search epochs (0: search.epochs, 10)
    return c


def mbconv_config() -> ml_collections.ConfigDict:
    """The mobile macro of the mbconv space (jaxnas.spaces.mbconv.macro), scaled down for
    8x8 digits (ProxylessNAS mobile: stem 32, widths 24..320, head 1280); the layers per
    stage are the space's, (2, 3, 3)."""
    m = ml_collections.ConfigDict()
    m.stem_channels = 8                    # 3x3 conv, BN, ReLU6
    m.stem_stride = 1
    m.widths = (12, 16, 24)                # one per stage
    m.strides = (1, 2, 2)                  # stride of each stage's first layer
    m.head_channels = 64                   # 1x1 conv, BN, ReLU6, then pool and classifier
    return m


def discrete_config() -> ml_collections.ConfigDict:
    """Defaults of the discrete search (``jaxnas discrete``, :mod:`jaxnas.discrete`)."""
    d = ml_collections.ConfigDict()
    d.searcher = 'evolution'               # random | evolution | reinforce
    d.batch_size = 4                       # candidates asked (and trained) at once
    d.max_evaluations = 100                # budget in evaluations
    d.max_time_s = 0.0                     # budget in wall seconds, 0: none
    d.target = config_dict.placeholder(float)   # stop once the best fitness reaches this
    d.checkpoint_every = 1                 # rounds of `batch_size` candidates between checkpoints
    d.hparams = ml_collections.ConfigDict()     # name -> tuple of values, searched with the cell
    d.cells = ()                           # non-empty: search only these genotypes (texts)
    d.evolution = ml_collections.ConfigDict({'population_size': 20, 'sample_size': 5})
    d.reinforce = ml_collections.ConfigDict({'learning_rate': 0.05, 'baseline_decay': 0.9})
    d.random = ml_collections.ConfigDict()
    d.fitness = ml_collections.ConfigDict()
    d.fitness.mode = 'short_training'      # short_training | weight_sharing | tabular
    d.fitness.metric = 'val_acc'
    d.fitness.objective = 'metric'         # metric | linear | mnas
    d.fitness.cost = ''                    # e.g. params (with objective linear | mnas)
    d.fitness.cost_weight = 0.0
    d.fitness.cost_target = 1.0
    d.short_training = ml_collections.ConfigDict()
    d.short_training.steps = 60            # SGD steps per candidate on the weight-train split
    d.short_training.batch_size = 32
    d.short_training.lr = 0.05             # defaults for hyperparameters not searched
    d.short_training.weight_decay = 3e-4
    d.short_training.momentum = 0.9
    d.short_training.grad_clip = 5.0
    d.short_training.eval_examples = 0     # > 0: score on this many arch-val examples
    d.short_training.network = 'supernet'  # supernet: the search network with the candidate's one-hot mix |
                                           # evalnet: jaxnas.retrain's evaluation network, one by one
    d.short_training.epochs = 1            # evalnet only: epochs of config.retrain's schedule
    d.short_training.execution = 'single_path'   # single_path: one candidate per call | dense: vmapped groups
    d.short_training.seeds = 1             # > 1: initialisations per candidate, vmapped, metrics averaged
    d.weight_sharing = ml_collections.ConfigDict()
    d.weight_sharing.relaxation = 'random_path'   # how the shared supernet is trained
    d.weight_sharing.epochs = 10
    d.weight_sharing.batch_norm = 'batch'  # batch: statistics of each evaluation batch | running
    d.weight_sharing.eval_examples = 0
    d.weight_sharing.execution = 'single_path'   # how candidates are scored on the shared weights
    d.weight_sharing.cache_dir = ''        # '': supernets/ beside the workdir, shared by the searchers
    d.tabular = ml_collections.ConfigDict()
    d.tabular.path = config_dict.placeholder(str)   # NATS-Bench topology file/directory
    d.tabular.dataset = 'cifar10'
    d.tabular.hp = '200'
    return d


def get_config(arg: Optional[str] = None) -> ml_collections.ConfigDict:
    """The default config: DARTS (first order) on the embedded digits."""
    del arg
    return base_config()


def load_config(spec: Optional[str]) -> ml_collections.ConfigDict:
    """Load ``path/to/file.py[:arg]`` (its ``get_config(arg)``), or the default for ``None``."""
    if spec is None:
        return get_config()
    path, _, arg = spec.partition(':')
    if not path.endswith('.py'):
        raise ConfigError(f'config {spec!r} is not a Python file; pass --config path/to/file.py[:arg]')
    if not os.path.isfile(path):
        raise ConfigError(f'config file {path} does not exist; see experiments/ for the available configs')
    module_spec = importlib.util.spec_from_file_location(f'jaxnas_config_{abs(hash(path))}', path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:  # the user's file: report, don't crash with a traceback
        raise ConfigError(f'config file {path} failed to load: {type(e).__name__}: {e}') from None
    if not hasattr(module, 'get_config'):
        raise ConfigError(f'config file {path} has no get_config(arg) function')
    takes_arg = bool(inspect.signature(module.get_config).parameters)
    if arg and not takes_arg:
        raise ConfigError(f'config file {path} takes no argument, got {arg!r}')
    config = module.get_config(arg or None) if takes_arg else module.get_config()
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f'get_config in {path} must return an ml_collections.ConfigDict')
    return config


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_overrides(args: Iterable[str]) -> list:
    """``['--config.a.b=1', '--config.c', 'x']`` -> ``[('a.b', 1), ('c', 'x')]``."""
    args = list(args)
    out, i = [], 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith('--config.'):
            raise ConfigError(f'unexpected argument {arg!r}; overrides look like --config.model.channels=8')
        key, eq, value = arg[len('--config.'):].partition('=')
        if not eq:
            if i + 1 >= len(args):
                raise ConfigError(f'override --config.{key} has no value; write --config.{key}=VALUE')
            value, i = args[i + 1], i + 1
        out.append((key, _parse_value(value)))
        i += 1
    return out


def apply_overrides(config: ml_collections.ConfigDict, overrides: Iterable) -> ml_collections.ConfigDict:
    """Set dotted fields with ml_collections' type checking; unknown fields are errors."""
    for key, value in overrides:
        *parents, leaf = key.split('.')
        node = config
        for depth, name in enumerate(parents):
            if name not in node or not isinstance(node[name], ml_collections.ConfigDict):
                raise ConfigError(f"unknown config field {'.'.join(parents[:depth + 1])!r} in override of {key!r}")
            node = node[name]
        if leaf not in node and not (parents and parents[-1] == 'kwargs'):
            raise ConfigError(f"unknown config field {key!r}; fields here: {', '.join(sorted(node.keys()))}")
        try:
            node[leaf] = value
        except (TypeError, ValueError, KeyError) as e:
            raise ConfigError(f'bad value {value!r} for config field {key!r}: {e}') from None
    return config


def validate(config: ml_collections.ConfigDict) -> None:
    """Reject values the search cannot use, naming the field and what is allowed."""
    from jaxnas import bilevel, data, relax

    def check(ok, field, msg):
        if not ok:
            value = config
            for part in field.split('.'):
                value = value[part]
            raise ConfigError(f'bad config value {field}={value!r}: {msg}')

    from jaxnas import spaces
    check(config.space in spaces.names(), 'space', f"choose one of {', '.join(spaces.names())}")
    check(config.search.mode in ('',) + relax.MODES, 'search.mode',
          f"choose one of {', '.join(relax.MODES)} (or '' for the relaxation's own)")
    check(config.search.hessian_every >= 0, 'search.hessian_every', 'must be >= 0 (0 turns it off)')
    check(config.search.hessian_iters >= 1, 'search.hessian_iters', 'must be >= 1')
    check(config.model.cells_per_stage >= 1, 'model.cells_per_stage', 'must be >= 1')
    check(config.data.name in data.DATASETS, 'data.name', f"choose one of {', '.join(data.DATASETS)}")
    check(0 < config.data.train_portion < 1, 'data.train_portion', 'must be in (0, 1)')
    check(config.data.limit >= 0, 'data.limit', 'must be >= 0 (0 reads everything)')
    check(config.data.batch_size >= 2, 'data.batch_size', 'must be >= 2 (BatchNorm needs a batch)')
    check(config.data.eval_batch_size >= 1, 'data.eval_batch_size', 'must be >= 1')
    check(config.model.channels >= 2, 'model.channels', 'must be >= 2')
    check(config.model.stem_multiplier >= 1, 'model.stem_multiplier', 'must be >= 1')
    check(config.relaxation.name in relax.RELAXATIONS, 'relaxation.name',
          f"choose one of {', '.join(relax.RELAXATIONS)}")
    check(config.search.epochs >= 1, 'search.epochs', 'must be >= 1')
    check(config.search.order in bilevel.ORDERS, 'search.order', f"choose one of {', '.join(bilevel.ORDERS)}")
    for field in ('w_lr', 'a_lr'):
        check(config.optim[field] > 0, f'optim.{field}', 'must be > 0')
    check(0 <= config.optim.w_lr_min <= config.optim.w_lr, 'optim.w_lr_min', 'must be in [0, optim.w_lr]')
    check(config.optim.grad_clip > 0, 'optim.grad_clip', 'must be > 0')
    for field in ('w_momentum', 'a_b1', 'a_b2'):
        check(0 <= config.optim[field] < 1, f'optim.{field}', 'must be in [0, 1)')
    for field in ('w_weight_decay', 'a_weight_decay'):
        check(config.optim[field] >= 0, f'optim.{field}', 'must be >= 0')
    spaces.get(config.space).check_config(config)
    try:   # the space's check_config (above) checks its widths against the partial-channel k
        relax.make_relaxation(config.relaxation.name, space=spaces.get(config.space),
                              **config.relaxation.kwargs.to_dict())
    except JaxnasError as e:
        raise ConfigError(f'bad config value relaxation.kwargs: {e}') from None


def partial_channel_k(config, space) -> int:
    """The partial-channel ``k`` the search of ``config`` runs with on ``space`` (1 unless
    the execution mode is ``partial_channel``; 1 also for relaxation arguments that
    :func:`validate` rejects itself). Spaces check their widths against it."""
    from jaxnas import relax
    if 'relaxation' not in config or 'search' not in config:
        return 1
    try:
        r = relax.make_relaxation(config.relaxation.name, space=space, **config.relaxation.kwargs.to_dict())
    except JaxnasError:
        return 1
    return r.partial_channels if (config.search.mode or r.mode) == 'partial_channel' else 1


def check_channels_divisible(config, space) -> None:
    """``model.channels`` must split into the partial-channel ``k`` (the cell spaces' rule)."""
    k = partial_channel_k(config, space)
    if 'model' in config and config.model.channels % k:
        raise ConfigError(f'bad config value model.channels={config.model.channels}: must be divisible by '
                          f'the partial-channel k={k}')
