"""The op registry: one :class:`OpDef` per op name, grouped into batched :class:`Family` s.

A supernet never builds its mixed edges op by op. An *edge group* is ``N`` target nodes
times ``S`` source states (:class:`EdgeGroup`), and every op of a mixed edge belongs to a
*family*: the ops of one family run as one batched computation over the whole group
(all depthwise-separable convs share a tap loop and one batched pointwise matmul, all
pools one stacked reduce-window, ...), so XLA compiles a handful of kernels per mixed
op, not one set per (edge, op) (DESIGN.md section 2). :mod:`jaxnas.ops.modes` runs the
execution modes (dense, single_path, partial_channel) over any families, written once.

Adding an op is one :func:`register` call (plus, if it brings a new batched family,
that :class:`Family`)::

    from jaxnas import ops
    ops.register(ops.OpDef('sep_conv_7x7', ops.families.SEP_DIL_CONVS, spec=ops.ConvSpec(7, 1, 2)))
    ops.register(ops.OpDef('mb_k3_e6', MBCONV, spec=(3, 6)), space='mbconv')

**Spaces.** Entries registered with ``space=None`` form the shared vocabulary (the
DARTS reference ops). A space may register entries of its own under its name; a lookup
with ``space=...`` prefers those and falls back to the shared vocabulary. NAS-Bench-201
uses this for its ``avg_pool_3x3`` (a bare pool, where DARTS's search network adds an
affine-free BatchNorm) and its ``nor_conv_kxk``.

**The family interface** (what a new family provides, see :class:`Family`):

- ``name``: the name of the family's module in the parameter tree of a mixed edge
  (``'convs'``, ``'pools'``); ``None`` for a family that builds one module per op, named
  after the op (``skip_connect``, ``none``).
- ``dense(ops, group, name) -> nn.Module``: a Flax module (created with ``name=name``)
  called as ``module(x, train)`` with ``x (Nx, S, B, H, W, C_in)`` (``Nx`` 1: the sources
  are shared by all targets, or ``N``: one input per edge) that returns the outputs of
  its ``ops`` (a tuple of :class:`OpDef` in the mixed edge's column order) stacked on a
  leading op axis, ``(O, N or 1, S, B, H', W', C_out)`` with ``H' = ceil(H / stride)``,
  or ``None`` when the ops contribute nothing (``none``). A lead axis of 1 broadcasts
  over the targets (parameter-free ops on shared sources are computed once). Its
  variables are laid out per edge (leading ``(N, S)`` axes, or ``(O, N, S)`` ...): the
  family alone knows that layout. During ``init`` it may return zeros of the right shape
  instead of computing (initialisation then compiles only shapes).
- ``single(ops, o, ctx) -> branch``: the single-path form of op ``ops[o]``, built from
  the family's *own* variables ``ctx.params`` / ``ctx.stats`` (:class:`BranchContext`):
  ``branch(x_e, n, s, stats) -> (y_e, stats)`` computes that op on the one edge
  ``(n, s)`` (``x_e (B, H, W, C_in)``, ``y_e = ctx.out_shape``, ``n`` and ``s`` traced
  integers) and returns the family's batch statistics with only that op's slot on that
  edge updated in training mode (:func:`batch_norm_slot` does it for a BatchNorm).
  Single-path mode runs the branches in a ``lax.switch`` inside a ``scan`` over the
  edges, with the variables ``dense`` created (initialisation always runs ``dense``).

The weighted family outputs are added up in the order the families were first
registered (the built-in order is the DARTS reference's: convs, pools, skip, none), so
a space's dense mixed op is a fixed, reproducible sum.

**Evaluation forms.** :meth:`OpDef.eval_form` returns the op on one edge of a discrete
network: the entry's own ``evaluation`` factory if it has one, otherwise
``jaxnas.ops.eval_forms.EVAL_FORMS[name]`` (looked up when asked, so this module imports
without it).
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Mapping, NamedTuple, Optional

import flax.linen as nn
import jax.numpy as jnp

from jaxnas.errors import JaxnasError
from jaxnas.nn import batch_norm


class EdgeGroup(NamedTuple):
    """``N`` target nodes x ``S`` source states of one mixed op, ``C_in -> C_out`` channels."""
    C_in: int
    C_out: int
    N: int
    S: int
    stride: int


class BranchContext(NamedTuple):
    """What a family's single-path builder gets besides its ops.

    ``params`` / ``stats``: the family module's own ``params`` and ``batch_stats``
    subtrees (``{}`` if it has none), the statistics as they were before this step;
    ``shared_input``: every target reads the same sources (``Nx == 1``), so a
    parameter-free op's slot (lead axis 1) is shared by the ``N`` targets;
    ``out_shape``: ``(B, H', W', C_out)`` of one edge's output.
    """
    group: EdgeGroup
    params: Mapping
    stats: Mapping
    train: bool
    shared_input: bool
    out_shape: tuple


Branch = Callable  # (x_e (B, H, W, C_in), n, s, stats) -> (y_e (B, H', W', C_out), stats)


@dataclasses.dataclass(frozen=True, eq=False)
class Family:
    """A batched family of ops; see the module docstring for the interface."""
    name: Optional[str]
    dense: Callable[..., nn.Module]                 # (ops, group, name) -> module(x, train) -> (O, ...) | None
    single: Callable[..., Branch]                   # (ops, o, BranchContext) -> branch
    doc: str = ''

    def module_name(self, op: 'OpDef') -> str:
        return self.name if self.name is not None else op.name


@dataclasses.dataclass(frozen=True)
class OpDef:
    """One op: how the supernet runs it (``family`` and the family's ``spec`` of it) and
    what it is.

    ``spec``: the family's description of this op (a :class:`~jaxnas.ops.families.ConvSpec`,
    a pool kind, a kernel size, ...), hashable. ``family=None``: an op with an evaluation
    form only (it cannot be a supernet primitive). ``parameter_free``: no weights (at
    stride 1), the collapse diagnostics' count. ``identity``: the identity at stride 1
    (the evaluation network applies no drop path there). ``evaluation``: an evaluation
    form ``(C, stride) -> module(x, train)`` overriding ``eval_forms.EVAL_FORMS[name]``.
    """
    name: str
    family: Optional[Family]
    spec: Any = None
    parameter_free: bool = False
    identity: bool = False
    evaluation: Optional[Callable[[int, int], nn.Module]] = None

    def eval_form(self, C: int, stride: int) -> nn.Module:
        """The op on one edge of a discrete network: ``module(x (B, H, W, C), train) -> y``."""
        if self.evaluation is not None:
            return self.evaluation(C, stride)
        forms = importlib.import_module('jaxnas.ops.eval_forms').EVAL_FORMS
        if self.name not in forms:
            raise JaxnasError(f'op {self.name!r} has no evaluation form (jaxnas.ops.eval_forms.EVAL_FORMS '
                              'or its registry entry)')
        return forms[self.name](C, stride)


_ENTRIES: dict = {}       # (space or None, name) -> OpDef
_FAMILIES: list = []      # registration order: the order family terms are summed in


def register(op: OpDef, *, space: Optional[str] = None) -> OpDef:
    """Add ``op`` to the shared vocabulary (``space=None``) or to ``space``'s own entries.

    Registering the same entry again is a no-op; another entry under a taken name is an
    error. A new family is appended to the family order.
    """
    key = (space, op.name)
    old = _ENTRIES.get(key)
    if old is not None and old != op:
        where = f'space {space!r}' if space else 'the shared vocabulary'
        raise JaxnasError(f'op {op.name!r} is already registered in {where} with another definition')
    _ENTRIES[key] = op
    if op.family is not None and all(f is not op.family for f in _FAMILIES):
        _FAMILIES.append(op.family)
    return op


def get(name: str, space: Optional[str] = None) -> OpDef:
    """The entry of op ``name``: ``space``'s own, else the shared vocabulary's."""
    for key in ((space, name), (None, name)):
        if key in _ENTRIES:
            return _ENTRIES[key]
    raise JaxnasError(f"unknown op {name!r}; known ops: {', '.join(names(space))}")


def lookup(primitives, space: Optional[str] = None, *, supernet: bool = True) -> tuple:
    """The entries of ``primitives``; with ``supernet``, each must have a family."""
    defs = tuple(get(n, space) for n in primitives)
    if supernet:
        missing = [d.name for d in defs if d.family is None]
        if missing:
            raise JaxnasError(f"op(s) {', '.join(missing)} have no supernet (batched) form; "
                              'they can only appear in evaluation networks')
    return defs


def names(space: Optional[str] = None) -> tuple:
    """Op names visible from ``space`` (its own entries and the shared vocabulary)."""
    own = [n for s, n in _ENTRIES if s == space and space is not None]
    return tuple(own + [n for s, n in _ENTRIES if s is None and n not in own])


def family_order(family: Family) -> int:
    return next(i for i, f in enumerate(_FAMILIES) if f is family)


def groups(defs) -> list:
    """``[(family, module name, column indices)]`` of a mixed edge's ops ``defs``: one
    entry per family module, in family registration order (then first appearance);
    columns in ``defs`` order."""
    columns = {}
    for i, d in enumerate(defs):
        columns.setdefault((d.family, d.family.module_name(d)), []).append(i)
    order = sorted(columns, key=lambda key: family_order(key[0]))   # stable: first appearance within a family
    return [(family, name, tuple(columns[family, name])) for family, name in order]


def batch_norm_slot(y, stats: Mapping, key: str, index: tuple, train: bool, base: Optional[Mapping] = None):
    """Affine-free BatchNorm of one edge's ``y (B, H, W, C)`` with the running statistics
    ``stats[key]['mean' / 'var'][index]`` (a slot of a batched BatchNorm); returns
    ``(y_normalised, stats)`` with that slot updated in training mode exactly as
    :class:`jaxnas.nn.BatchNorm` updates it.

    ``base`` (the statistics before this step, ``BranchContext.stats``) makes the update
    idempotent: a slot that several edges share (a pool of a source shared by all
    targets) then moves once per step, as in dense mode, however many edges pick it.
    """
    node = stats[key]
    old = (base if base is not None else stats)[key]
    y, (mean, var) = batch_norm(y, old['mean'][index] if train else node['mean'][index],
                                old['var'][index] if train else node['var'][index], train)
    if train:
        stats = {**stats, key: {'mean': node['mean'].at[index].set(mean), 'var': node['var'].at[index].set(var)}}
    return y, stats


def zeros_output(x, lead, C: int, stride: int):
    """Zeros of a family's output shape ``(*lead, B, H', W', C)`` (for ``init``)."""
    Ho, Wo = -(-x.shape[-3] // stride), -(-x.shape[-2] // stride)
    return jnp.zeros(tuple(lead) + (x.shape[-4], Ho, Wo, C), x.dtype)
