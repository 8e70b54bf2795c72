"""The device benchmark runs end to end at micro shapes on CPU, so it is ready (and has not rotted)
whenever a session is lent an accelerator; and bench_search records what its figures depend on."""
import pytest
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_device_benchmark_micro_runs_its_cases(tmp_path):
    """Three of its cases (DARTS first order float32, GDAS second order bfloat16, the evaluation
    network in bfloat16): every code path of the script, each case compiled in about a minute."""
    out = tmp_path / 'device.json'
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'benchmarks', 'bench_device.py'), '--micro',
                           '--steps', '1', '--search-cases', 'darts:first:float32,gdas:second:bfloat16',
                           '--dtypes', 'bfloat16', '--out', str(out)], capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    results = doc['results']
    search = [r for r in results if 'order' in r]
    evalnet = [r for r in results if r.get('case') == 'evalnet']
    assert {(r['relaxation'], r['order'], r['compute_dtype']) for r in search} == {
        ('darts', 'first', 'float32'), ('gdas', 'second', 'bfloat16')}
    assert {r['compute_dtype'] for r in evalnet} == {'bfloat16'}
    for r in search + evalnet:
        assert r['finite'] and r['step_s_median'] > 0 and r['compile_s'] > 0, r
    assert {r['mode'] for r in search} == {'dense', 'single_path'}
    for r in evalnet:
        assert r['xla_flops_per_step'] > 0 and r['mfu'] is None   # no peak for a CPU
    env = doc['environment']
    for key in ('jax', 'jaxlib', 'xla_flags', 'cpu_count', 'cpus_usable', 'device_kind', 'load_average'):
        assert key in env
    assert 'xla_cpu_experimental_ynn_fusion_type' in env['xla_flags']   # what jaxnas set is recorded
