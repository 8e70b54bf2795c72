"""Measured op latency on the device this process runs on, cached on disk.

Each op alone (:func:`jaxnas.costs.table.edge_module`) is jitted as its inference forward
pass, called ``warmup`` times, then timed over ``calls`` calls, each ended by
``block_until_ready``; the cost is the median in microseconds per batch. Results are
cached in a JSON file per device kind and jax version (``$JAXNAS_COST_CACHE`` or
``~/.cache/jaxnas/costs``), keyed by the op entry (op, shapes, batch, dtype), so a second
table of the same shapes times nothing. The file is written atomically.
"""
from __future__ import annotations

import json
import os
import re
import time

import jax
import numpy as np

CALLS = 20
WARMUP = 3


def device_kind() -> str:
    d = jax.devices()[0]
    return f'{d.platform}-{getattr(d, "device_kind", "unknown")}'


def cache_path() -> str:
    root = os.environ.get('JAXNAS_COST_CACHE') or os.path.expanduser('~/.cache/jaxnas/costs')
    name = re.sub(r'[^A-Za-z0-9_.-]+', '_', f'measured-{device_kind()}-jax{jax.__version__}')
    return os.path.join(root, name + '.json')


def _read(path: str) -> dict:
    try:
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write(path: str, data: dict) -> None:
    from jaxnas import runs
    os.makedirs(os.path.dirname(path), exist_ok=True)
    runs.write_bytes(path, json.dumps(data, indent=0, sort_keys=True).encode())


def time_op(module, entry, *, calls: int = CALLS, warmup: int = WARMUP) -> float:
    """Median latency in microseconds of the op's jitted forward at the entry's shapes."""
    from jaxnas.costs.models import forward_fn, input_struct, variables_struct
    import jax.numpy as jnp
    vs = variables_struct(module, entry)
    x_s = input_struct(entry)
    variables = jax.tree.map(lambda s: jnp.full(s.shape, 0.01, s.dtype), vs)
    x = jax.random.normal(jax.random.key(0), x_s.shape, jnp.float32).astype(x_s.dtype)
    fn = jax.jit(forward_fn(module)).lower(variables, x).compile()
    for _ in range(warmup):
        jax.block_until_ready(fn(variables, x))
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(variables, x))
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e6)


def latencies(entries, build, *, progress: bool = False, calls: int = CALLS, warmup: int = WARMUP) -> list:
    """Microseconds per batch of each entry: from the cache, else timed (and cached)."""
    path = cache_path()
    cache = _read(path)
    todo = [e for e in entries if e.key() not in cache]
    if todo:
        it = todo
        if progress:
            from tqdm import tqdm
            it = tqdm(todo, desc='measured', unit='op')
        for e in it:
            module = build(e)
            cache[e.key()] = 0.0 if module is None else time_op(module, e, calls=calls, warmup=warmup)
        _write(path, {**_read(path), **cache})
    return [float(cache[e.key()]) for e in entries]
