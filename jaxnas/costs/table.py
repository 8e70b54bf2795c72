"""The cost-model contract: per-op cost tables of a search space and genotype costs.

For one space, search-network config (``model``) and input shape ``(H, W, C)``,
:func:`build_table` asks a cost model (:mod:`jaxnas.costs.models`, one registry entry per
model) for the cost of every op on every edge of the search network and returns a
:class:`CostTable`:

- ``costs[cell]``, an ``(edges, ops)`` array in the model's unit: entry ``[e, o]`` is op
  ``o`` on edge row ``e`` *summed over every place the row runs in the network* (a DARTS
  cell type runs at several widths, a NAS-Bench-201 cell ``N`` times per stage), each
  place costed at its own shapes (:attr:`SearchSpace.edge_shapes`). ``none`` costs 0; an
  op the space's mask forbids on an edge costs 0 (it never gets weight);
- ``keep[cell]``, ``(edges,)``: the share of derived cells that keep each row
  (:attr:`SearchSpace.edge_keep`; a DARTS node keeps 2 of its ``2 + i`` inputs);
- :meth:`CostTable.expected` ``(weights) = sum_cells sum_e keep_e sum_o w_eo c_eo``: the
  differentiable expected cost of a mix (what the architecture loss needs,
  :mod:`jaxnas.costs.objective`);
- :meth:`CostTable.genotype_cost` ``(genotype)``: the cost of a discrete genotype, the
  same sum over its one-hot mix (what the discrete searchers and the reports need), and
  :meth:`CostTable.breakdown` its per-cell, per-edge, per-op rows.

What is costed: the searchable ops of the search network; the stem, the cells' input
preprocessing and the classifier are the same for every genotype and are left out (the
tables rank and constrain genotypes; the whole evaluation network's XLA multiply-adds,
parameters, memory and latency are in the retraining report, :mod:`jaxnas.metrics`).
Every op is built alone on its edge's shapes (:func:`edge_module`) and costed in
inference mode at ``batch`` examples in ``dtype``.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping, NamedTuple, Optional

import numpy as np

from jaxnas.costs.xla import CostError


class OpEntry(NamedTuple):
    """One op at one shape: what a cost model is asked to cost (and its cache key)."""
    space: str
    op: str
    input_hw: tuple
    c_in: int
    c_out: int
    stride: int
    batch: int
    dtype: str

    def key(self) -> str:
        h, w = self.input_hw
        return f'{self.space}/{self.op}/{h}x{w}/{self.c_in}-{self.c_out}/s{self.stride}/b{self.batch}/{self.dtype}'

    def replace_channels(self, c_in: int, c_out: int) -> 'OpEntry':
        return self._replace(c_in=int(c_in), c_out=int(c_out))


def edge_module(space, op: str, edge):
    """Op ``op`` alone on ``edge`` (an :class:`~jaxnas.spaces.base.EdgeShape` or an
    :class:`OpEntry`): a module ``module(x (B, H, W, C_in), train)``, or ``None`` for an
    op that computes nothing (``none``). The space's ``edge_op`` hook if it has one, else
    the op registry's evaluation form at ``(C_in, stride)``."""
    from jaxnas import ops
    if getattr(space, 'edge_op', None) is not None:
        return space.edge_op(op, edge)
    if op == 'none':
        return None
    return ops.get(op, space.name).eval_form(edge.c_in, edge.stride)


@dataclasses.dataclass(frozen=True)
class CostTable:
    """Per-op costs of a space's search network (see the module docstring)."""
    space: str
    model: str
    unit: str
    input_shape: tuple
    batch: int
    dtype: str
    costs: Mapping[str, np.ndarray]
    keep: Mapping[str, np.ndarray]
    rows: tuple        # (cell, row, EdgeShape, op, cost of one occurrence)
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def expected(self, weights):
        """``sum_cells sum_e keep_e sum_o w_eo c_eo`` of a mix ``cell -> (edges, ops)``;
        differentiable (a jax scalar for jax weights)."""
        import jax.numpy as jnp
        total = jnp.zeros((), jnp.float32)
        for cell, c in self.costs.items():
            w = weights[cell]
            total = total + jnp.sum(jnp.asarray(self.keep[cell])[:, None] * w * jnp.asarray(c, jnp.float32))
        return total

    def genotype_cost(self, genotype, space=None) -> float:
        """The cost of a genotype: the sum of its chosen ops' entries."""
        space = space or _space(self.space)
        mix = space.one_hot(space.parse(genotype) if not space.is_genotype(genotype) else genotype)
        return float(sum(np.sum(np.asarray(mix[cell], np.float64) * np.asarray(c, np.float64))
                         for cell, c in self.costs.items()))

    def breakdown(self, genotype, space=None) -> list:
        """One dict per (cell, edge row, shape) the genotype uses: its op, shapes, how many
        times it runs, and its cost (of one occurrence and in total)."""
        space = space or _space(self.space)
        g = space.parse(genotype) if not space.is_genotype(genotype) else genotype
        mix = space.one_hot(g)
        out = []
        for cell, row, edge, op, each in self.rows:
            o = space.primitives.index(op)
            times = float(np.asarray(mix[cell])[row, o])
            if times == 0:
                continue
            out.append({'cell': cell, 'row': int(row), 'op': op, 'input_hw': list(edge.input_hw),
                        'c_in': int(edge.c_in), 'c_out': int(edge.c_out), 'stride': int(edge.stride),
                        'count': int(edge.count * times), 'cost_each': float(each),
                        'cost': float(each * edge.count * times)})
        return out

    def to_json(self) -> dict:
        return {'space': self.space, 'model': self.model, 'unit': self.unit, 'input_shape': list(self.input_shape),
                'batch': self.batch, 'dtype': self.dtype,
                'costs': {cell: np.asarray(c).tolist() for cell, c in self.costs.items()},
                'keep': {cell: np.asarray(k).tolist() for cell, k in self.keep.items()},
                'meta': dict(self.meta)}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1)


def _space(name: str):
    from jaxnas import spaces
    return spaces.get(name)


def entries(space, model_cfg, input_shape, *, batch: int, dtype: str) -> list:
    """``(cell, row, EdgeShape, op, OpEntry or None)`` for every op of every edge of the
    search network (``None``: not costed -- ``none``, or an op the mask forbids there)."""
    shapes = space.edge_shapes(model_cfg, tuple(input_shape))
    mask = space.op_mask or {}
    out = []
    for cell in space.cell_types:
        for edge in shapes[cell]:
            for o, op in enumerate(space.primitives):
                allowed = cell not in mask or bool(np.asarray(mask[cell])[edge.row, o])
                entry = None
                if allowed and op != 'none':
                    entry = OpEntry(space.name, op, tuple(int(v) for v in edge.input_hw), int(edge.c_in),
                                    int(edge.c_out), int(edge.stride), int(batch), str(dtype))
                out.append((cell, edge.row, edge, op, entry))
    return out


def build_table(space, model_cfg, input_shape, model: str = 'xla', *, batch: Optional[int] = None,
                dtype: Optional[str] = None, progress: bool = False) -> CostTable:
    """The :class:`CostTable` of ``space``'s search network (config ``model_cfg``) at
    ``input_shape (H, W, C)`` under cost model ``model`` (a name in
    :data:`jaxnas.costs.models.MODELS`); ``batch`` / ``dtype`` default to the model's."""
    from jaxnas.costs import models
    cm = models.get(model)
    batch = cm.default_batch if batch is None else int(batch)
    dtype = dtype or cm.default_dtype
    if batch < 1:
        raise CostError(f'cost batch must be >= 1, got {batch}')
    items = entries(space, model_cfg, input_shape, batch=batch, dtype=dtype)
    unique = sorted({e for *_, e in items if e is not None})
    build = lambda e: edge_module(space, e.op, e)
    values = dict(zip(unique, cm.costs(unique, build, progress=progress)))
    costs = {cell: np.zeros(space.arch_shapes[cell], np.float64) for cell in space.cell_types}
    rows = []
    for cell, row, edge, op, entry in items:
        each = 0.0 if entry is None else float(values[entry])
        if not np.isfinite(each) or each < 0:
            raise CostError(f'cost model {model} gave {each} for {entry.key()}: costs must be finite and >= 0')
        costs[cell][row, space.primitives.index(op)] += edge.count * each
        if entry is not None:
            rows.append((cell, row, edge, op, each))
    keep = {cell: np.asarray((space.edge_keep or {}).get(cell, np.ones(space.arch_shapes[cell][0])), np.float64)
            for cell in space.cell_types}
    return CostTable(space.name, cm.name, cm.unit, tuple(int(v) for v in input_shape), batch, dtype,
                     costs, keep, tuple(rows), cm.describe())
