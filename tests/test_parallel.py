"""Data-parallel search (jaxnas.parallel) on 8 simulated CPU devices, in a subprocess
because the device count must be set before jax starts; and the mesh's one-line errors."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import make_tiny_config
from jaxnas import cli, parallel

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope='module')
def eight_devices():
    env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8', JAX_PLATFORMS='cpu')
    r = subprocess.run([sys.executable, os.path.join(HERE, 'parallel_check.py')], env=env, capture_output=True,
                       text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_eight_devices_match_one(eight_devices):
    """Same global batch: after 5 steps alpha and weights agree to float32 reduction-order
    noise (tolerance 1e-4 absolute on logits of size ~1; they moved by much more)."""
    r = eight_devices
    assert r['devices'] == 8 and r['mesh_one'] is None and r['mesh_eight'] == {'data': 8}
    assert r['arch_moved'] > 1e-2
    assert r['arch_max_diff'] < 1e-4 and r['params_max_diff'] < 1e-4 and r['stats_max_diff'] < 1e-4


@pytest.mark.slow
def test_step_all_reduces_and_keeps_state_on_devices(eight_devices):
    r = eight_devices
    assert r['all_reduce'] > 0              # gradients and BatchNorm moments reduced inside the step
    assert r['all_gather'] == 0 and r['host_transfers'] == 0
    assert r['params_replicated_on'] == 8 and r['params_fully_replicated']


@pytest.mark.slow
def test_eight_device_search_resumes_bit_identically(eight_devices):
    assert eight_devices['complete'] and eight_devices['resume_identical']


@pytest.mark.slow
def test_eight_device_retraining_matches_one(eight_devices):
    """Retraining (2 seeds at once, batch 16 split over 8 devices): the epoch's mean loss per
    seed within float noise of one device, and the same held-out accuracies."""
    r = eight_devices
    assert r['retrain_loss_diff'] < 1e-4
    one, eight = r['retrain_acc']
    assert np.allclose(one, eight, atol=2 / 300)   # at most a prediction or two flips


def test_one_device_has_no_mesh():
    """On one device nothing is placed or sharded (single-device runs unchanged)."""
    assert len(jax.devices()) == 1
    assert not parallel.is_parallel(parallel.make_mesh(make_tiny_config()))


def test_impossible_meshes_are_one_line(tmp_path, capsys):
    config = os.path.join(HERE, '..', 'experiments', 'tiny.py')
    for override, what in (('--config.mesh.shape=(4,)', 'needs 4 devices'),
                           ("--config.mesh.axis_names=('model',)", "'data'"),
                           ('--config.mesh.shape=(1, 1)', 'one size >= 1 per axis')):
        assert cli.main(['search', '--config', config, '--workdir', str(tmp_path / 'w'), '--no-progress',
                         override]) == 2
        err = capsys.readouterr().err.strip()
        assert what in err and len(err.splitlines()) == 1, err
    assert not os.path.exists(tmp_path / 'w')

    class Fake:
        shape = {'data': 8}
    with pytest.raises(parallel.MeshError, match='not divisible by the 8 devices'):
        parallel.check_batch(Fake(), 12, 'data.batch_size')
