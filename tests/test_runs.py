"""The run directory: claim or refuse, atomic writes, JSONL truncation, checkpoints."""
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxnas import runs
from jaxnas.errors import JaxnasError


def _config(**kw):
    c = ml_collections.ConfigDict({'seed': 0, 'model': {'channels': 4, 'cells': (1, 2)}})
    for k, v in kw.items():
        c[k] = v
    return c


def test_claim_writes_one_identity_file_and_accepts_the_same_run(tmp_path):
    workdir = str(tmp_path / 'run')
    path = runs.claim(workdir, 'search', _config())
    assert path == os.path.join(workdir, 'run.json') and sorted(os.listdir(workdir)) == ['.lock', 'run.json']
    content = json.load(open(path))
    assert content == {'kind': 'search', 'config': {'seed': 0, 'model': {'channels': 4, 'cells': [1, 2]}}}
    runs.claim(workdir, 'search', _config())            # the same run resumes
    runs.claim(workdir, 'search', _config().to_dict())  # a dict of the same config is the same
    assert json.load(open(path)) == content


@pytest.mark.parametrize('kind, config, extra, message', [
    ('search', _config(seed=1), {}, 'holds a search run with a different config'),
    ('retrain', _config(), {}, 'holds a search run, not a retrain run'),
    ('search', _config(), {'seeds': [0, 1]}, 'different config or arguments'),
])
def test_claim_refuses_a_different_run_in_one_line_and_writes_nothing(tmp_path, kind, config, extra, message):
    workdir = str(tmp_path / 'run')
    runs.claim(workdir, 'search', _config())
    before = open(os.path.join(workdir, 'run.json')).read()
    with pytest.raises(JaxnasError, match=message) as info:
        runs.claim(workdir, kind, config, **extra)
    assert '\n' not in str(info.value) and workdir in str(info.value) and '--workdir' in str(info.value)
    assert open(os.path.join(workdir, 'run.json')).read() == before


def test_claim_takes_over_an_earlier_versions_identity_only_for_the_same_run(tmp_path):
    config = _config()
    same = tmp_path / 'same'
    same.mkdir()
    (same / 'config.json').write_text(config.to_json_best_effort(sort_keys=True))   # search before run.json
    runs.claim(str(same), 'search', config)
    assert json.load(open(same / 'run.json'))['kind'] == 'search'
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'pipeline.json').write_text(json.dumps({'config': config.to_dict(), 'genotype': 'DARTS_V1'}))
    runs.claim(str(other), 'pipeline', config, genotype='DARTS_V1')
    with pytest.raises(JaxnasError, match=r'different config or arguments \(run.json\)'):
        runs.claim(str(other), 'pipeline', config, genotype='DARTS_V2')
    old = tmp_path / 'old'
    old.mkdir()
    (old / 'config.json').write_text(_config(seed=5).to_json_best_effort())
    with pytest.raises(JaxnasError, match=r'different config \(config.json\)'):
        runs.claim(str(old), 'search', config)
    assert not (old / 'run.json').exists()


def test_atomic_json_write_replaces_whole_files_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / 'summary.json')
    runs.write_json(path, {'a': 1})
    runs.write_json(path, {'b': [1, 2]})
    assert runs.read_json(path) == {'b': [1, 2]} and os.listdir(tmp_path) == ['summary.json']
    assert runs.read_json(str(tmp_path / 'missing.json'), default={}) == {}
    (tmp_path / 'torn.json').write_text('{"a": ')
    with pytest.raises(JaxnasError, match='torn.json is not valid JSON'):
        runs.read_json(str(tmp_path / 'torn.json'))
    os.remove(tmp_path / 'torn.json')

    class Unserialisable:
        pass
    with pytest.raises(TypeError):
        runs.write_json(path, {'c': Unserialisable()})
    assert runs.read_json(path) == {'b': [1, 2]} and os.listdir(tmp_path) == ['summary.json']
    runs.write_text(str(tmp_path / 'genotype.txt'), 'G\n')
    assert sorted(os.listdir(tmp_path)) == ['genotype.txt', 'summary.json']


def test_atomic_binary_and_figure_writes_keep_the_old_file_on_failure(tmp_path, monkeypatch):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    path = str(tmp_path / 'blob.bin')
    runs.write_bytes(path, b'\x00\x01')
    runs.write_bytes(path, b'\x02')
    assert open(path, 'rb').read() == b'\x02' and os.listdir(tmp_path) == ['blob.bin']
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~_umask()   # as open() makes it, not mkstemp's 0600
    with monkeypatch.context() as m:   # a disk error before the rename: the old file stays, no temporary
        m.setattr(os, 'fsync', lambda fd: (_ for _ in ()).throw(OSError(28, 'No space left on device')))
        with pytest.raises(OSError, match='No space'):
            runs.write_bytes(path, b'\x03' * 100)
    assert open(path, 'rb').read() == b'\x02' and os.listdir(tmp_path) == ['blob.bin']
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1])
    png = str(tmp_path / 'plot.png')
    runs.save_figure(fig, png, dpi=20)
    before = open(png, 'rb').read()
    assert before.startswith(b'\x89PNG')
    with pytest.raises(ValueError):   # matplotlib refuses the format: the old figure stays, no temporary
        runs.save_figure(fig, png, dpi=20, format='no-such-format')
    plt.close(fig)
    assert open(png, 'rb').read() == before and sorted(os.listdir(tmp_path)) == ['blob.bin', 'plot.png']


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_jsonl_append_and_truncate_after_restore(tmp_path):
    path = str(tmp_path / 'log.jsonl')
    assert runs.read_jsonl(path) == [] and runs.truncate_jsonl(path, 'epoch', 3) == []
    runs.append_jsonl(path, {'epoch': 1, 'loss': 0.5})
    runs.append_jsonl(path, [{'epoch': 2, 'loss': 0.25}, {'epoch': 3, 'loss': 0.125}])
    assert [r['epoch'] for r in runs.read_jsonl(path)] == [1, 2, 3]
    before = open(path).read()
    assert [r['epoch'] for r in runs.truncate_jsonl(path, 'epoch', 3)] == [1, 2, 3]
    assert open(path).read() == before
    # the checkpoint of epoch 2 was restored: the line of epoch 3 is dropped, the rest kept byte for byte
    assert [r['epoch'] for r in runs.truncate_jsonl(path, 'epoch', 2)] == [1, 2]
    assert open(path).read() == ''.join(before.splitlines(keepends=True)[:2])
    # a crash in the middle of an append leaves a torn last line: it is dropped
    with open(path, 'a') as f:
        f.write('{"epoch": 3, "lo')
    assert [r['epoch'] for r in runs.read_jsonl(path)] == [1, 2]
    assert [r['epoch'] for r in runs.truncate_jsonl(path, 'epoch', 2)] == [1, 2]
    assert open(path).read().endswith('}\n') and os.listdir(tmp_path) == ['log.jsonl']
    runs.append_jsonl(path, {'epoch': 3})
    assert [r['epoch'] for r in runs.read_jsonl(path)] == [1, 2, 3]
    # a bad line in the middle is an error, not silently dropped
    with open(path, 'a') as f:
        f.write('garbage\n{"epoch": 4}\n')
    with pytest.raises(JaxnasError, match='log.jsonl:4 is not a JSON line'):
        runs.read_jsonl(path)




def test_checkpoint_round_trip_resume_and_no_half_written_checkpoint(tmp_path):
    from typing import NamedTuple

    class S(NamedTuple):
        step: jax.Array
        params: dict

    template = S(jnp.zeros((), jnp.int32), {'w': jnp.zeros((3, 2)), 'b': jnp.zeros(2, jnp.bfloat16)})
    directory = str(tmp_path / 'checkpoints')
    assert runs.restore(directory, template) == (None, template)
    state = S(jnp.asarray(7, jnp.int32), {'w': jnp.arange(6.0).reshape(3, 2), 'b': jnp.ones(2, jnp.bfloat16)})
    with runs.Checkpointer(directory, max_to_keep=2) as ckpt:
        for step in (1, 2, 3):
            ckpt.save(step, jax.tree.map(lambda a: a + step, state))
    assert sorted(os.listdir(directory)) == ['2', '3']
    # an interrupted save leaves only orbax's temporary directory: it is not a checkpoint
    os.makedirs(os.path.join(directory, '4.orbax-checkpoint-tmp-1234567'))
    step, restored = runs.restore(directory, template)
    assert step == 3 and type(restored) is S
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(jax.tree.map(lambda a: a + 3, state))):
        assert a.dtype == b.dtype and np.asarray(a).tobytes() == np.asarray(b).tobytes()
    with runs.Checkpointer(directory) as ckpt:
        assert ckpt.restore(template, step=2)[0] == 2
