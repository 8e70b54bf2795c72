"""Run by tests/test_parallel.py in a subprocess with 8 simulated CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=8`` must be set before jax starts):
a few steps of the tiny search on 1 device and on an 8-device data mesh at the same global
batch, and a whole 8-device search interrupted and resumed. Prints one JSON line."""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from conftest import make_tiny_config  # noqa: E402
from jaxnas import search  # noqa: E402

STEPS = 5


def steps(shape):
    s = search.Searcher(make_tiny_config(**{'mesh.shape': shape}))
    state = s.init_state()
    compiled = s.compile_step(state)
    for i, (t, v) in enumerate(s.epoch_batches(0)):
        state, _ = compiled(state, t, v)
        if i + 1 == STEPS:
            break
    return s, compiled, state


def max_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def main():
    out = {'devices': len(jax.devices())}
    s1, _, one = steps((1,))
    s8, compiled, eight = steps(())
    out['mesh_one'] = None if s1.mesh is None else dict(s1.mesh.shape)
    out['mesh_eight'] = dict(s8.mesh.shape)
    out['arch_max_diff'] = max_diff(one.arch, eight.arch)
    out['arch_max_abs'] = max(float(np.abs(np.asarray(v)).max()) for v in jax.tree.leaves(one.arch))
    out['params_max_diff'] = max_diff(one.params, eight.params)
    out['stats_max_diff'] = max_diff(one.batch_stats, eight.batch_stats)
    out['arch_moved'] = max_diff(one.arch, s1.init_state().arch)
    hlo = compiled.as_text()
    out['all_reduce'] = hlo.count('all-reduce(') + hlo.count('all-reduce-start(')
    out['all_gather'] = hlo.count('all-gather(') + hlo.count('all-gather-start(')
    out['host_transfers'] = sum(hlo.count(k) for k in ('outfeed', 'send(', 'recv(', 'host-compute'))
    leaf = jax.tree.leaves(eight.params)[0]
    out['params_replicated_on'] = len(leaf.sharding.device_set)
    out['params_fully_replicated'] = bool(leaf.sharding.is_fully_replicated)
    work = tempfile.mkdtemp()
    c = make_tiny_config()
    search.run_search(c, os.path.join(work, 'a'), progress=False, max_epochs=1)
    resumed = search.run_search(c, os.path.join(work, 'a'), progress=False)
    straight = search.run_search(c, os.path.join(work, 'b'), progress=False)
    out['resume_identical'] = all(
        open(os.path.join(work, 'a', f)).read() == open(os.path.join(work, 'b', f)).read()
        for f in ('alphas.json', 'genotype.txt'))
    out['complete'] = bool(resumed['complete'] and straight['complete'])
    # retraining: the same genotype on 1 device and on the 8-device data mesh
    from jaxnas import retrain
    scores = {}
    for name, shape in (('one', (1,)), ('eight', ())):
        rc = make_tiny_config(**{'mesh.shape': shape, 'retrain.epochs': 1, 'retrain.num_seeds': 2,
                                 'retrain.batch_size': 16})
        s = retrain.run_retrain(rc, os.path.join(work, f'retrain_{name}'), 'DARTS_V2', progress=False)
        log = [json.loads(line) for line in open(os.path.join(work, f'retrain_{name}', 'log.jsonl'))]
        scores[name] = (log[-1]['train_loss'], [x['accuracy'] for x in s['scores']])
    out['retrain_loss_diff'] = float(np.max(np.abs(np.asarray(scores['one'][0]) - np.asarray(scores['eight'][0]))))
    out['retrain_acc'] = [scores['one'][1], scores['eight'][1]]
    print(json.dumps(out))


if __name__ == '__main__':
    main()
