"""Two processes on localhost (jax.distributed, gloo collectives on CPU) search as one:
the same architecture as one process, only process 0 writes the run directory, and a
rerun restores the finished run on both."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import make_tiny_config
from jaxnas import parallel, search

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, 'experiments', 'tiny.py')
# One epoch, a gentle architecture step: the two programs differ only in float reduction
# order, which a large Adam step (the default 0.3) amplifies over the epochs.
CHANGES = {'search.epochs': 1, 'optim.a_lr': 3e-3}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('localhost', 0))
        return s.getsockname()[1]


def _two_processes(workdir: str) -> list:
    port = _free_port()
    env = dict(os.environ, JAX_PLATFORMS='cpu')
    env.pop('XLA_FLAGS', None)
    procs = [subprocess.Popen([sys.executable, '-m', 'jaxnas.cli', 'search', '--config', TINY, '--workdir', workdir,
                               '--no-progress', f'--config.distributed.coordinator_address=localhost:{port}',
                               *[f'--config.{k}={v}' for k, v in CHANGES.items()],
                               '--config.distributed.num_processes=2', f'--config.distributed.process_id={i}'],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in (1, 0)]
    out = [p.communicate(timeout=1200) for p in procs]
    for p, (_, err) in zip(procs, out):
        assert p.returncode == 0, err[-3000:]
    return out


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp('multihost')
    two = str(base / 'two')
    _two_processes(two)
    one = str(base / 'one')
    search.run_search(make_tiny_config(**CHANGES), one, progress=False)
    return one, two


@pytest.mark.slow
def test_two_processes_reach_the_same_alpha(runs):
    one, two = runs
    a = json.load(open(os.path.join(one, 'alphas.json')))
    b = json.load(open(os.path.join(two, 'alphas.json')))
    for cell in a:
        moved = np.abs(np.asarray(a[cell]) - 1 / np.asarray(a[cell]).shape[-1]).max()
        assert moved > 1e-3                       # the weights left the uniform start ...
        np.testing.assert_allclose(np.asarray(b[cell]), np.asarray(a[cell]), atol=2e-5)   # ... the same way
    assert open(os.path.join(one, 'genotype.txt')).read() == open(os.path.join(two, 'genotype.txt')).read()
    summary = json.load(open(os.path.join(two, 'summary.json')))
    assert summary['complete']


@pytest.mark.slow
def test_only_process_zero_writes(runs):
    _, two = runs
    log = [json.loads(line) for line in open(os.path.join(two, 'log.jsonl'))]
    assert [r['epoch'] for r in log] == [1]             # one writer: no duplicated lines
    assert len(os.listdir(os.path.join(two, 'tb'))) == 1  # one event file


@pytest.mark.slow
def test_rerun_restores_on_both_processes(runs):
    _, two = runs
    before = {f: open(os.path.join(two, f)).read() for f in ('alphas.json', 'log.jsonl', 'genotype.txt')}
    _two_processes(two)
    assert {f: open(os.path.join(two, f)).read() for f in before} == before


def test_bad_distributed_settings_are_one_line(monkeypatch):
    c = make_tiny_config(**{'distributed.coordinator_address': 'localhost:1', 'distributed.num_processes': 2})
    with pytest.raises(parallel.MeshError, match='process_id'):
        parallel.distributed_settings(c)
    monkeypatch.delenv('JAX_COORDINATOR_ADDRESS', raising=False)
    assert parallel.distributed_settings(make_tiny_config()) is None
