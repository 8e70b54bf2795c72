"""The cost models: one :class:`CostModel` registry entry each (:data:`MODELS`).

A model costs a list of :class:`~jaxnas.costs.table.OpEntry` (an op at one shape, batch
and dtype) given ``build(entry) -> module``, the op alone as a Flax module called
``module(x, train)``. Adding a model is one :func:`register` call.

- ``params``: parameters of the op (from shapes; nothing compiled). Unit: parameters.
- ``xla``: XLA's cost-analysis flops / 2 of the op's compiled inference forward pass, per
  example, on the current backend: multiply-adds as XLA counts them (every multiply-add
  of the convs and matmuls without the taps over zero padding, plus one per elementwise
  op: BN, ReLU, pools, adds). Unit: multiply-adds per example.
- ``xla-bytes``: XLA's bytes accessed of the same program, per example.
- ``tpu-v4``, ``tpu-v5e``, ``tpu-v5p``, ``tpu-v6e``: XLA's TPU roofline estimate
  (``optimal_seconds`` of the op cross-compiled for that chip) from the tables shipped in
  ``jaxnas/costs/data/`` (:mod:`jaxnas.costs.tpu`); a search never compiles for TPU.
  Unit: microseconds per batch.
- ``gpu-a100``, ``gpu-h100``, ``gpu-h200``: a roofline, ``max(flops / peak, bytes /
  bandwidth)``, of the op with its channel dimensions padded to the tensor-core
  alignment (:data:`GPU_SPECS`, with sources). Unit: microseconds per batch.
- ``measured``: the op's latency on the device this process runs on (warm-up, median of
  ``n`` timed calls, each ended by ``block_until_ready``), cached on disk per op, shapes,
  dtype, device kind and jax version (:mod:`jaxnas.costs.measured`). Unit: microseconds
  per batch.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Mapping, Optional

import jax
import jax.numpy as jnp

from jaxnas.costs import xla
from jaxnas.costs.xla import CostError

DTYPES = ('float32', 'bfloat16', 'float16')


@dataclasses.dataclass(frozen=True)
class CostModel:
    """A cost model: ``costs(entries, build, progress=False) -> list[float]`` in ``unit``."""
    name: str
    unit: str
    doc: str
    costs: Callable
    default_batch: int = 1
    default_dtype: str = 'float32'
    info: Mapping = dataclasses.field(default_factory=dict)

    def describe(self) -> dict:
        return {'model': self.name, 'unit': self.unit, 'doc': self.doc, **dict(self.info)}


MODELS: dict = {}


def register(model: CostModel) -> CostModel:
    if model.name in MODELS and MODELS[model.name] != model:
        raise CostError(f'cost model {model.name!r} is already registered')
    MODELS[model.name] = model
    return model


def names() -> tuple:
    return tuple(MODELS)


def get(name: str) -> CostModel:
    if name not in MODELS:
        raise CostError(f"unknown cost model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]


# ----------------------------------------------------------------------------------------
# Building and compiling one op
# ----------------------------------------------------------------------------------------

def input_struct(entry) -> jax.ShapeDtypeStruct:
    h, w = entry.input_hw
    return jax.ShapeDtypeStruct((entry.batch, h, w, entry.c_in), jnp.dtype(entry.dtype))


def variables_struct(module, entry):
    """The op's variables from shapes only (nothing compiled), cast to the entry's dtype."""
    x = jax.ShapeDtypeStruct((2,) + input_struct(entry).shape[1:], jnp.float32)
    shapes = jax.eval_shape(lambda x: module.init({'params': jax.random.key(0)}, x, train=False), x)
    dt = jnp.dtype(entry.dtype)
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, dt), shapes)


def forward_fn(module) -> Callable:
    return lambda variables, x: module.apply(variables, x, train=False)


def lowered(module, entry):
    """``jit(forward).lower(variables, x)`` of the op at the entry's shapes."""
    return jax.jit(forward_fn(module)).lower(variables_struct(module, entry), input_struct(entry))


def _first(analysis) -> dict:
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else {}
    return dict(analysis or {})


_XLA_CACHE: dict = {}


def xla_counts(entry, build) -> tuple:
    """``(flops, bytes accessed)`` of the op's compiled forward pass (whole batch) on the
    current backend, cached per entry."""
    key = (entry, jax.default_backend())
    if key not in _XLA_CACHE:
        module = build(entry)
        if module is None:
            _XLA_CACHE[key] = (0.0, 0.0)
        else:
            ca = _first(lowered(module, entry).compile().cost_analysis())
            _XLA_CACHE[key] = (float(ca.get('flops', 0.0)), float(ca.get('bytes accessed', 0.0)))
    return _XLA_CACHE[key]


def _progress(items, progress: bool, desc: str):
    if not progress:
        return items
    from tqdm import tqdm
    return tqdm(items, desc=desc, unit='op')


# ----------------------------------------------------------------------------------------
# params, xla, xla-bytes
# ----------------------------------------------------------------------------------------

def _params(entries, build, progress=False) -> list:
    out = []
    for e in _progress(entries, progress, 'params'):
        module = build(e)
        out.append(0.0 if module is None else float(xla.count_params(variables_struct(module, e).get('params', {}))))
    return out


def _xla(index: int):
    def costs(entries, build, progress=False) -> list:
        return [xla_counts(e, build)[index] / (2.0 if index == 0 else 1.0) / e.batch
                for e in _progress(entries, progress, 'xla')]
    return costs


register(CostModel('params', 'parameters', 'parameters of the op (shapes only)', _params))
register(CostModel('xla', 'multiply-adds per example',
                   "XLA cost-analysis flops / 2 of the op's compiled inference forward, current backend", _xla(0)))
register(CostModel('xla-bytes', 'bytes accessed per example',
                   "XLA cost-analysis bytes accessed of the op's compiled inference forward, current backend",
                   _xla(1)))


# ----------------------------------------------------------------------------------------
# GPU roofline
# ----------------------------------------------------------------------------------------

# Dense (no sparsity) tensor-core peaks and HBM bandwidth from NVIDIA's datasheets. float32
# matmuls and convs run on tensor cores as TF32 (JAX's default precision on Ampere and newer).
# ``align``: elements per tensor-core-friendly channel multiple (16 bytes: 8 for 16-bit
# types, 4 for TF32); cuBLAS/cuDNN pad other sizes up to it.
GPU_SPECS = {
    'a100': {'chip': 'NVIDIA A100 SXM4 80GB', 'sms': 108, 'bandwidth': 2.039e12,
             'peak': {'bfloat16': 312e12, 'float16': 312e12, 'float32': 156e12},
             'source': 'NVIDIA A100 Tensor Core GPU datasheet (2021): BF16/FP16 312 TFLOPS, TF32 156 TFLOPS dense; '
                       'HBM2e 2,039 GB/s (80 GB SXM; 40 GB: 1,555 GB/s)'},
    'h100': {'chip': 'NVIDIA H100 SXM5 80GB', 'sms': 132, 'bandwidth': 3.35e12,
             'peak': {'bfloat16': 989e12, 'float16': 989e12, 'float32': 494.5e12},
             'source': 'NVIDIA H100 Tensor Core GPU datasheet (2023): BF16/FP16 1,979 TFLOPS with sparsity '
                       '(989 dense), TF32 989 with sparsity (494.5 dense); HBM3 3.35 TB/s (SXM)'},
    'h200': {'chip': 'NVIDIA H200 SXM 141GB', 'sms': 132, 'bandwidth': 4.8e12,
             'peak': {'bfloat16': 989e12, 'float16': 989e12, 'float32': 494.5e12},
             'source': 'NVIDIA H200 Tensor Core GPU datasheet (2024): BF16/FP16 1,979 TFLOPS with sparsity '
                       '(989 dense), TF32 989 with sparsity (494.5 dense); HBM3e 4.8 TB/s'},
}
GPU_ALIGN = {'bfloat16': 8, 'float16': 8, 'float32': 4}


def pad_to(n: int, multiple: int) -> int:
    return int(math.ceil(n / multiple) * multiple)


def gpu_roofline_us(flops: float, nbytes: float, spec: Mapping, dtype: str) -> float:
    """``max(flops / peak, bytes / bandwidth)`` in microseconds."""
    return 1e6 * max(flops / spec['peak'][dtype], nbytes / spec['bandwidth'])


def _gpu(chip: str):
    spec = GPU_SPECS[chip]

    def costs(entries, build, progress=False) -> list:
        out = []
        for e in _progress(entries, progress, f'gpu-{chip}'):
            if e.dtype not in spec['peak']:
                raise CostError(f"gpu-{chip} has no peak for dtype {e.dtype}; choose one of {', '.join(spec['peak'])}")
            a = GPU_ALIGN[e.dtype]
            padded = e.replace_channels(pad_to(e.c_in, a), pad_to(e.c_out, a))
            flops, nbytes = xla_counts(padded, build)
            out.append(gpu_roofline_us(flops, nbytes, spec, e.dtype))
        return out
    return costs


for _chip, _spec in GPU_SPECS.items():
    register(CostModel(f'gpu-{_chip}', 'microseconds per batch',
                       f"roofline max(flops / peak, bytes / bandwidth) of the op with channels padded to the "
                       f"tensor-core multiple, {_spec['chip']}; flops and bytes from XLA's cost analysis",
                       _gpu(_chip), default_batch=64, default_dtype='bfloat16',
                       info={'spec': _spec, 'align': GPU_ALIGN}))


# ----------------------------------------------------------------------------------------
# TPU tables and measured latency (their own modules)
# ----------------------------------------------------------------------------------------

def _tpu(chip: str):
    def costs(entries, build, progress=False) -> list:
        from jaxnas.costs import tpu
        return tpu.lookup(chip, entries)
    return costs


TPU_CHIPS = ('v4', 'v5e', 'v5p', 'v6e')
for _chip in TPU_CHIPS:
    register(CostModel(f'tpu-{_chip}', 'microseconds per batch',
                       f"XLA's TPU roofline estimate (optimal_seconds) of the op cross-compiled for TPU {_chip}, "
                       'from the shipped table (jaxnas/costs/data)', _tpu(_chip), default_batch=64,
                       default_dtype='bfloat16'))


def _measured(entries, build, progress=False) -> list:
    from jaxnas.costs import measured
    return measured.latencies(entries, build, progress=progress)


register(CostModel('measured', 'microseconds per batch',
                   "latency of the op's jitted inference forward on this process's default device (median of "
                   'timed calls after warm-up), cached on disk per op, shapes, dtype, device kind and jax version',
                   _measured, default_batch=64, default_dtype='float32'))


def unit(name: str) -> str:
    return get(name).unit


def check_dtype(dtype: Optional[str]) -> None:
    if dtype and dtype not in DTYPES:
        raise CostError(f"unknown cost dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
