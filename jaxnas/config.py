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

from jaxnas.errors import JaxnasError, one_line


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
    c.model.conv_impl = 'auto'             # auto (taps on CPU, lax elsewhere) | taps | lax (jaxnas.nn.convolutions)

    c.relaxation = ml_collections.ConfigDict()
    c.relaxation.name = 'darts'
    c.relaxation.kwargs = ml_collections.ConfigDict()
    c.relaxation.penalty_weight = 1.0      # multiplies the relaxation's own penalty

    c.search = ml_collections.ConfigDict()
    c.search.epochs = 10                   # DARTS paper: 50
    c.search.order = 'first'               # first | second | finite_difference
    c.search.fuse_phases = True            # first order: one compiled fwd/bwd for both phases
    c.search.compute_dtype = 'float32'     # float32 | bfloat16: the step's forward/backward (weights and alpha stay float32)
    c.search.mode = ''                     # '' (the relaxation's own) | dense | single_path | partial_channel
    c.search.hessian_every = 1             # epochs between dominant-eigenvalue estimates (0: off)
    c.search.hessian_iters = 20            # power iterations (Hessian-vector products)
    c.search.recalibration_batches = 10    # supernet metric: BatchNorm re-estimated on this many train batches
    c.search.check_memory = True           # refuse a step that XLA says needs more memory than is available
    c.search.hessian_batches = 1           # arch-val batches of the Hessian's loss (Zela et al.: 1)
    c.search.seeds = ()                    # () : config.seed alone; (0, 1, 2, 3): those seeds in one program
    c.search.seed_batching = 'map'         # seeds: map (in turn, one program; CPU) | vmap (accelerators)

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
    # The architecture step. The DARTS paper's Adam 3e-4 moves α by at most ~6 logits over its
    # ~19.5k steps; the digits default has 220 (10 epochs x 22), and there 3e-4 leaves α at its
    # uniform start (mean entropy 99.99% of ln 8). Measured at this budget (DARTS, seed 0,
    # constant lr): 0.025 -> entropy 97.3% of max, 0.1 -> 92.8%, 0.3 -> 71-84%, the genotype
    # changing every epoch; annealed to 0 with a per-step cosine (optim.a_schedule) the steps
    # shrink at the end, so α settles on one genotype. The paper presets
    # (experiments/paper_search.py, cifar10_darts.py) set the paper's 3e-4, constant.
    c.optim.a_lr = 0.3
    c.optim.a_schedule = 'cosine'          # constant | cosine (per step, to 0, after any warm-up)
    c.optim.a_b1 = 0.5
    c.optim.a_b2 = 0.999
    c.optim.a_weight_decay = 1e-3
    c.optim.max_nonfinite_steps = 10       # stop after this many steps in a row skipped as NaN/inf (0: never)

    c.discrete = discrete_config()         # `jaxnas discrete`; checked by jaxnas.discrete.validate

    # Hardware cost (jaxnas.costs): a cost model's per-op table of the search network; with
    # cost.weight > 0 the architecture loss trades cross-entropy against the expected cost.
    c.cost = cost_config()

    # Devices (jaxnas.parallel): a mesh over jax.devices(); batches split on its 'data' axis,
    # weights, architecture and optimiser states replicated. (): every device on the data axis.
    c.mesh = ml_collections.ConfigDict()
    c.mesh.shape = ()
    c.mesh.axis_names = ('data',)
    # Several processes (hosts): jax.distributed.initialize; '' reads JAX_COORDINATOR_ADDRESS,
    # JAX_NUM_PROCESSES, JAX_PROCESS_ID (none: one process). Only process 0 writes run files.
    c.distributed = ml_collections.ConfigDict()
    c.distributed.coordinator_address = ''
    c.distributed.num_processes = 0
    c.distributed.process_id = -1

    # `jaxnas pareto` (jaxnas.pareto): searches under cost targets, scored beside random genotypes.
    c.pareto = ml_collections.ConfigDict()
    c.pareto.targets = (0.75, 0.5, 0.3)    # fractions of the unconstrained search's genotype cost
    c.pareto.random_archs = 30             # genotypes drawn by space.sample, the reference cloud

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
    c.retrain.max_nonfinite_steps = 10     # stop after this many steps in a row skipped as NaN/inf (0: never)
    c.retrain.check_memory = True          # refuse a step that XLA says needs more memory than is available

    # The hand-designed comparison network (jaxnas.baseline), width-matched in parameters.
    c.baseline = ml_collections.ConfigDict()
    c.baseline.blocks = (1, 1, 1)          # basic blocks per stage (ResNet-20: (3, 3, 3))
    c.baseline.tolerance = 0.05            # relative parameter-count mismatch allowed

    # `jaxnas run` (jaxnas.pipeline): search -> derive -> retrain NAS and baseline -> report.
    c.pipeline = ml_collections.ConfigDict()
    c.pipeline.num_seeds = 3
    c.pipeline.search_epochs = 4           # the pipeline's search epochs (0: search.epochs, 10)
    c.pipeline.random_archs = 3            # architectures drawn by space.sample, retrained beside NAS (0: none)
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


def cost_config() -> ml_collections.ConfigDict:
    """Defaults of the hardware cost term (:mod:`jaxnas.costs.objective`)."""
    k = ml_collections.ConfigDict()
    k.model = ''                           # '' (none) | a jaxnas.costs.models name: params | xla | xla-bytes |
                                           # tpu-v4 | tpu-v5e | tpu-v5p | tpu-v6e | gpu-a100 | gpu-h100 | gpu-h200 | measured
    k.target = 0.0                         # T, in the model's unit (`jaxnas cost` prints a genotype's cost)
    k.form = 'hinge'                       # additive | multiplicative | hinge (jaxnas.costs.objective)
    k.weight = 0.0                         # lambda; 0: the expected cost is logged, not in the loss
    k.exponent = 0.6                       # multiplicative (mul#log) form's beta
    k.batch = 0                            # examples per costed call (0: the model's default)
    k.dtype = ''                           # '' (the model's default) | float32 | bfloat16 | float16
    k.report_models = ('params', 'xla')    # models whose genotype cost `jaxnas retrain` / `run` report
    return k


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
    d.fitness.objective = 'metric'         # metric | linear | mnas | mnas_hard | tunas | constrained (jaxnas.fitness)
    d.fitness.cost = ''                    # a fitness mode's metric (params) | cost (cost.model's table) | cost:<model>
    d.fitness.cost_weight = 0.0            # penalty size: mnas/mnas_hard exponent and tunas beta are -cost_weight
    d.fitness.cost_target = 1.0            # T, in the cost's unit (mnas, mnas_hard, tunas; constrained: the limit)
    d.fitness.max_cost = 0.0               # > 0: reject (fitness -inf) a candidate costing more, any objective
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
    d.short_training.max_nonfinite_steps = 10   # a candidate with this many NaN/inf steps in a row: NaN fitness
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


def load_module(path: str, spec: Optional[str] = None, error: type = None):
    """The Python module of config file ``path``, executed; a path that is not a ``.py``
    file, does not exist or fails to load raises ``error`` (default :class:`ConfigError`) in
    one line. ``spec``: the ``--config`` value named in the message (default ``path``)."""
    error = error or ConfigError
    if not path.endswith('.py'):
        raise error(f'config {spec or path!r} is not a Python file; pass --config path/to/file.py[:arg]')
    if not os.path.isfile(path):
        raise error(f'config file {path} does not exist; see experiments/ for the available configs')
    module_spec = importlib.util.spec_from_file_location(f'jaxnas_config_{abs(hash(os.path.abspath(path)))}', path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:  # the user's file: report, don't crash with a traceback
        raise error(f'config file {path} failed to load: {type(e).__name__}: {one_line(e)}') from None
    return module


def load_config(spec: Optional[str]) -> ml_collections.ConfigDict:
    """Load ``path/to/file.py[:arg]`` (its ``get_config(arg)``), or the default for ``None``."""
    if spec is None:
        return get_config()
    path, _, arg = spec.partition(':')
    module = load_module(path, spec)
    if not callable(getattr(module, 'get_config', None)):
        raise ConfigError(f'config file {path} has no get_config(arg) function; define one that returns '
                          'an ml_collections.ConfigDict (see experiments/tiny.py)')
    takes_arg = bool(inspect.signature(module.get_config).parameters)
    if arg and not takes_arg:
        raise ConfigError(f'config file {path} takes no argument, got {arg!r}; pass --config {path}')
    call = f'get_config({arg!r})' if arg else 'get_config()'
    try:
        config = module.get_config(arg or None) if takes_arg else module.get_config()
    except Exception as e:  # the user's code: one line naming the file and the exception
        raise ConfigError(f'config file {path}: {call} raised {type(e).__name__}: {one_line(e)}; '
                          'fix the file or its :ARG') from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f'{call} in {path} returned a {type(config).__name__}; it must return an '
                          'ml_collections.ConfigDict')
    return config


class CommandLineValue(str):
    """A value as typed after ``--config.FIELD=``; :func:`apply_overrides` reads it by the
    type of the field it sets (Python values from code are set as they are)."""


def _literal(text: str):
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text.strip()


def parse_overrides(args: Iterable[str]) -> list:
    """``['--config.a.b=1', '--config.c', 'x']`` -> ``[('a.b', '1'), ('c', 'x')]``, each value a
    :class:`CommandLineValue` (its text, read by the field's type in :func:`apply_overrides`)."""
    args = list(args)
    out, i = [], 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith('--config.'):
            raise ConfigError(f'unexpected argument {arg!r}; overrides look like --config.model.channels=8')
        key, eq, value = arg[len('--config.'):].partition('=')
        if not key:
            raise ConfigError(f'override {arg!r} names no field; write --config.FIELD=VALUE, e.g. '
                              '--config.model.channels=8')
        if not eq:
            if i + 1 >= len(args) or args[i + 1].startswith('--'):
                raise ConfigError(f'override --config.{key} has no value; write --config.{key}=VALUE')
            value, i = args[i + 1], i + 1
        out.append((key, CommandLineValue(value)))
        i += 1
    return out


# ----------------------------------------------------------------------------------------
# Command-line values, typed by the field they set
# ----------------------------------------------------------------------------------------

_TYPE_NAMES = {bool: 'true or false', int: 'an integer', float: 'a number', str: 'a string'}
_PLURALS = {bool: 'true/false values', int: 'integers', float: 'numbers', str: 'strings'}


def _cli_form(value) -> str:
    """``value`` as it is written after ``--config.FIELD=``."""
    if isinstance(value, (tuple, list)):
        return ','.join(_cli_form(v) for v in value) if value else '()'
    return str(value)


def _split_elements(text: str) -> list:
    """``'a,b'``, ``'(a, b)'``, ``'[a,b]'`` -> ``['a', 'b']``: commas inside brackets or quotes
    (a genotype's text) do not split; ``'()'`` and ``''`` -> ``[]``."""
    t = text.strip()
    if len(t) >= 2 and (t[0], t[-1]) in (('(', ')'), ('[', ']')):
        t = t[1:-1]
    parts, depth, quote, current = [], 0, None, ''
    for ch in t:
        if quote:
            quote = None if ch == quote else quote
        elif ch in '\'"':
            quote = ch
        elif ch in '([{':
            depth += 1
        elif ch in ')]}':
            depth -= 1
        elif ch == ',' and depth == 0:
            parts.append(current)
            current = ''
            continue
        current += ch
    parts.append(current)
    parts = [p.strip() for p in parts]
    if parts and not parts[-1]:          # '(a,)' and 'a,'
        parts = parts[:-1]
    return parts


def _element_type(default):
    types = {type(v) for v in default}
    if types == {int, float}:
        return float
    return types.pop() if len(types) == 1 else None


def _read_scalar(text: str, kind, default):
    """``text`` as a value of type ``kind``; raises ``ValueError`` naming what was expected."""
    t = text.strip()
    if t == 'None' and default is None:
        return None
    if kind is bool:
        if t.lower() in ('true', '1', 'yes'):
            return True
        if t.lower() in ('false', '0', 'no'):
            return False
    elif kind is int:
        value = _literal(t)
        if type(value) is int:
            return value
    elif kind is float:
        try:
            return float(t)
        except ValueError:
            pass
    elif kind is str:
        value = _literal(t)
        return value if isinstance(value, str) else t
    else:
        return _literal(t)
    raise ValueError(_TYPE_NAMES[kind])


def _base_value(key: str):
    """Field ``key``'s value in :func:`base_config` (``...`` if it has none there)."""
    return _get(base_config(), key)


def _read(text: str, node, leaf: str, key: str):
    """The command-line ``text`` of field ``key`` (``node[leaf]``) as a value of the field's
    type: a scalar, or a tuple / list written ``a,b,c``, ``(a,b)`` or ``[a,b]`` whose
    elements are typed like the default's (the base config's where the field is empty);
    ``None`` where the field or its base default is ``None``."""
    if leaf not in node:                           # a new key of a kwargs section
        return _literal(text)
    kind, current, base = node.get_type(leaf), node[leaf], _base_value(key)
    default = current if current is not None or base is ... else base
    if text.strip() == 'None' and (current is None or base is None):
        return None
    example = f'e.g. --config.{key}={_cli_form(default)}' if default is not None else ''
    if kind in (tuple, list):
        if isinstance(default, (tuple, list)) and default and isinstance(default[0], (tuple, list, dict)):
            value = _literal(text)                 # nested: a Python literal
            if not isinstance(value, (tuple, list)):
                raise ConfigError(f'bad value {str(text)!r} for config field {key!r}: expected a Python '
                                  f'literal of a {kind.__name__}, {example}')
            return kind(value)
        etype = _element_type(default or ()) or (_element_type(base) if isinstance(base, (tuple, list)) else None)
        out = []
        for element in _split_elements(text):
            if etype is None:
                out.append(_literal(element))
                continue
            try:
                out.append(_read_scalar(element, etype, ...))
            except ValueError as e:
                raise ConfigError(f'bad value {str(text)!r} for config field {key!r}: element {element!r} is '
                                  f'not {e}; give {_PLURALS[etype]} separated by commas, '
                                  f'{example}') from None
        return kind(out)
    if kind in _TYPE_NAMES:
        try:
            return _read_scalar(text, kind, default)
        except ValueError as e:
            raise ConfigError(f'bad value {str(text)!r} for config field {key!r}: expected {e}'
                              + (f', {example}' if example else '')) from None
    return _literal(text)


# ----------------------------------------------------------------------------------------
# Fields with a fixed set of choices
# ----------------------------------------------------------------------------------------

def choices() -> dict:
    """Field -> its valid values (each element's, for a tuple field), from the registries
    that define them. :func:`apply_overrides` and :func:`check_shared` check them."""
    from jaxnas import bilevel, data, fitness, relax, retrain, searchers, spaces
    from jaxnas.costs import models as cost_models, objective as cost_objective
    from jaxnas.nn import convolutions
    from jaxnas.spaces.darts import evalnet
    return {
        'space': spaces.names(),
        'data.name': tuple(data.DATASETS),
        'relaxation.name': tuple(relax.RELAXATIONS),
        'search.order': tuple(bilevel.ORDERS),
        'optim.a_schedule': ('constant', 'cosine'),
        'search.mode': ('',) + tuple(relax.MODES),
        'compare.relaxations': tuple(relax.RELAXATIONS),
        'retrain.network': tuple(evalnet.NETWORKS),
        'retrain.compute_dtype': tuple(retrain.COMPUTE_DTYPES),
        'search.compute_dtype': tuple(retrain.COMPUTE_DTYPES),
        'model.conv_impl': convolutions.CONV_IMPLS,
        'retrain.seed_batching': tuple(retrain.SEED_BATCHING),
        'search.seed_batching': ('map', 'vmap'),
        'discrete.searcher': tuple(searchers.SEARCHERS),
        'discrete.fitness.mode': tuple(fitness.FITNESS_MODES),
        'discrete.fitness.objective': tuple(fitness.OBJECTIVES),
        'discrete.short_training.network': ('supernet', 'evalnet'),
        'discrete.short_training.execution': tuple(fitness.EXECUTIONS),
        'discrete.weight_sharing.relaxation': tuple(relax.RELAXATIONS),
        'discrete.weight_sharing.batch_norm': ('batch', 'running'),
        'discrete.weight_sharing.execution': tuple(fitness.EXECUTIONS),
        'cost.model': ('',) + cost_models.names(),
        'cost.form': tuple(cost_objective.FORMS),
        'cost.dtype': ('',) + tuple(cost_models.DTYPES),
        'cost.report_models': cost_models.names(),
    }


def _describe(options) -> str:
    return ', '.join(repr(o) if o == '' else str(o) for o in options)


def _get(config, key: str):
    node = config
    for part in key.split('.'):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            return ...
        node = node[part]
    return node


def _check_choice(config, key: str, table: dict) -> None:
    value = _get(config, key)
    if value is ... or key not in table:
        return
    options = table[key]
    bad = [v for v in value if v not in options] if isinstance(value, (tuple, list)) else (
        [] if value in options else [value])
    if bad:
        what = f'element {bad[0]!r} is unknown; choose each from' if isinstance(value, (tuple, list)) else \
            'choose one of'
        raise ConfigError(f'bad config value {key}={value!r}: {what} {_describe(options)}')


def _section_error(section, key: str) -> ConfigError:
    table = choices()
    fields = []
    for name in sorted(section.keys()):
        sub = f'{key}.{name}'
        if isinstance(section[name], ml_collections.ConfigDict):
            fields.append(f'{name}.*')
        elif sub in table:
            fields.append(f"{name} ({'|'.join(repr(o) if o == '' else str(o) for o in table[sub])})")
        else:
            fields.append(name)
    return ConfigError(f"config field {key!r} is a section, not a value; set one of its fields with "
                       f"--config.{key}.FIELD=VALUE: {', '.join(fields)}")


def apply_overrides(config: ml_collections.ConfigDict, overrides: Iterable) -> ml_collections.ConfigDict:
    """Set dotted fields; unknown fields, values of the wrong type and values outside a
    field's :func:`choices` are one-line errors. A :class:`CommandLineValue` is read by the
    field's type (tuples as ``a,b,c``); a ``kwargs`` section takes new keys (and
    ``compare.kwargs`` new per-relaxation sections)."""
    table = None
    for key, value in overrides:
        *parents, leaf = key.split('.')
        if not all(parents + [leaf]):
            raise ConfigError(f'bad config field {key!r}; write --config.FIELD.SUBFIELD=VALUE')
        node = config
        for depth, name in enumerate(parents):
            if name not in node and depth and parents[depth - 1] == 'kwargs':
                node[name] = ml_collections.ConfigDict()   # e.g. compare.kwargs.pcdarts.k
            if name not in node or not isinstance(node[name], ml_collections.ConfigDict):
                path = '.'.join(parents[:depth + 1])
                if name in node:
                    raise ConfigError(f'config field {path!r} is a value, not a section; set it with '
                                      f'--config.{path}=VALUE')
                raise ConfigError(f"unknown config field {path!r} in override of {key!r}; fields here: "
                                  f"{', '.join(sorted(node.keys()))}")
            node = node[name]
        if leaf not in node and 'kwargs' not in parents:
            raise ConfigError(f"unknown config field {key!r}; fields here: {', '.join(sorted(node.keys()))}")
        if leaf in node and isinstance(node[leaf], ml_collections.ConfigDict):
            raise _section_error(node[leaf], key)
        if isinstance(value, CommandLineValue):
            value = _read(value, node, leaf, key)
        try:
            node[leaf] = value
        except (TypeError, ValueError, KeyError):
            kind = node.get_type(leaf)
            raise ConfigError(f'bad value {value!r} for config field {key!r}: expected '
                              f"{_TYPE_NAMES.get(kind, 'a ' + kind.__name__)}, e.g. "
                              f'--config.{key}={_cli_form(node[leaf])}') from None
        table = table if table is not None else choices()
        _check_choice(config, key, table)
    return config


def check_shared(config: ml_collections.ConfigDict) -> None:
    """The checks every command makes before it runs: each field with :func:`choices`
    holds one of them, and the ``data`` section can be read."""
    table = choices()
    for key in table:
        _check_choice(config, key, table)
    d = config.data
    for ok, field, msg in (
            (isinstance(d.limit, int) and d.limit >= 0, 'limit', 'must be an integer >= 0 (0 reads everything)'),
            (0 < d.train_portion <= 1, 'train_portion', 'must be in (0, 1]'),
            (isinstance(d.batch_size, int) and d.batch_size >= 2, 'batch_size',
             'must be an integer >= 2 (BatchNorm needs a batch)'),
            (isinstance(d.eval_batch_size, int) and d.eval_batch_size >= 1, 'eval_batch_size',
             'must be an integer >= 1')):
        if not ok:
            raise ConfigError(f'bad config value data.{field}={d[field]!r}: {msg}')
    if not isinstance(config.seed, int):
        raise ConfigError(f'bad config value seed={config.seed!r}: must be an integer')


def validate(config: ml_collections.ConfigDict) -> None:
    """Reject values the search cannot use, naming the field and what is allowed."""
    from jaxnas import bilevel, data, relax

    def check(ok, field, msg):
        if not ok:
            value = config
            for part in field.split('.'):
                value = value[part]
            raise ConfigError(f'bad config value {field}={value!r}: {msg}')

    check_shared(config)
    from jaxnas import spaces
    check(config.space in spaces.names(), 'space', f"choose one of {', '.join(spaces.names())}")
    check(config.search.mode in ('',) + relax.MODES, 'search.mode',
          f"choose one of {', '.join(relax.MODES)} (or '' for the relaxation's own)")
    check(config.search.hessian_every >= 0, 'search.hessian_every', 'must be >= 0 (0 turns it off)')
    check(config.search.hessian_iters >= 1, 'search.hessian_iters', 'must be >= 1')
    check(config.search.recalibration_batches >= 1, 'search.recalibration_batches',
          'must be >= 1 (the supernet metric re-estimates BatchNorm on them)')
    check(config.search.hessian_batches >= 1, 'search.hessian_batches', 'must be >= 1')
    check(config.model.cells_per_stage >= 1, 'model.cells_per_stage', 'must be >= 1')
    check(config.data.name in data.DATASETS, 'data.name', f"choose one of {', '.join(data.DATASETS)}")
    check(0 < config.data.train_portion < 1 or (config.data.train_portion == 1 and _single_level(config)),
          'data.train_portion', 'must be in (0, 1) (1 only for a single-level search, e.g. snas)')
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
    check(config.optim.max_nonfinite_steps >= 0, 'optim.max_nonfinite_steps', 'must be >= 0 (0: never stop)')
    for field in ('w_momentum', 'a_b1', 'a_b2'):
        check(0 <= config.optim[field] < 1, f'optim.{field}', 'must be in [0, 1)')
    for field in ('w_weight_decay', 'a_weight_decay'):
        check(config.optim[field] >= 0, f'optim.{field}', 'must be >= 0')
    check_cost(config)
    spaces.get(config.space).check_config(config)
    try:   # the space's check_config (above) checks its widths against the partial-channel k
        relaxation_to_check(config, spaces.get(config.space))
    except JaxnasError as e:
        raise ConfigError(f'bad config value relaxation.kwargs: {e}') from None


def check_cost(config) -> None:
    """The cost section: a known model; with ``cost.weight > 0`` a target and a form that fit."""
    if 'cost' not in config:
        return
    from jaxnas.costs import models as cost_models, objective as cost_objective
    from jaxnas.errors import JaxnasError
    k = config.cost
    if k.model and k.model not in cost_models.names():
        raise ConfigError(f"bad config value cost.model={k.model!r}: choose one of {', '.join(cost_models.names())} "
                          "(or '' for none)")
    if k.batch < 0:
        raise ConfigError(f'bad config value cost.batch={k.batch!r}: must be >= 0 (0: the model\'s default)')
    if k.weight and not k.model:
        raise ConfigError(f'bad config value cost.weight={k.weight!r}: needs a cost model (set cost.model)')
    if k.weight:
        try:
            cost_objective.check_form(k.form, k.target, k.weight, k.exponent)
        except JaxnasError as e:
            raise ConfigError(f'bad config value cost: {e}') from None
        if config.relaxation.name == 'random_path':
            raise ConfigError("bad config value cost.weight: relaxation 'random_path' has no architecture gradient, "
                              'so a cost term has no effect (set cost.weight=0)')
    elif k.weight < 0:
        raise ConfigError(f'bad config value cost.weight={k.weight!r}: must be >= 0')


def relaxation_to_check(config, space):
    """The config's relaxation, made to check the config: on ``space`` without its op mask
    (the mask changes no argument, mode or ``k``, and leaving it out keeps checks off the
    device, so a bad input is refused before anything compiles)."""
    import dataclasses
    from jaxnas import relax
    return relax.make_relaxation(config.relaxation.name, space=dataclasses.replace(space, op_mask=None),
                                 **config.relaxation.kwargs.to_dict())


def _single_level(config) -> bool:
    """Whether the config's relaxation is single-level (False for arguments it rejects)."""
    from jaxnas import spaces
    try:
        return relaxation_to_check(config, spaces.get(config.space)).single_level
    except (JaxnasError, KeyError):
        return False


def partial_channel_k(config, space) -> int:
    """The partial-channel ``k`` the search of ``config`` runs with on ``space`` (1 unless
    the execution mode is ``partial_channel``; 1 also for relaxation arguments that
    :func:`validate` rejects itself). Spaces check their widths against it."""
    if 'relaxation' not in config or 'search' not in config:
        return 1
    try:
        r = relaxation_to_check(config, space)
    except JaxnasError:
        return 1
    return r.partial_channels if (config.search.mode or r.mode) == 'partial_channel' else 1


def check_channels_divisible(config, space) -> None:
    """``model.channels`` must split into the partial-channel ``k`` (the cell spaces' rule)."""
    k = partial_channel_k(config, space)
    if 'model' in config and config.model.channels % k:
        raise ConfigError(f'bad config value model.channels={config.model.channels}: must be divisible by '
                          f'the partial-channel k={k}')
