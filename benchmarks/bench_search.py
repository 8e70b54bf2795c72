"""Compile time, step time, throughput and peak memory of the bilevel search step.

    python benchmarks/bench_search.py                       # all configs, first and second order
    python benchmarks/bench_search.py --configs tiny --orders first --steps 5 --out bench.json
    python benchmarks/bench_search.py --configs tiny,autodl --orders first \
        --relaxations darts,gdas,snas,drnas,pcdarts,fairdarts   # every relaxation
    python benchmarks/bench_search.py --configs paper --orders first --dtypes float32,bfloat16 --conv-impl lax

Configs: ``micro`` (C=2, 3 cells, batch 4, 8x8x3: CI), ``tiny`` (C=4, 5 cells, batch 16, 16x16x3), ``default`` (the digits default:
C=8, 5 cells, batch 32, 8x8x1), ``paper`` (the DARTS CIFAR-10 search: C=16, 8 cells,
batch 64, 32x32x3), ``autodl`` (AutoDL-Projects' DARTS-space search networks: C=16,
6 cells, batch 64, 32x32x3). Each relaxation runs in its own execution mode (GDAS
single-path, PC-DARTS partial-channel with k=4). Inputs are random arrays of those shapes (timing does not depend on
the values), run through the same ``search.Searcher`` step as ``jaxnas search``
(augmentation off). Each (config, order) runs in its own process so peak RSS is its own. One
step = one architecture step on a validation batch + one weight step on a training
batch, so images/s counts 2 x batch per step. Trace, compile, the first call and the
steady-state median are reported apart; the persistent compilation cache is off so
compile time is real. ``--dtypes`` sets ``search.compute_dtype`` and ``--conv-impl``
``model.conv_impl``. Output: one JSON document on stdout (and in --out), with the versions,
device, XLA flags (as jaxnas leaves them), usable CPUs, thread variables and load average.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

CONFIGS = {
    'micro': dict(channels=2, layers=3, batch=4, size=8, in_channels=3),   # CI: the scripts cannot rot
    'tiny': dict(channels=4, layers=5, batch=16, size=16, in_channels=3),
    'default': dict(channels=8, layers=5, batch=32, size=8, in_channels=1),
    'paper': dict(channels=16, layers=8, batch=64, size=32, in_channels=3),
    'autodl': dict(channels=16, layers=6, batch=64, size=32, in_channels=3),
}


def measure(config_name: str, order: str, relaxation: str, steps: int, dtype: str = 'float32',
            conv_impl: str = 'auto') -> dict:
    """Time the CLI's own step (``search.Searcher``) on a synthetic data set of the config's shape."""
    import jax
    import numpy as np
    from jaxnas import config as config_lib, data, search
    from jaxnas.nn import convolutions

    cfg = CONFIGS[config_name]
    config = config_lib.get_config()
    config_lib.apply_overrides(config, [('model.channels', cfg['channels']), ('model.layers', cfg['layers']),
                                        ('data.batch_size', cfg['batch']), ('search.order', order),
                                        ('relaxation.name', relaxation), ('search.compute_dtype', dtype),
                                        ('model.conv_impl', conv_impl)])
    rng = np.random.default_rng(0)
    n = 2 * cfg['batch']
    images = rng.normal(size=(n, cfg['size'], cfg['size'], cfg['in_channels'])).astype(np.float32)
    labels = rng.integers(0, 10, n).astype(np.int32)
    dataset = data.Dataset('synthetic', images, labels, images, labels, images, labels, 10, augment=False)
    searcher = search.Searcher(config, dataset)
    train = (images[:cfg['batch']], labels[:cfg['batch']])
    val = (images[cfg['batch']:], labels[cfg['batch']:])
    t = time.perf_counter()
    state = searcher.init_state()
    init_s = time.perf_counter() - t
    step = searcher.step
    t = time.perf_counter()
    lowered = step.lower(state, train, val)
    trace_s = time.perf_counter() - t
    t = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t
    memory = compiled.memory_analysis()
    state, metrics, first_call_s, times = time_steps(compiled, state, (train, val), steps)
    step_s = float(np.median(times))
    return {
        'config': config_name, 'order': order, 'relaxation': relaxation, 'mode': searcher.mode, **cfg,
        'compute_dtype': dtype, 'conv_impl': conv_impl, 'conv_impl_resolved': convolutions.resolve(conv_impl),
        'num_params': int(sum(np.size(p) for p in jax.tree.leaves(state.params))),
        'init_s': round(init_s, 3), 'trace_s': round(trace_s, 3), 'compile_s': round(compile_s, 3),
        'trace_plus_compile_s': round(trace_s + compile_s, 3), 'first_call_s': round(first_call_s, 3),
        'step_s_median': round(step_s, 4), 'step_s_all': [round(x, 4) for x in times],
        'images_per_s': round(2 * cfg['batch'] / step_s, 2),
        'xla_temp_bytes': int(getattr(memory, 'temp_size_in_bytes', 0) or 0),
        'peak_rss_gb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
        **device_memory(),
        'finite': bool(all(np.isfinite(float(v)) for v in metrics.values())),
    }


def time_steps(compiled, state, batches: tuple, steps: int):
    """``(state, metrics, first_call_s, step_times)``: one first call, then ``steps`` timed calls
    of ``compiled(state, *batches)``, each ended by ``block_until_ready``."""
    import jax
    t = time.perf_counter()
    state, metrics = compiled(state, *batches)
    jax.block_until_ready(state)
    first_call_s = time.perf_counter() - t
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        state, metrics = compiled(state, *batches)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t)
    return state, metrics, first_call_s, times


def device_memory() -> dict:
    """Peak device memory of this process where the backend reports it (GPU, TPU), else {}."""
    import jax
    stats = jax.devices()[0].memory_stats() or {}
    if 'peak_bytes_in_use' not in stats:
        return {}
    return {'peak_device_memory_gb': round(stats['peak_bytes_in_use'] / 2**30, 3)}


def environment() -> dict:
    """Versions, device, XLA flags (as jaxnas leaves them) and thread counts of this machine."""
    import jax
    import jaxlib
    import jaxnas  # noqa: F401  (its XLA:CPU flags are part of what was measured)
    from importlib import metadata
    versions = {}
    for pkg in ('flax', 'optax', 'numpy'):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return {
        'jax': jax.__version__, 'jaxlib': jaxlib.__version__, **versions, 'backend': jax.default_backend(),
        'devices': [str(d) for d in jax.devices()], 'device_kind': jax.devices()[0].device_kind,
        'cpu_count': os.cpu_count(), 'cpus_usable': len(os.sched_getaffinity(0)),
        'xla_flags': os.environ.get('XLA_FLAGS', ''),
        'thread_env': {k: os.environ[k] for k in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'TF_NUM_INTEROP_THREADS',
                                                  'TF_NUM_INTRAOP_THREADS') if k in os.environ},
        'load_average': list(os.getloadavg()), 'python': platform.python_version(), 'machine': platform.machine(),
    }


def run_case(config: str, order: str, relaxation: str, steps: int, dtype: str = 'float32',
             conv_impl: str = 'auto') -> dict:
    """:func:`measure` in a fresh process (its own peak memory and compile), as a dict."""
    print(f'measuring {config} / {order} / {relaxation} / {dtype} ...', file=sys.stderr, flush=True)
    proc = subprocess.run([sys.executable, __file__, '--one', config, order, relaxation, dtype, conv_impl,
                           '--steps', str(steps)], capture_output=True, text=True)
    if proc.returncode != 0:
        result = {'config': config, 'order': order, 'relaxation': relaxation, 'compute_dtype': dtype,
                  'error': proc.stderr.strip().splitlines()[-1:]}
    else:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(result), file=sys.stderr, flush=True)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--configs', default='tiny,default,paper')
    parser.add_argument('--orders', default='first,second')
    parser.add_argument('--steps', type=int, default=5, help='timed steady-state steps (median reported)')
    parser.add_argument('--out', default=None, help='also write the JSON here')
    parser.add_argument('--relaxations', default='darts', help='comma-separated relaxation names')
    parser.add_argument('--dtypes', default='float32', help='search.compute_dtype values: float32,bfloat16')
    parser.add_argument('--conv-impl', default='auto', help='model.conv_impl: auto | taps | lax')
    parser.add_argument('--one', nargs=5, metavar=('CONFIG', 'ORDER', 'RELAXATION', 'DTYPE', 'IMPL'),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        import jaxnas  # noqa: F401  (sets the XLA:CPU flags before the backend starts)
        c, o, r, dt, impl = args.one
        print(json.dumps(measure(c, o, r, args.steps, dt, impl)))
        return 0
    configs, orders = args.configs.split(','), args.orders.split(',')
    for c in configs:
        if c not in CONFIGS:
            parser.error(f"unknown config {c!r}; choose from {', '.join(CONFIGS)}")
    cases = [(c, o, r, dt) for c in configs for o in orders for r in args.relaxations.split(',')
             for dt in args.dtypes.split(',')]
    results = [run_case(c, o, r, args.steps, dt, args.conv_impl) for c, o, r, dt in cases]
    import jaxnas  # noqa: F401
    doc = {'benchmark': 'bilevel search step', 'environment': environment(), 'results': results}
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
