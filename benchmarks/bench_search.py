"""Compile time, step time, throughput and peak memory of the bilevel search step.

    python benchmarks/bench_search.py                       # all configs, first and second order
    python benchmarks/bench_search.py --configs tiny --orders first --steps 5 --out bench.json
    python benchmarks/bench_search.py --configs tiny,autodl --orders first \
        --relaxations darts,gdas,snas,drnas,pcdarts,fairdarts   # every relaxation

Configs: ``tiny`` (C=4, 5 cells, batch 16, 16x16x3), ``default`` (the digits default:
C=8, 5 cells, batch 32, 8x8x1), ``paper`` (the DARTS CIFAR-10 search: C=16, 8 cells,
batch 64, 32x32x3), ``autodl`` (AutoDL-Projects' DARTS-space search networks: C=16,
6 cells, batch 64, 32x32x3). Each relaxation runs in its own execution mode (GDAS
single-path, PC-DARTS partial-channel with k=4). Inputs are random arrays of those shapes (timing does not depend on
the values), run through the same ``search.Searcher`` step as ``jaxnas search``
(augmentation off). Each (config, order) runs in its own process so peak RSS is its own. One
step = one architecture step on a validation batch + one weight step on a training
batch, so images/s counts 2 x batch per step. Trace, compile, the first call and the
steady-state median are reported apart; the persistent compilation cache is off so
compile time is real. Output: one JSON document on stdout (and in --out).
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
    'tiny': dict(channels=4, layers=5, batch=16, size=16, in_channels=3),
    'default': dict(channels=8, layers=5, batch=32, size=8, in_channels=1),
    'paper': dict(channels=16, layers=8, batch=64, size=32, in_channels=3),
    'autodl': dict(channels=16, layers=6, batch=64, size=32, in_channels=3),
}


def measure(config_name: str, order: str, relaxation: str, steps: int) -> dict:
    """Time the CLI's own step (``search.Searcher``) on a synthetic data set of the config's shape."""
    import jax
    import numpy as np
    from jaxnas import config as config_lib, data, search

    cfg = CONFIGS[config_name]
    config = config_lib.get_config()
    config_lib.apply_overrides(config, [('model.channels', cfg['channels']), ('model.layers', cfg['layers']),
                                        ('data.batch_size', cfg['batch']), ('search.order', order),
                                        ('relaxation.name', relaxation)])
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
    t = time.perf_counter()
    state, metrics = compiled(state, train, val)
    jax.block_until_ready(state)
    first_call_s = time.perf_counter() - t
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        state, metrics = compiled(state, train, val)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t)
    step_s = float(np.median(times))
    return {
        'config': config_name, 'order': order, 'relaxation': relaxation, 'mode': searcher.mode, **cfg,
        'num_params': int(sum(np.size(p) for p in jax.tree.leaves(state.params))),
        'init_s': round(init_s, 3), 'trace_s': round(trace_s, 3), 'compile_s': round(compile_s, 3),
        'trace_plus_compile_s': round(trace_s + compile_s, 3), 'first_call_s': round(first_call_s, 3),
        'step_s_median': round(step_s, 4), 'step_s_all': [round(x, 4) for x in times],
        'images_per_s': round(2 * cfg['batch'] / step_s, 2),
        'xla_temp_bytes': int(getattr(memory, 'temp_size_in_bytes', 0) or 0),
        'peak_rss_gb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
        'finite': bool(all(np.isfinite(float(v)) for v in metrics.values())),
    }


def environment() -> dict:
    import jax
    import jaxlib
    return {
        'jax': jax.__version__, 'jaxlib': jaxlib.__version__, 'backend': jax.default_backend(),
        'devices': [str(d) for d in jax.devices()], 'cpu_count': os.cpu_count(),
        'xla_flags': os.environ.get('XLA_FLAGS', ''), 'python': platform.python_version(),
        'machine': platform.machine(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--configs', default='tiny,default,paper')
    parser.add_argument('--orders', default='first,second')
    parser.add_argument('--steps', type=int, default=5, help='timed steady-state steps (median reported)')
    parser.add_argument('--out', default=None, help='also write the JSON here')
    parser.add_argument('--relaxations', default='darts', help='comma-separated relaxation names')
    parser.add_argument('--one', nargs=3, metavar=('CONFIG', 'ORDER', 'RELAXATION'), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        import jaxnas  # noqa: F401  (sets the XLA:CPU flags before the backend starts)
        print(json.dumps(measure(args.one[0], args.one[1], args.one[2], args.steps)))
        return 0
    configs, orders = args.configs.split(','), args.orders.split(',')
    for c in configs:
        if c not in CONFIGS:
            parser.error(f"unknown config {c!r}; choose from {', '.join(CONFIGS)}")
    results = []
    for c in configs:
        for o in orders:
            for r in args.relaxations.split(','):
                print(f'measuring {c} / {o} / {r} ...', file=sys.stderr, flush=True)
                proc = subprocess.run([sys.executable, __file__, '--one', c, o, r, '--steps', str(args.steps)],
                                      capture_output=True, text=True)
                if proc.returncode != 0:
                    results.append({'config': c, 'order': o, 'relaxation': r,
                                    'error': proc.stderr.strip().splitlines()[-1:]})
                else:
                    results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
                print(json.dumps(results[-1]), file=sys.stderr, flush=True)
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
