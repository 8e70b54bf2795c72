"""Cost models and the hardware cost of architectures.

- :mod:`jaxnas.costs.xla`: flops / multiply-adds, bytes and memory of a compiled program
  from XLA's analyses (scans unrolled by a jaxpr pass), conv and matmul multiply-adds in
  the papers' convention, parameter counts;
- :mod:`jaxnas.costs.table`: the cost-model contract, per-op cost tables of a space's
  search network (:func:`build_table`) and the cost of a genotype;
- :mod:`jaxnas.costs.models`: the registry of cost models (``params``, ``xla``,
  ``xla-bytes``, ``tpu-*``, ``gpu-*``, ``measured``);
- :mod:`jaxnas.costs.objective`: the expected cost in the architecture loss and its forms.
"""
from jaxnas.costs.xla import (CostError, compile_cost, compile_forward, conv_linear_macs, count_params, memory,
                              param_counts, split_aux_params, unroll_scans, variable_shapes, xla_flops)

__all__ = ['CostError', 'compile_cost', 'compile_forward', 'conv_linear_macs', 'count_params', 'memory',
           'param_counts', 'split_aux_params', 'unroll_scans', 'variable_shapes', 'xla_flops',
           'build_table', 'table_for_config', 'INPUT_SHAPES']

# Image shape (H, W, C) of each data set: a table needs no data loaded.
INPUT_SHAPES = {'digits': (8, 8, 1), 'mnist': (28, 28, 1), 'cifar10': (32, 32, 3), 'cifar100': (32, 32, 3),
                'svhn_cropped': (32, 32, 3)}


def build_table(*args, **kwargs):
    from jaxnas.costs.table import build_table as build
    return build(*args, **kwargs)


def table_for_config(config, model=None, *, progress: bool = False):
    """The cost table of ``config``'s space and search network (``config.model``) at its
    data set's input shape, under ``model`` (default ``config.cost.model``), at
    ``config.cost.batch`` / ``config.cost.dtype`` (0 / '': the model's defaults)."""
    from jaxnas import spaces
    c = config.get('cost', {})
    model = model or c.get('model', '')
    if not model:
        raise CostError('no cost model: set cost.model (see jaxnas.costs.models)')
    batch = c.get('batch', 0) or None
    dtype = c.get('dtype', '') or None
    return build_table(spaces.get(config.space), config.model, INPUT_SHAPES[config.data.name], model,
                       batch=batch, dtype=dtype, progress=progress)
