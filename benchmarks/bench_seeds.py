"""Seeds in one program (``search.seeds``) against the same seeds run one after another.

    python benchmarks/bench_seeds.py --config experiments/tiny.py --seeds 0,1,2,3 --out seeds_tiny.json
    python benchmarks/bench_seeds.py --config experiments/digits.py --seeds 0,1 \
        --config.search.epochs=1 --out seeds_digits.json
    python benchmarks/bench_seeds.py ... --batching vmap      # search.seed_batching

Both sides go through the CLI (``python -m jaxnas.cli search``, one process per command,
``--no-progress``), as a user would run them: ``one_program`` is one command with
``--config.search.seeds=<seeds>``; ``one_after_another`` is one command per seed with
``--config.seed=<s>``, in turn. Each side gets its own fresh, empty persistent compilation
cache (``$JAXNAS_CACHE_DIR``), shared by its commands as the CLI shares it, so the later
sequential seeds load the step the first one compiled. Reported per side: wall time (the
processes, start-up included), the step's compile time (``step_compile_s`` of the
summaries: the sequential side sums its seeds'), and the steady step time to advance
every seed by one step (median over epochs of ``step_time_s`` in ``log.jsonl``; the
sequential side sums the seeds'); ratios are sequential / one program (above 1: the one
program is faster). Extra ``--config.*`` overrides go to both sides. Output: one JSON
document on stdout (and in --out).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(args, cache_dir):
    env = dict(os.environ, JAXNAS_CACHE_DIR=cache_dir)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, '-m', 'jaxnas.cli', 'search', *args, '--no-progress'], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f'command failed ({proc.returncode}): {" ".join(args)}\n{proc.stderr[-2000:]}')
    return wall


def _read_run(run_dir):
    with open(os.path.join(run_dir, 'summary.json')) as f:
        summary = json.load(f)
    with open(os.path.join(run_dir, 'log.jsonl')) as f:
        steps = sorted(json.loads(line)['step_time_s'] for line in f if line.strip())
    return summary, steps[len(steps) // 2]


def _loadavg():
    try:
        return os.getloadavg()
    except OSError:
        return None


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--config', default=os.path.join(ROOT, 'experiments', 'tiny.py'))
    p.add_argument('--seeds', default='0,1,2,3')
    p.add_argument('--batching', default='map', choices=('map', 'vmap'))
    p.add_argument('--out', default='')
    p.add_argument('--keep', default='', help='work directory to keep (default: a temporary one)')
    args, overrides = p.parse_known_args(argv)
    seeds = [int(s) for s in args.seeds.split(',')]
    config = os.path.abspath(args.config)
    root = args.keep or tempfile.mkdtemp(prefix='bench_seeds_')
    load_before = _loadavg()

    # One program.
    multi_dir = os.path.join(root, 'one_program')
    wall = _cli(['--config', config, '--workdir', multi_dir, f'--config.search.seeds={args.seeds}',
                 f'--config.search.seed_batching={args.batching}', *overrides], os.path.join(root, 'cache_multi'))
    with open(os.path.join(multi_dir, 'seeds.json')) as f:
        multi = json.load(f)
    multi_steps = [_read_run(os.path.join(multi_dir, f'seed{s}'))[1] for s in seeds]
    one_program = {'wall_s': wall, 'compile_s': multi['step_compile_s'], 'step_s': multi_steps[0],
                   'genotypes': {str(s): multi['runs'][str(s)]['genotype'] for s in seeds}}

    # One after another.
    walls, compiles, steps, genotypes = [], [], [], {}
    for s in seeds:
        run_dir = os.path.join(root, 'one_after_another', f'seed{s}')
        walls.append(_cli(['--config', config, '--workdir', run_dir, f'--config.seed={s}', *overrides],
                          os.path.join(root, 'cache_sequential')))
        summary, step = _read_run(run_dir)
        compiles.append(summary['step_compile_s'])
        steps.append(step)
        genotypes[str(s)] = summary['genotype']
    one_after_another = {'wall_s': sum(walls), 'wall_s_per_seed': walls, 'compile_s': sum(compiles),
                         'compile_s_per_seed': compiles, 'step_s': sum(steps), 'step_s_per_seed': steps}

    result = {
        'config': os.path.relpath(config, ROOT), 'overrides': overrides, 'seeds': seeds, 'batching': args.batching,
        'one_program': one_program, 'one_after_another': one_after_another,
        'ratio_wall': one_after_another['wall_s'] / one_program['wall_s'],
        'ratio_compile': one_after_another['compile_s'] / one_program['compile_s'],
        'ratio_step': one_after_another['step_s'] / one_program['step_s'],
        'same_genotypes': genotypes == one_program['genotypes'],
        'loadavg_before': load_before, 'loadavg_after': _loadavg(),
        'machine': {'cpus': os.cpu_count(), 'platform': platform.platform(), 'python': platform.python_version()},
        'workdir': root,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text + '\n')
    return result


if __name__ == '__main__':
    main()
