"""The device benchmark: jaxnas's search and evaluation steps on this machine's accelerator, JSON out.

    python benchmarks/bench_device.py --out device.json          # the paper config, on a GPU or TPU
    python benchmarks/bench_device.py --micro --out device.json  # micro shapes (CPU CI: it cannot rot)

Run it whenever a session has an accelerator, and report its figures. Cases:

- **search steps** (:func:`bench_search.run_case`, each in its own process: trace, compile,
  first call, steady-state median, images/s, peak device memory): DARTS (dense) and GDAS
  (single path), first and second order, float32 and bfloat16 compute (``search.compute_dtype``:
  float32 weights and alpha), at the DARTS paper search config (C=16, 8 cells, batch 64,
  32x32x3), with ``model.conv_impl=auto`` (``lax`` convolutions off the CPU);
- **the DARTS_V2 evaluation network's training step** (C=36, 20 cells, batch 96, auxiliary
  head, drop path, as the DARTS CIFAR-10 retraining), float32 and bfloat16, with its
  model-FLOPs utilisation: XLA's flops per step (``cost_analysis``) / step time / the
  device's peak for that dtype (``jaxnas.costs.models.GPU_SPECS``; none on CPU).

``--micro`` runs at shapes a 2-core CPU compiles in under a minute per case (the CI test runs
three of them: ``--search-cases darts:first:float32,gdas:second:bfloat16 --dtypes bfloat16``).
``--cases`` and ``--search-cases`` pick some. On one H200 the paper-config run is meant to
take at most 8 minutes; not yet run on one (no session has had a GPU).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_search  # noqa: E402

SEARCH = [(relax, order) for relax in ('darts', 'gdas') for order in ('first', 'second')]
DTYPES = ('float32', 'bfloat16')
EVAL = {'paper': dict(channels=36, layers=20, batch=96, size=32, auxiliary_weight=0.4),
        'micro': dict(channels=4, layers=3, batch=4, size=16, auxiliary_weight=0.0)}


def peak_flops(device_kind: str, dtype: str):
    """The device's dense peak FLOP/s for ``dtype`` from GPU_SPECS (None if not listed)."""
    from jaxnas.costs.models import GPU_SPECS
    kind = device_kind.lower()
    for name, spec in GPU_SPECS.items():
        if name in kind:
            return spec['peak'].get(dtype)
    return None


def measure_evalnet(shape: str, dtype: str, steps: int) -> dict:
    """Compile and time the DARTS_V2 evaluation network's training step (``retrain.Trainer``)."""
    import jax
    import numpy as np
    from jaxnas import config as config_lib, retrain

    e = EVAL[shape]
    config = config_lib.get_config()
    config_lib.apply_overrides(config, [('retrain.network', 'cifar'), ('retrain.channels', e['channels']),
                                        ('retrain.layers', e['layers']), ('retrain.batch_size', e['batch']),
                                        ('retrain.auxiliary_weight', e['auxiliary_weight']),
                                        ('retrain.compute_dtype', dtype), ('retrain.check_memory', False)])
    rng = np.random.default_rng(0)
    n = 2 * e['batch']
    x = rng.normal(size=(n, e['size'], e['size'], 3)).astype(np.float32)
    y = rng.integers(0, 10, n).astype(np.int32)
    data = retrain.RetrainData(x, y, x, y, 10, augment=True, flip=True, eval_split='synthetic')
    net = retrain.build_network(retrain.resolve_genotype('DARTS_V2'), config, 10)
    trainer = retrain.Trainer(net, config, data, seeds=[0])
    state = trainer.init_state()
    bx, by = next(trainer.epoch_batches(0))
    compiled = trainer.compile(state, bx, by)
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    flops = float(analysis.get('flops', 0.0)) if analysis else 0.0
    state, metrics, first_call_s, times = bench_search.time_steps(compiled, state, (bx, by), steps)
    step_s = float(np.median(times))
    kind = jax.devices()[0].device_kind
    peak = peak_flops(kind, dtype) if jax.default_backend() == 'gpu' else None
    return {'case': 'evalnet', 'network': 'DARTS_V2 cifar', **e, 'compute_dtype': dtype,
            'compile_s': round(trainer.compile_s, 3), 'first_call_s': round(first_call_s, 3),
            'step_s_median': round(step_s, 4), 'images_per_s': round(e['batch'] / step_s, 2),
            'xla_flops_per_step': flops, 'achieved_flops': round(flops / step_s, 1),
            'device_peak_flops': peak, 'mfu': None if not peak else round(flops / step_s / peak, 4),
            **bench_search.device_memory(),
            'finite': bool(all(np.isfinite(np.asarray(v)).all() for v in jax.tree.leaves(metrics)))}


def run_evalnet(shape: str, dtype: str, steps: int) -> dict:
    print(f'measuring evalnet / {dtype} ...', file=sys.stderr, flush=True)
    proc = subprocess.run([sys.executable, __file__, '--one-evalnet', shape, dtype, '--steps', str(steps)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return {'case': 'evalnet', 'compute_dtype': dtype, 'error': proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--micro', action='store_true', help='micro shapes (CPU CI)')
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--cases', default='search,evalnet', help='search and/or evalnet')
    parser.add_argument('--dtypes', default=','.join(DTYPES))
    parser.add_argument('--search-cases', default='',
                        help='only these search cases, as relaxation:order:dtype,... (default: every one)')
    parser.add_argument('--out', default=None)
    parser.add_argument('--one-evalnet', nargs=2, metavar=('SHAPE', 'DTYPE'), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one_evalnet:
        import jaxnas  # noqa: F401  (XLA:CPU flags before the backend starts)
        print(json.dumps(measure_evalnet(args.one_evalnet[0], args.one_evalnet[1], args.steps)))
        return 0
    shape = 'micro' if args.micro else 'paper'
    dtypes = args.dtypes.split(',')
    for dt in dtypes:
        if dt not in DTYPES:
            parser.error(f"unknown dtype {dt!r}; choose from {', '.join(DTYPES)}")
    t0 = time.perf_counter()
    results = []
    cases = args.cases.split(',')
    search = [(r, o, dt) for r, o in SEARCH for dt in dtypes]
    if args.search_cases:
        search = [tuple(c.split(':')) for c in args.search_cases.split(',')]
        for c in search:
            if len(c) != 3 or c[1] not in ('first', 'second') or c[2] not in DTYPES:
                parser.error(f"bad search case {':'.join(c)!r}; write relaxation:order:dtype, e.g. gdas:first:bfloat16")
    if 'search' in cases:
        results += [bench_search.run_case(shape, order, relax, args.steps, dt) for relax, order, dt in search]
    if 'evalnet' in cases:
        results += [run_evalnet(shape, dt, args.steps) for dt in dtypes]
    doc = {'benchmark': 'device', 'shapes': shape, 'environment': bench_search.environment(),
           'wall_s': round(time.perf_counter() - t0, 1), 'results': results}
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text + '\n')
    return 1 if any('error' in r for r in results) else 0


if __name__ == '__main__':
    sys.exit(main())
