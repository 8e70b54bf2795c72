"""XLA:CPU's YNNPACK fusions: which fusion types give the plain XLA kernels' values, and how fast.

    python benchmarks/ynn_check.py            # every type, one process each; JSON on stdout
    python benchmarks/ynn_check.py --step     # also 3 tiny-config search steps per type

jaxnas turns the YNNPACK fusions off (``--xla_cpu_experimental_ynn_fusion_type=`` in
``jaxnas/__init__.py``). This script is the minimal check behind that: each case is a small
program run once with the fusions off (the reference) and once per fusion type in a fresh
process (the flag is read when the CPU backend starts). A case whose values differ by more
than float32 rounding is a wrong result, and a type with one is unsafe to enable.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

TYPES = ('', 'eltwise', 'reduce', 'dot', 'eltwise,reduce,dot')


def cases():
    import jax.numpy as jnp
    import jax

    x = jax.random.normal(jax.random.key(0), (4, 2, 9, 32, 32, 16))
    a = jax.random.normal(jax.random.key(1), (2, 64, 32, 32, 16))
    b = jax.random.normal(jax.random.key(2), (2, 64, 32, 32, 16))
    m = jax.random.normal(jax.random.key(3), (512, 256))
    xp = jax.random.normal(jax.random.key(4), (1, 2, 64, 34, 34, 16))
    g = jax.random.normal(jax.random.key(5), (4, 2, 64, 32, 32, 16))

    def stacked_tap_sums(xp, g):   # a kernel gradient: per-tap batch sums, stacked, then summed over space
        taps = [jnp.sum(xp[..., i:i + 32, j:j + 32, :] * g, axis=2) for i in range(3) for j in range(3)]
        return jnp.sum(jnp.stack(taps, -4), axis=(-3, -2))
    return {
        'stacked_tap_sums': (stacked_tap_sums, (xp, g)),
        # the reproducer: a sum over two middle axes (what a stacked kernel gradient needs)
        'sum_middle_axes': (lambda x: jnp.sum(x, axis=(-3, -2)), (x,)),
        'sum_batch_spatial': (lambda a: jnp.sum(a, axis=(1, 2, 3)), (a,)),
        'product_sum': (lambda a, b: jnp.sum(a * b, axis=(1, 2, 3)), (a, b)),
        'elementwise': (lambda a, b: jnp.tanh(a) * b + 1.0, (a, b)),
        'transpose_add': (lambda a, b: jnp.swapaxes(a, 1, 4) + jnp.swapaxes(b, 1, 4), (a, b)),
        'dot': (lambda m: m @ m.T, (m,)),
    }


def run_one() -> dict:
    import jax
    import numpy as np
    out = {}
    for name, (fn, args) in cases().items():
        f = jax.jit(fn).lower(*args).compile()
        y = np.asarray(f(*args))
        t = time.perf_counter()
        for _ in range(5):
            jax.block_until_ready(f(*args))
        out[name] = {'ms': round((time.perf_counter() - t) / 5 * 1e3, 3), 'checksum': float(np.abs(y).sum()),
                     'sample': y.ravel()[::max(1, y.size // 4096)].tolist()}
    return out


def run_step(out: str) -> dict:
    """Three first-order search steps at bench_search's tiny config; the final state to ``out``."""
    import jax
    import numpy as np
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_search
    from jaxnas import config as config_lib, data, search
    cfg = bench_search.CONFIGS['tiny']
    config = config_lib.get_config()
    config_lib.apply_overrides(config, [('model.channels', cfg['channels']), ('model.layers', cfg['layers']),
                                        ('data.batch_size', cfg['batch'])])
    rng = np.random.default_rng(0)
    n = 2 * cfg['batch']
    x = rng.normal(size=(n, cfg['size'], cfg['size'], cfg['in_channels'])).astype(np.float32)
    y = rng.integers(0, 10, n).astype(np.int32)
    searcher = search.Searcher(config, data.Dataset('synthetic', x, y, x, y, x, y, 10, augment=False))
    state = searcher.init_state()
    batches = (x[:cfg['batch']], y[:cfg['batch']]), (x[cfg['batch']:], y[cfg['batch']:])
    step = searcher.step.lower(state, *batches).compile()
    times = []
    for _ in range(3):
        t = time.perf_counter()
        state, _ = step(state, *batches)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t)
    np.savez(out, *[np.asarray(a) for a in jax.tree.leaves((state.params, state.arch, state.batch_stats))])
    return {'step_s': round(min(times), 4)}


def main() -> int:
    if '--one' in sys.argv:
        print(json.dumps(run_one()))
        return 0
    if '--one-step' in sys.argv:
        import jaxnas  # noqa: F401
        print(json.dumps(run_step(sys.argv[-1])))
        return 0
    results = {}
    for t in TYPES:
        env = dict(os.environ, XLA_FLAGS=f'--xla_cpu_experimental_ynn_fusion_type={t}', JAX_PLATFORMS='cpu')
        proc = subprocess.run([sys.executable, __file__, '--one'], capture_output=True, text=True, env=env)
        results[t or 'off'] = (json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0
                               else {'error': f'exit {proc.returncode}: ' + ' '.join(proc.stderr.split()[-20:])})
    import numpy as np
    ref = results['off']
    report = {}
    for t, res in results.items():
        if 'error' in res:
            report[t] = res
            continue
        report[t] = {name: {'ms': r['ms'], 'ms_off': ref[name]['ms'],
                            'max_rel_diff': float(np.max(np.abs(np.array(r['sample']) - np.array(ref[name]['sample'])))
                                                  / (np.max(np.abs(ref[name]['sample'])) + 1e-30))}
                     for name, r in res.items()}
        report[t]['safe'] = all(v['max_rel_diff'] < 1e-4 for k, v in report[t].items() if k != 'safe')
    if '--step' in sys.argv:
        import tempfile
        tmp = tempfile.mkdtemp()
        steps = {}
        for t in TYPES:
            path = os.path.join(tmp, f'{t or "off"}.npz')
            env = dict(os.environ, XLA_FLAGS=f'--xla_cpu_experimental_ynn_fusion_type={t}', JAX_PLATFORMS='cpu')
            proc = subprocess.run([sys.executable, __file__, '--one-step', path], capture_output=True, text=True, env=env)
            steps[t or 'off'] = (json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0
                                 else {'error': f'exit {proc.returncode}' + (' (SIGSEGV)' if proc.returncode == -11 else '')})
            if proc.returncode == 0 and t:
                a, b = np.load(os.path.join(tmp, 'off.npz')), np.load(path)
                steps[t]['max_rel_diff_vs_off'] = max(float(np.max(np.abs(a[k] - b[k])) / (np.max(np.abs(a[k])) + 1e-30))
                                                      for k in a.files)
        report['search_step'] = steps
    print(json.dumps(report, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
