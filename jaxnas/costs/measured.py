"""Measured op latency on the device this process runs on, cached on disk.

Each op alone (:func:`jaxnas.costs.table.edge_module`) is jitted as its inference forward
pass, called ``warmup`` times, then timed over ``calls`` calls, each ended by
``block_until_ready``, in ``rounds`` rounds over all the ops to time (alternating order);
the cost is the median of the round medians, in microseconds per batch. ``calls``,
``warmup`` and ``rounds`` default to :data:`CALLS` / :data:`WARMUP` / :data:`ROUNDS`, or
to ``$JAXNAS_MEASURED_CALLS`` / ``_WARMUP`` / ``_ROUNDS`` when set (read at each call: a
table built through :func:`jaxnas.costs.table_for_config` takes them from there).

Results are cached in a JSON file per device kind and jax version (``$JAXNAS_COST_CACHE``
or ``~/.cache/jaxnas/costs``; :func:`cache_path`), keyed by the op entry (op, shapes,
batch, dtype: :meth:`~jaxnas.costs.table.OpEntry.key`), so a second table of the same
shapes times nothing. The file is written atomically, merged with what another process
wrote meanwhile; an unreadable file or an entry that is not a finite latency >= 0 is
timed again.

What a per-op figure includes (measured in ``docs/results/cost_validation.md``): the
op's own work plus one program dispatch (~5 us on a 2-core CPU), which an op inside a
whole compiled network does not pay, and none of the fusion across ops a network gets.
"""
from __future__ import annotations

import json
import math
import os
import re
import time

import jax
import numpy as np

from jaxnas.costs.xla import CostError

CALLS = 20
WARMUP = 3
ROUNDS = 3
# What a call's time is: wall-clock latency (default), or this process's CPU time (all its
# threads), which other processes' load on a shared CPU host disturbs far less; not a
# latency on an accelerator. Chosen by $JAXNAS_MEASURED_CLOCK; cached in its own file.
CLOCKS = {'wall': time.perf_counter, 'process': time.process_time}


def device_kind() -> str:
    d = jax.devices()[0]
    return f'{d.platform}-{getattr(d, "device_kind", "unknown")}'


def clock() -> str:
    """``$JAXNAS_MEASURED_CLOCK``: ``wall`` (default) or ``process`` (:data:`CLOCKS`)."""
    name = os.environ.get('JAXNAS_MEASURED_CLOCK', '') or 'wall'
    if name not in CLOCKS:
        raise CostError(f"$JAXNAS_MEASURED_CLOCK={name!r}: choose one of {', '.join(CLOCKS)}")
    return name


def cache_path() -> str:
    """The cache file of this process's default device kind, jax version (and clock)."""
    root = os.environ.get('JAXNAS_COST_CACHE') or os.path.expanduser('~/.cache/jaxnas/costs')
    suffix = '' if clock() == 'wall' else f'-{clock()}'
    name = re.sub(r'[^A-Za-z0-9_.-]+', '_', f'measured-{device_kind()}-jax{jax.__version__}{suffix}')
    return os.path.join(root, name + '.json')


def _env_int(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, '')
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise CostError(f'${name}={raw!r}: expected an integer >= {minimum}')
    return value


def settings(calls=None, warmup=None, rounds=None) -> tuple:
    """``(calls, warmup, rounds)``: the arguments, else ``$JAXNAS_MEASURED_CALLS`` /
    ``_WARMUP`` / ``_ROUNDS``, else :data:`CALLS` / :data:`WARMUP` / :data:`ROUNDS`."""
    calls = _env_int('JAXNAS_MEASURED_CALLS', CALLS, 1) if calls is None else int(calls)
    warmup = _env_int('JAXNAS_MEASURED_WARMUP', WARMUP, 0) if warmup is None else int(warmup)
    rounds = _env_int('JAXNAS_MEASURED_ROUNDS', ROUNDS, 1) if rounds is None else int(rounds)
    if calls < 1 or warmup < 0 or rounds < 1:
        raise CostError(f'measured latency needs calls >= 1, warmup >= 0 and rounds >= 1, '
                        f'got {calls}, {warmup} and {rounds}')
    return calls, warmup, rounds


def _valid(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


def _read(path: str) -> dict:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return {k: float(v) for k, v in data.items() if _valid(v)} if isinstance(data, dict) else {}


def _write(path: str, data: dict) -> None:
    from jaxnas import runs
    os.makedirs(os.path.dirname(path), exist_ok=True)
    runs.write_bytes(path, json.dumps(data, indent=0, sort_keys=True).encode())


def prepare(module, entry):
    """The op's compiled inference forward at the entry's shapes, as a thunk ``run()``
    (weights filled with 0.01, a normal input)."""
    from jaxnas.costs.models import forward_fn, input_struct, variables_struct
    import jax.numpy as jnp
    vs = variables_struct(module, entry)
    x_s = input_struct(entry)
    variables = jax.tree.map(lambda s: jnp.full(s.shape, 0.01, s.dtype), vs)
    x = jax.random.normal(jax.random.key(0), x_s.shape, jnp.float32).astype(x_s.dtype)
    fn = jax.jit(forward_fn(module)).lower(variables, x).compile()
    return lambda: fn(variables, x)


def median_us(run, *, calls: int = CALLS, warmup: int = WARMUP) -> float:
    """Median microseconds of ``calls`` calls of ``run()`` after ``warmup``, each ended by
    ``block_until_ready``, on the :func:`clock`."""
    timer = CLOCKS[clock()]
    for _ in range(warmup):
        jax.block_until_ready(run())
    times = []
    for _ in range(calls):
        t0 = timer()
        jax.block_until_ready(run())
        times.append(timer() - t0)
    return float(np.median(times) * 1e6)


def time_op(module, entry, *, calls: int = CALLS, warmup: int = WARMUP) -> float:
    """Median latency in microseconds of the op's jitted forward at the entry's shapes."""
    return median_us(prepare(module, entry), calls=calls, warmup=warmup)


def latencies(entries, build, *, progress: bool = False, calls=None, warmup=None, rounds=None) -> list:
    """Microseconds per batch of each entry: from the cache, else timed (and cached).

    ``calls`` / ``warmup`` / ``rounds``: see :func:`settings`. The entries not cached are
    compiled first, then timed in ``rounds`` rounds visiting them in alternating order;
    an entry's latency is the median of its round medians, so a burst of load on a
    shared machine hits one round of several ops rather than all the calls of one.
    ``build(entry)`` is the op alone (``None``: nothing to run, cost 0)."""
    calls, warmup, rounds = settings(calls, warmup, rounds)
    path = cache_path()
    cache = _read(path)
    todo = list(dict.fromkeys(e for e in entries if e.key() not in cache))
    if todo:
        it = todo
        if progress:
            from tqdm import tqdm
            it = tqdm(todo, desc='measured (compile)', unit='op')
        runs = {}
        for e in it:
            module = build(e)
            if module is None:
                cache[e.key()] = 0.0
            else:
                runs[e] = prepare(module, e)
        timed = {e: [] for e in runs}
        order = list(runs)
        for r in range(rounds):
            for e in (order if r % 2 == 0 else order[::-1]):
                timed[e].append(median_us(runs[e], calls=calls, warmup=warmup))
        cache.update({e.key(): float(np.median(v)) for e, v in timed.items()})
        _write(path, {**_read(path), **cache})
    return [float(cache[e.key()]) for e in entries]
