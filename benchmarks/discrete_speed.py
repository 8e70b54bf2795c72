"""Speed of the discrete-search fitness modes on a config (default: experiments/digits_discrete.py).

    python benchmarks/discrete_speed.py [--config experiments/digits_discrete.py[:ARG]] [--group 4]

Short training (supernet backend): the same ``group`` candidates trained and scored
(a) together, one vmapped program, and (b) one by one with a program of group size 1;
compile (first call) reported apart from steady calls (median of ``--repeats``).
Weight sharing: supernet training time (``weight_sharing.epochs``), then candidates
scored per minute. Prints one JSON object.
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
import numpy as np  # noqa: E402

from jaxnas import config as config_lib, data as data_lib, discrete, fitness  # noqa: E402


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--config', default='experiments/digits_discrete.py')
    p.add_argument('--group', type=int, default=4)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--skip', default='', help='comma list: short_training,weight_sharing')
    args = p.parse_args()
    result = {'jax': jax.__version__, 'backend': jax.default_backend(), 'cpus': os.cpu_count(),
              'xla_flags': os.environ.get('XLA_FLAGS', ''), 'config': args.config, 'group': args.group}
    base = config_lib.load_config(args.config)
    d = base.data
    data = data_lib.load_dataset(d.name, data_dir=d.data_dir, train_portion=d.train_portion, seed=base.seed,
                                 limit=d.limit or None)
    space = discrete.make_space(base)
    keys = jax.random.split(jax.random.PRNGKey(1), args.group)
    cands = [space.decode(np.asarray(jax.random.randint(k, (space.num_choices,), 0, np.asarray(space.sizes)),
                                     np.int32)) for k in keys]
    result['model'] = {'channels': base.model.channels, 'layers': base.model.layers,
                       'steps': base.discrete.short_training.steps,
                       'batch_size': base.discrete.short_training.batch_size}

    if 'short_training' not in args.skip:
        out = {}
        for size in (args.group, 1):
            c = base.copy_and_resolve_references()
            c.discrete.batch_size = size
            fn = fitness.make_short_training(c, space, dataset=data)
            _, first = timed(fn.evaluate, cands)
            steady = [timed(fn.evaluate, cands)[1] for _ in range(args.repeats)]
            out[f'group_{size}'] = {'first_call_s': first, 'steady_s_per_group_of_candidates': float(np.median(steady)),
                                    'evaluations_per_minute': 60 * len(cands) / float(np.median(steady))}
        out['vmap_speedup'] = (out['group_1']['steady_s_per_group_of_candidates'] /
                               out[f'group_{args.group}']['steady_s_per_group_of_candidates'])
        result['short_training'] = out

    if 'weight_sharing' not in args.skip:
        c = base.copy_and_resolve_references()
        c.discrete.batch_size = args.group
        with tempfile.TemporaryDirectory() as tmp:
            fn, build = timed(lambda: fitness.make_weight_sharing(c, space, dataset=data, workdir=tmp))
            _, first = timed(fn.evaluate, cands)
            steady = [timed(fn.evaluate, cands)[1] for _ in range(args.repeats)]
        result['weight_sharing'] = {'supernet_train_s': build, 'epochs': c.discrete.weight_sharing.epochs,
                                    'relaxation': c.discrete.weight_sharing.relaxation, 'first_call_s': first,
                                    'evaluations_per_minute': 60 * len(cands) / float(np.median(steady))}
    print(json.dumps(result, indent=2))


if __name__ == '__main__':
    main()
