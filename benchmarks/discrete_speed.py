"""Speed of the discrete-search fitness modes on a config (default: experiments/digits_discrete.py).

    python benchmarks/discrete_speed.py [--config experiments/digits_discrete.py[:ARG]] [--group 4]
        [--repeats 3] [--steps N] [--supernet-cache DIR] [--skip short_training,weight_sharing]

Short training (supernet backend), ``group`` candidates per repeat, in four variants:

- ``single_path_one_by_one``: single-path network, one candidate per call (the default);
- ``single_path_seeds_vmapped``: single-path network, one candidate trained from
  ``group`` seeds at once under vmap (the genotype is shared, so switches stay switches);
- ``dense_vmapped``: dense network, the ``group`` candidates in one vmapped call;
- ``dense_one_by_one``: dense network, one candidate per call.

The variants run interleaved (A B C D, A B C D, ...) on fresh candidates each repeat
(the same candidates for every variant of a repeat); the first call of each, which
holds the trace and compile, is reported apart (with the trace / compile split), and
steady figures are medians over ``--repeats``. "Trainings" counts candidate-seed pairs,
so the seeds variant is comparable with the one-by-one one.

Weight sharing: supernet training (or loading from ``--supernet-cache``) time, then
candidates scored per minute, single-path one by one against dense vmapped, interleaved.
Prints one JSON object (also written to ``--out``).

Measured (``--steps 10 --repeats 3``, experiments/digits_discrete.py: C=8, 5 cells,
batch 32, 719 arch-val digits; shared 2-core CPU, load average 3-5; jax 0.10):

    variant                      trainings/min  first call (trace + compile)
    single_path_one_by_one            52.5          105 s (20 + 78)
    single_path_seeds_vmapped (4)     68.3          132 s (21 + 90)
    dense_vmapped (4)                  7.9          135 s (16 + 85)
    dense_one_by_one                   9.4           95 s (14 + 72)

Vmapping 4 candidates in the dense network: 0.84x of one by one (slower); vmapping 4
seeds of one candidate in the single-path network: 1.30x; single path one by one over
dense vmapped: 6.6x. Weight-sharing scoring: single path 108 evaluations/min, dense
vmapped 17 (6.2x).
"""
import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import jaxnas  # noqa: E402,F401  (XLA flags before the first JAX computation)
import jax  # noqa: E402
import jaxlib  # noqa: E402
import numpy as np  # noqa: E402

from jaxnas import config as config_lib, data as data_lib, discrete, fitness  # noqa: E402

SHORT_VARIANTS = {   # name: (execution, discrete.batch_size, seeds, candidates per call)
    'single_path_one_by_one': ('single_path', 1, 1, 1),
    'single_path_seeds_vmapped': ('single_path', 1, None, 1),
    'dense_vmapped': ('dense', None, 1, None),
    'dense_one_by_one': ('dense', 1, 1, 1),
}


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def candidates(space, seed, n):
    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    return [space.decode(np.asarray(jax.random.randint(k, (space.num_choices,), 0, np.asarray(space.sizes)),
                                    np.int32)) for k in keys]


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--config', default='experiments/digits_discrete.py')
    p.add_argument('--group', type=int, default=4)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--steps', type=int, default=0, help='> 0: override discrete.short_training.steps')
    p.add_argument('--variants', default=','.join(SHORT_VARIANTS))
    p.add_argument('--supernet-cache', default='', help='weight_sharing.cache_dir (default: a temporary dir)')
    p.add_argument('--skip', default='', help='comma list: short_training,weight_sharing')
    p.add_argument('--out', default='')
    args = p.parse_args()
    G = args.group
    result = {'jax': jax.__version__, 'jaxlib': jaxlib.__version__, 'backend': jax.default_backend(),
              'cpus': os.cpu_count(), 'xla_flags': os.environ.get('XLA_FLAGS', ''), 'config': args.config,
              'group': G, 'repeats': args.repeats, 'load_avg_start': os.getloadavg()}
    base = config_lib.load_config(args.config)
    if args.steps:
        base.discrete.short_training.steps = args.steps
    d = base.data
    data = data_lib.load_dataset(d.name, data_dir=d.data_dir, train_portion=d.train_portion, seed=base.seed,
                                 limit=d.limit or None)
    space = discrete.make_space(base)
    st = base.discrete.short_training
    result['model'] = {'channels': base.model.channels, 'layers': base.model.layers, 'steps': st.steps,
                       'batch_size': st.batch_size, 'train_examples': len(data.train_x),
                       'val_examples': len(data.val_x)}

    if 'short_training' not in args.skip:
        fns, first = {}, {}
        names = [n for n in args.variants.split(',') if n]
        for name in names:
            execution, group, seeds, _ = SHORT_VARIANTS[name]
            c = base.copy_and_resolve_references()
            c.discrete.short_training.execution = execution
            c.discrete.short_training.seeds = seeds or G
            c.discrete.batch_size = group or G
            fns[name] = fitness.make_short_training(c, space, dataset=data)
        for name in names:   # first calls (trace + compile), on repeat -1's candidates
            per_call = SHORT_VARIANTS[name][3] or G
            _, t = timed(fns[name].evaluate, candidates(space, 1000, G)[:per_call])
            first[name] = {'first_call_s': t, **fns[name].evaluate.timings[0]}
        steady = {n: [] for n in names}
        for r in range(args.repeats):
            cs = candidates(space, r, G)
            for name in names:
                if SHORT_VARIANTS[name][2] is None:   # G seeds of one candidate: G trainings
                    steady[name].append(timed(fns[name].evaluate, cs[:1])[1])
                else:
                    steady[name].append(timed(fns[name].evaluate, cs)[1])
        out = {}
        for name in names:
            s = float(np.median(steady[name]))
            trainings = G
            candidates_done = 1 if SHORT_VARIANTS[name][2] is None else G
            out[name] = {**first[name], 'steady_s_per_repeat': steady[name], 'median_s': s,
                         'trainings_per_minute': 60 * trainings / s,
                         'evaluations_per_minute': 60 * candidates_done / s}
        ratio = lambda a, b: (out[a]['trainings_per_minute'] / out[b]['trainings_per_minute']
                              if a in out and b in out else None)
        out['speedups'] = {
            'dense_vmapped_over_dense_one_by_one': ratio('dense_vmapped', 'dense_one_by_one'),
            'single_path_seeds_vmapped_over_single_path_one_by_one':
                ratio('single_path_seeds_vmapped', 'single_path_one_by_one'),
            'single_path_one_by_one_over_dense_vmapped': ratio('single_path_one_by_one', 'dense_vmapped'),
            'single_path_one_by_one_over_dense_one_by_one': ratio('single_path_one_by_one', 'dense_one_by_one'),
        }
        result['short_training'] = out

    if 'weight_sharing' not in args.skip:
        with tempfile.TemporaryDirectory() as tmp:
            ws = {}
            fns = {}
            for execution in ('single_path', 'dense'):
                c = base.copy_and_resolve_references()
                c.discrete.batch_size = G
                c.discrete.weight_sharing.execution = execution
                c.discrete.weight_sharing.cache_dir = args.supernet_cache or os.path.join(tmp, 'supernets')
                fns[execution], build = timed(
                    lambda: fitness.make_weight_sharing(c, space, dataset=data, workdir=os.path.join(tmp, execution)))
                info = json.load(open(os.path.join(tmp, execution, 'supernet.json')))
                _, first = timed(fns[execution].evaluate, candidates(space, 1000, G))
                ws[execution] = {'setup_s': build, 'supernet_reused': info['reused'], 'first_call_s': first}
            steady = {e: [] for e in fns}
            for r in range(args.repeats):
                cs = candidates(space, 2000 + r, 4 * G)
                for e in fns:
                    steady[e].append(timed(fns[e].evaluate, cs)[1])
            for e in fns:
                ws[e].update({'steady_s_per_repeat': steady[e],
                              'evaluations_per_minute': 60 * 4 * G / float(np.median(steady[e]))})
        ws['epochs'] = base.discrete.weight_sharing.epochs
        ws['relaxation'] = base.discrete.weight_sharing.relaxation
        ws['single_path_over_dense_vmapped'] = (ws['single_path']['evaluations_per_minute']
                                                / ws['dense']['evaluations_per_minute'])
        result['weight_sharing'] = ws
    result['load_avg_end'] = os.getloadavg()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text + '\n')


if __name__ == '__main__':
    main()
