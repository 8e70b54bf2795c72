"""Cost models. :mod:`jaxnas.costs.xla`: flops / multiply-adds, bytes and memory of a
compiled program from XLA's analyses (scans unrolled by a jaxpr pass), conv and matmul
multiply-adds in the papers' convention, parameter counts."""
from jaxnas.costs.xla import (CostError, compile_cost, compile_forward, conv_linear_macs, count_params, memory,
                              param_counts, split_aux_params, unroll_scans, variable_shapes, xla_flops)

__all__ = ['CostError', 'compile_cost', 'compile_forward', 'conv_linear_macs', 'count_params', 'memory',
           'param_counts', 'split_aux_params', 'unroll_scans', 'variable_shapes', 'xla_flops']
