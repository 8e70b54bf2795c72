"""Cost of a computation from XLA: flops (multiply-adds), bytes, memory, parameters.

Counts come from the compiled program, ``jit(f).lower(...).compile().cost_analysis()``,
rather than a hand count. XLA counts 2 flops per multiply-add (published.md
"Conventions"), so ``macs = flops / 2``. Two things need care:

- XLA counts a while loop's body once, whatever its trip count, and a ``lax.scan`` (the
  scanned cells of jaxnas's networks) is a while loop. :func:`unroll_scans` rewrites a
  function's jaxpr with every scan fully unrolled -- a jaxpr interpreter, nothing
  patched -- so :func:`compile_cost` / :func:`xla_flops` of the unrolled program count
  every iteration. The count then includes the elementwise work (BN, ReLU, pools, adds)
  as XLA sees it, which a conv-only count leaves out.
- :func:`conv_linear_macs` is the papers' convention instead (NATS-Bench "flops"):
  multiply-adds of the convolutions and matmuls only, each compiled on its own, a scan
  body counted ``length`` times, and the taps over zero padding included.

Memory comes from ``compile().memory_analysis()``.
"""
from __future__ import annotations

import functools
import time
from typing import Callable

import jax
import jax.extend.core as jex_core
import numpy as np

from jaxnas.errors import JaxnasError


class CostError(JaxnasError):
    """A computation whose cost cannot be counted (one line)."""


# ----------------------------------------------------------------------------------------
# Parameters
# ----------------------------------------------------------------------------------------

def count_params(tree) -> int:
    """Number of scalars in a pytree of arrays (or of ``ShapeDtypeStruct``)."""
    return int(sum(np.prod(np.shape(x), dtype=np.int64) for x in jax.tree.leaves(tree)))


AUX_HEAD = 'aux_head'   # evaluation networks keep an auxiliary head's parameters under this key


def split_aux_params(params) -> tuple:
    """``(network params, auxiliary-head params)`` (the latter ``{}`` without a head)."""
    params = dict(params)
    aux = params.pop(AUX_HEAD, {})
    return params, aux


def variable_shapes(net, input_shape) -> dict:
    """The variables of an evaluation network (``init(rngs, x, train=True)``) from shapes
    only: nothing is compiled; a network that cannot be built for ``input_shape`` raises."""
    import jax.numpy as jnp
    x = jax.ShapeDtypeStruct((2,) + tuple(input_shape), jnp.float32)
    rngs = {'params': jax.random.key(0), 'drop_path': jax.random.key(0)}
    return jax.eval_shape(lambda x: net.init(rngs, x, train=True), x)


def param_counts(net, input_shape) -> dict:
    """``{'total', 'network', 'aux_head'}`` parameter counts of an evaluation network."""
    params = variable_shapes(net, input_shape)['params']
    main, aux = split_aux_params(params)
    return {'total': count_params(params), 'network': count_params(main), 'aux_head': count_params(aux)}


# ----------------------------------------------------------------------------------------
# Scans unrolled: a jaxpr interpreter
# ----------------------------------------------------------------------------------------

# Call-like primitives whose body is inlined (their lowering inlines them anyway).
_INLINED = {'pjit': 'jaxpr', 'jit': 'jaxpr', 'closed_call': 'call_jaxpr', 'core_call': 'call_jaxpr',
            'checkpoint': 'jaxpr', 'remat': 'jaxpr', 'custom_jvp_call': 'call_jaxpr',
            'custom_vjp_call': 'call_jaxpr', 'custom_vjp_call_jaxpr': 'fun_jaxpr'}


def _closed(jaxpr):
    if isinstance(jaxpr, jex_core.ClosedJaxpr):
        return jaxpr.jaxpr, jaxpr.consts
    return jaxpr, ()


def _eval_unrolled(jaxpr, consts, *args) -> list:
    """Evaluate ``jaxpr`` (when traced: re-emit it) with every ``scan`` fully unrolled,
    also inside inlined calls and ``cond`` branches."""
    env = {}

    def read(v):
        return v.val if isinstance(v, jex_core.Literal) else env[v]

    for v, x in zip(jaxpr.constvars, consts):
        env[v] = x
    for v, x in zip(jaxpr.invars, args):
        env[v] = x
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        name = eqn.primitive.name
        p = eqn.params
        if name == 'scan':
            outs = _scan_unrolled(p, invals)
        elif name == 'cond':
            branches = [functools.partial(_call_closed, b) for b in p['branches']]
            outs = jax.lax.switch(invals[0], branches, *invals[1:])
        elif name in _INLINED and _INLINED[name] in p:
            outs = _eval_unrolled(*_closed(p[_INLINED[name]]), *invals)
        else:
            with eqn.ctx.manager:
                outs = eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(p))
            if not eqn.primitive.multiple_results:
                outs = [outs]
        for v, x in zip(eqn.outvars, outs):
            if not isinstance(v, jex_core.DropVar):
                env[v] = x
    return [read(v) for v in jaxpr.outvars]


def _call_closed(closed, *args):
    return _eval_unrolled(closed.jaxpr, closed.consts, *args)


def _scan_unrolled(p, invals) -> list:
    nc, nk = p['num_consts'], p['num_carry']
    consts, carry, xs = invals[:nc], invals[nc:nc + nk], invals[nc + nk:]

    def body(carry, x):
        outs = _call_closed(p['jaxpr'], *consts, *carry, *x)
        return outs[:nk], outs[nk:]

    carry, ys = jax.lax.scan(body, carry, xs, length=p['length'], reverse=p['reverse'], unroll=True)
    return list(carry) + list(ys)


def unroll_scans(fn: Callable) -> Callable:
    """``fn`` with every ``lax.scan`` it runs fully unrolled (same arguments and results).

    Use it under ``jit`` for cost analysis: XLA counts a loop body once, an unrolled
    scan once per iteration. Only this function's trace is rewritten; ``jax.lax`` is
    left alone.
    """
    @functools.wraps(fn)
    def unrolled(*args):
        closed, shape = jax.make_jaxpr(fn, return_shape=True)(*args)
        outs = _eval_unrolled(closed.jaxpr, closed.consts, *jax.tree.leaves(args))
        return jax.tree.unflatten(jax.tree.structure(shape), outs)
    return unrolled


# ----------------------------------------------------------------------------------------
# Whole-program cost analysis
# ----------------------------------------------------------------------------------------

def _first(analysis) -> dict:
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else {}
    return dict(analysis or {})


def compile_forward(fn: Callable, *args, unroll: bool = True):
    """``(compiled, compile_seconds)`` of ``jit(fn)`` on ``args`` (scans unrolled unless
    ``unroll=False``); ``args`` may be ``ShapeDtypeStruct``."""
    t0 = time.perf_counter()
    compiled = jax.jit(unroll_scans(fn) if unroll else fn).lower(*args).compile()
    return compiled, time.perf_counter() - t0


def compile_cost(compiled, batch_size: int = 1) -> dict:
    """FLOPs, multiply-adds and bytes accessed of a compiled program, also per example."""
    ca = _first(compiled.cost_analysis())
    flops = float(ca.get('flops', 0.0))
    nbytes = float(ca.get('bytes accessed', 0.0))
    return {
        'xla_flops': flops,
        'macs': flops / 2,
        'macs_per_example': flops / 2 / batch_size,
        'bytes_accessed': nbytes,
        'bytes_accessed_per_example': nbytes / batch_size,
    }


def xla_flops(fn: Callable, *args, unroll: bool = False) -> float:
    """XLA's cost-analysis flops of ``fn(*args)`` (``args`` may be ``ShapeDtypeStruct``);
    with ``unroll`` every scan iteration counts (:func:`unroll_scans`)."""
    return float(_first(compile_forward(fn, *args, unroll=unroll)[0].cost_analysis()).get('flops', 0.0))


def memory(compiled) -> dict:
    """Memory of a compiled program from XLA's buffer assignment."""
    m = compiled.memory_analysis()
    if m is None:
        return {}
    out = {k: int(getattr(m, f'{k}_in_bytes', 0) or 0)
           for k in ('argument_size', 'output_size', 'temp_size', 'alias_size', 'generated_code_size')}
    peak = int(getattr(m, 'peak_memory_in_bytes', 0) or 0)
    out['peak_bytes'] = peak or out['argument_size'] + out['output_size'] + out['temp_size'] - out['alias_size']
    return out


# ----------------------------------------------------------------------------------------
# Conv and matmul multiply-adds (the papers' convention)
# ----------------------------------------------------------------------------------------

_MAC_PRIMITIVES = ('conv_general_dilated', 'dot_general')


@functools.cache
def _primitive_flops(primitive, avals, params) -> float:
    args = [jax.ShapeDtypeStruct(shape, dtype) for shape, dtype in avals]
    return xla_flops(lambda *a: primitive.bind(*a, **dict(params)), *args)


def _pad_explicitly(avals, params):
    """The same conv on an input already zero-padded (padding 0): XLA then counts every
    tap, also those over the zeros, as the benchmark's k*k*Cin*Cout*Ho*Wo does."""
    (shape, dtype), rest = avals[0], avals[1:]
    if any(d != 1 for d in params['lhs_dilation']):
        return avals, params
    shape = list(shape)
    for dim, (lo, hi) in zip(params['dimension_numbers'].lhs_spec[2:], params['padding']):
        shape[dim] += lo + hi
    params = {**params, 'padding': tuple((0, 0) for _ in params['padding'])}
    return ((tuple(shape), dtype),) + rest, params


def _jaxpr_macs(jaxpr, count_padding: bool) -> float:
    from jaxnas.nn import DEPTHWISE_SCOPE
    total = 0.0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == 'mul' and DEPTHWISE_SCOPE in str(eqn.source_info.name_stack):
            # one tap of a depthwise conv written as shifted multiply-adds (jaxnas.nn.depthwise):
            # one multiply-add per output element, the scan over the taps counts k * k
            total += float(np.prod(eqn.outvars[0].aval.shape, dtype=np.float64))
            continue
        if name in _MAC_PRIMITIVES:
            avals, params = tuple((v.aval.shape, v.aval.dtype) for v in eqn.invars), dict(eqn.params)
            if count_padding and name == 'conv_general_dilated':
                avals, params = _pad_explicitly(avals, params)
            total += _primitive_flops(eqn.primitive, avals, tuple(sorted(params.items()))) / 2
            continue
        if name == 'while':
            raise CostError('cannot count multiply-adds through a while loop (unknown trip count)')
        subs = [s for v in eqn.params.values() for s in (v if isinstance(v, (tuple, list)) else (v,))
                if isinstance(s, (jex_core.ClosedJaxpr, jex_core.Jaxpr))]
        counts = [_jaxpr_macs(_closed(s)[0], count_padding) for s in subs]
        if counts:  # a scan runs its body `length` times; of cond branches count the dearest
            times = eqn.params['length'] if name == 'scan' else 1
            total += times * (max(counts) if name == 'cond' else sum(counts))
    return total


def conv_linear_macs(fn: Callable, *args, count_padding: bool = True) -> float:
    """Multiply-adds of the convolutions and matmuls of ``fn(*args)`` from XLA's cost analysis.

    Each ``conv_general_dilated`` / ``dot_general`` of the traced program is compiled on
    its own (cached per shape) and its cost-analysis flops halved; a scan body counts
    ``length`` times. Why not the whole program's flops: it adds BN, ReLU, pooling,
    residual and bias adds. XLA also leaves out the taps of a padded conv that fall on
    the padding; with ``count_padding`` (the papers' convention, k*k*Cin*Cout*Ho*Wo) each
    conv is costed on an explicitly padded input instead. Depthwise convs written as
    shifted multiply-adds (:func:`jaxnas.nn.depthwise`, no conv primitive) count one
    multiply-add per tap and output element, padding taps included either way.
    """
    return _jaxpr_macs(jax.make_jaxpr(fn)(*args).jaxpr, count_padding)
