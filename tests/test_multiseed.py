"""Seeds in one program (jaxnas.multiseed): each seed's run equals `jaxnas search --config.seed=s`."""
import json
import os

import numpy as np
import pytest

from conftest import make_tiny_config
from jaxnas import config as config_lib, multiseed, runs, search

SEEDS = (0, 1)
TIMING = ('epoch_time_s', 'step_time_s', 'wall_time_s_this_call', 'step_compile_s', 'step_memory_bytes', 'workdir')


def _config(**changes):
    return make_tiny_config(**{'search.epochs': 2, **changes})


def _read(path):
    with open(path) as f:
        return json.load(f)


def _alphas_close(a, b, atol):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(np.asarray(a[k]), np.asarray(b[k]), rtol=0, atol=atol, err_msg=k)


def _untimed(record):
    return {k: v for k, v in record.items() if k not in TIMING}


@pytest.fixture(scope='module')
def singles(tmp_path_factory):
    """The single-seed searches of the seeds, as `jaxnas search --config.seed=s` runs them."""
    root = tmp_path_factory.mktemp('single')
    for s in SEEDS:
        search.run_search(_config(seed=s), str(root / f'seed{s}'), progress=False)
    return root


@pytest.mark.slow
def test_map_equals_single_runs_and_resume(tmp_path, singles):
    """Interrupted after one epoch and resumed, each seed's run equals the uninterrupted
    single-seed run: lax.map runs each seed's computation as the single run does, so the
    same bits (a wrong resume, data order, split or initialisation would differ)."""
    config = _config(**{'search.seeds': SEEDS, 'search.seed_batching': 'map'})
    part = search.run_search(config, str(tmp_path), progress=False, max_epochs=1)
    assert not part['complete'] and part['epochs_done'] == 1 and part['seeds'] == list(SEEDS)
    assert not (tmp_path / 'seed0' / 'alphas.json').exists()
    out = search.run_search(config, str(tmp_path), progress=False)
    assert out['complete'] and _read(tmp_path / 'seeds.json')['runs'].keys() == {str(s) for s in SEEDS}
    for s in SEEDS:
        multi, single = tmp_path / f'seed{s}', singles / f'seed{s}'
        # The seed's directory is the single run's: same claim, same files.
        assert _read(multi / runs.IDENTITY) == _read(single / runs.IDENTITY)
        assert sorted(p for p in os.listdir(single) if p != 'tb') == sorted(p for p in os.listdir(multi) if p != 'tb')
        _alphas_close(_read(multi / 'alphas.json'), _read(single / 'alphas.json'), atol=0)
        assert (multi / 'genotype.txt').read_text() == (single / 'genotype.txt').read_text()
        assert [_untimed(r) for r in runs.read_jsonl(str(multi / 'log.jsonl'))] == \
            [_untimed(r) for r in runs.read_jsonl(str(single / 'log.jsonl'))]
        assert _untimed(_read(multi / 'summary.json')) == _untimed(_read(single / 'summary.json'))
    assert _read(tmp_path / 'seed0' / 'alphas.json') != _read(tmp_path / 'seed1' / 'alphas.json')
    # A seed's directory is claimed by the single-seed command as its own (complete: same result).
    again = search.run_search(_config(seed=1), str(tmp_path / 'seed1'), progress=False)
    assert again['genotype'] == (singles / 'seed1' / 'genotype.txt').read_text().strip()


def test_vmap_matches_single_runs(tmp_path, singles):
    """vmap batches each convolution over the seeds (other reduction shapes): equal within 1e-5."""
    config = _config(**{'search.seeds': SEEDS, 'search.seed_batching': 'vmap'})
    search.run_search(config, str(tmp_path), progress=False, max_epochs=1)
    for s in SEEDS:
        multi = runs.read_jsonl(str(tmp_path / f'seed{s}' / 'log.jsonl'))
        single = runs.read_jsonl(str(singles / f'seed{s}' / 'log.jsonl'))[:1]
        assert len(multi) == 1
        _alphas_close(multi[0]['alphas'], single[0]['alphas'], atol=1e-5)
        assert multi[0]['genotype'] == single[0]['genotype']
        np.testing.assert_allclose(multi[0]['train_loss'], single[0]['train_loss'], rtol=1e-5)


@pytest.mark.parametrize('seeds', [(0, 0), (-1,), ('a',), (True,), (1.5,)])
def test_bad_seeds_one_line_error(tmp_path, seeds):
    config = _config()
    config.search.seeds = seeds
    with pytest.raises(config_lib.ConfigError) as e:
        search.run_search(config, str(tmp_path / 'run'), progress=False)
    assert '\n' not in str(e.value) and 'search.seeds' in str(e.value)
    assert not (tmp_path / 'run').exists()


def test_bad_seed_batching_one_line_error():
    with pytest.raises(config_lib.ConfigError) as e:
        make_tiny_config(**{'search.seed_batching': 'pmap'})
    assert '\n' not in str(e.value) and 'search.seed_batching' in str(e.value)
    config = make_tiny_config(**{'search.seeds': (0, 1)})
    config.search.seed_batching = 'pmap'
    with pytest.raises(config_lib.ConfigError, match='search.seed_batching'):
        multiseed.check_seeds(config)
