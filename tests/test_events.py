"""TensorBoard events beside log.jsonl (jaxnas.runs.events): scalars, α heat maps, resume."""
import io
import os

import matplotlib
import numpy as np
import pytest
from PIL import Image

from jaxnas import runs
from jaxnas.runs import events


def _run_dir(path, space='darts'):
    runs.write_json(os.path.join(path, runs.IDENTITY), {'kind': 'search', 'config': {'space': space}})
    return str(path)


def _alphas(hot_op):
    normal = np.full((14, 8), 0.05)
    normal[0] = 0.0
    normal[0, hot_op] = 1.0
    return {'normal': normal.tolist(), 'reduce': np.full((14, 8), 0.125).tolist()}


def _images(tb):
    out = {}
    for e in events.read_events(tb):
        for v in e.summary.value:
            if v.HasField('image'):
                out[(v.tag, e.step)] = np.asarray(Image.open(io.BytesIO(v.image.encoded_image_string)).convert('RGB'))
    return out


def test_log_records_become_scalars_and_alpha_images(tmp_path):
    workdir = _run_dir(tmp_path)
    log = os.path.join(workdir, 'log.jsonl')
    records = [{'epoch': e, 'step': 10 * e, 'train_loss': 1.0 / e, 'derived_val_acc': 0.25 * e, 'genotype': 'G',
                'converged': False, 'per_seed_acc': [0.5, 0.75 + e / 100], 'cost': {'genotype_cost': 3.0 * e},
                'hessian_eigenvalue': None, 'alphas': _alphas(hot_op=e)} for e in (1, 2)]
    runs.append_jsonl(log, records[0])
    runs.append_jsonl(log, records[1:])
    events.close(workdir)
    tb = os.path.join(workdir, events.TB_DIR)
    series = events.scalar_series(tb)
    for r in records:
        e = r['epoch']
        assert series['train_loss'][e] == pytest.approx(r['train_loss'], rel=1e-6)
        assert series['derived_val_acc'][e] == pytest.approx(r['derived_val_acc'], rel=1e-6)
        assert series['step'][e] == r['step']
        assert series['per_seed_acc/1'][e] == pytest.approx(r['per_seed_acc'][1], rel=1e-6)
        assert series['cost/genotype_cost'][e] == pytest.approx(r['cost']['genotype_cost'], rel=1e-6)
    # strings, booleans, None and the step itself are not scalars
    assert not {'genotype', 'converged', 'hessian_eigenvalue', 'epoch'} & set(series)
    images = _images(tb)
    assert set(images) == {(f'alphas/{c}', e) for c in ('normal', 'reduce') for e in (1, 2)}
    viridis = matplotlib.colormaps['viridis']
    for e in (1, 2):
        img = images[('alphas/normal', e)]
        assert img.shape == (14 * events._PIXELS, 8 * events._PIXELS, 3)   # edges x ops
        px = lambda edge, op: img[edge * events._PIXELS + 5, op * events._PIXELS + 5].astype(int)
        hot = (np.array(viridis(1.0)[:3]) * 255).round()
        cold = (np.array(viridis(0.0)[:3]) * 255).round()
        assert np.abs(px(0, e) - hot).max() <= 2 and np.abs(px(0, (e + 1) % 8) - cold).max() <= 2
        assert not np.array_equal(px(0, e), px(1, e))
    texts = [v.tensor.string_val[0].decode() for ev in events.read_events(tb) for v in ev.summary.value
             if v.tag.startswith('alphas/ops')]
    assert len(texts) == 1 and 'skip_connect' in texts[0] and 'sep_conv_3x3' in texts[0]


def test_resumed_run_replaces_its_rewritten_epochs(tmp_path):
    workdir = _run_dir(tmp_path)
    log = os.path.join(workdir, 'log.jsonl')
    runs.append_jsonl(log, [{'epoch': 1, 'acc': 0.1}, {'epoch': 2, 'acc': 0.2}, {'epoch': 3, 'acc': 0.3}])
    events.close()                       # the process dies; its checkpoint was of epoch 1
    runs.truncate_jsonl(log, 'epoch', 1)
    runs.append_jsonl(log, [{'epoch': 2, 'acc': 0.25}])
    events.close()
    tb = os.path.join(workdir, events.TB_DIR)
    assert len(os.listdir(tb)) == 2      # one event file per process, never shared
    assert events.scalar_series(tb)['acc'] == pytest.approx({1: 0.1, 2: 0.25})   # epoch 3 purged, 2 rewritten
    starts = [e.step for e in events.read_events(tb) if e.HasField('session_log')]
    assert starts == [1, 2]
    # the same process resuming again (a retried trial): step 2 rewritten in its own file
    runs.truncate_jsonl(log, 'epoch', 1)
    runs.append_jsonl(log, [{'epoch': 2, 'acc': 0.5}, {'epoch': 3, 'acc': 0.75}])
    runs.truncate_jsonl(log, 'epoch', 2)
    runs.append_jsonl(log, [{'epoch': 3, 'acc': 0.7}])
    events.close()
    assert events.scalar_series(tb)['acc'] == pytest.approx({1: 0.1, 2: 0.5, 3: 0.7})


def test_no_events_outside_a_run_or_when_turned_off(tmp_path, monkeypatch):
    plain = tmp_path / 'plain'
    plain.mkdir()
    runs.append_jsonl(str(plain / 'log.jsonl'), {'epoch': 1, 'acc': 0.5})   # no run.json: not a run
    assert os.listdir(plain) == ['log.jsonl']
    other = _run_dir(tmp_path / 'run')
    runs.append_jsonl(os.path.join(other, 'history.jsonl'), {'epoch': 1, 'acc': 0.5})   # not the per-epoch log
    monkeypatch.setenv('JAXNAS_TENSORBOARD', '0')
    runs.append_jsonl(os.path.join(other, 'log.jsonl'), {'epoch': 1, 'acc': 0.5})
    assert not os.path.exists(os.path.join(other, events.TB_DIR))


def test_tensorboard_reads_the_events(tmp_path):
    accumulator = pytest.importorskip('tensorboard.backend.event_processing.event_accumulator')
    workdir = _run_dir(tmp_path)
    runs.append_jsonl(os.path.join(workdir, 'log.jsonl'), [{'epoch': 1, 'acc': 0.5, 'alphas': _alphas(0)}])
    events.close(workdir)
    acc = accumulator.EventAccumulator(os.path.join(workdir, events.TB_DIR))
    acc.Reload()
    assert [s.value for s in acc.Scalars('acc')] == [0.5]
    assert 'alphas/normal' in acc.Tags()['images']
