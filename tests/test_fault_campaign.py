"""The fault campaign's short version (benchmarks/fault_campaign.py): the tiny search, killed
with SIGKILL at a random moment, during a checkpoint save and right after one, then resumed by
rerunning the same command, ends with the same bits as an uninterrupted run."""
import pytest
import importlib.util
import json
import os

from conftest import ROOT


def _campaign():
    path = os.path.join(ROOT, 'benchmarks', 'fault_campaign.py')
    spec = importlib.util.spec_from_file_location('fault_campaign', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_killed_and_resumed_search_is_bit_identical(tmp_path):
    fc = _campaign()
    # The launches compile as the tests do, into the tests' cache.
    env = fc.environment(os.environ['JAXNAS_CACHE_DIR'], fast_compile=True)
    record = fc.run_command('search', kills=3, kills_per_chain=3, seed=0, scratch=str(tmp_path), env=env,
                            argv=['search', '--config', 'experiments/tiny.py'],
                            plan=['random', 'save', 'after_save'], say=lambda line: None)
    assert not record['failures'], record['failures']
    assert record['kills'] == 3 and record['chains'] >= 1 and record['resumes'] >= 3, record
    assert record['kills_during_save'] >= 1, record
    assert record['diffs'] == [] and record['identical'], record['diffs']


def test_comparison_finds_a_changed_result(tmp_path):
    """The comparison is not blind: a changed α, log value or genotype line is reported, wall-clock
    fields and the work directory's path are not."""
    fc = _campaign()
    a, b = tmp_path / 'a', tmp_path / 'b'
    for d in (a, b):
        d.mkdir()
    log = [{'epoch': 1, 'val_acc': 0.5, 'epoch_time_s': 1.0}, {'epoch': 2, 'val_acc': 0.75, 'epoch_time_s': 2.0}]
    (a / 'log.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in log))
    log[1].update(val_acc=0.7500001, epoch_time_s=9.0)
    (b / 'log.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in log))
    (a / 'summary.json').write_text(json.dumps({'workdir': str(a), 'wall_time_s_this_call': 3.0, 'alpha': [0.25],
                                                'timings': {'search': 1.0}}))
    (b / 'summary.json').write_text(json.dumps({'workdir': str(b), 'wall_time_s_this_call': 4.0, 'alpha': [0.5],
                                                'timings': {'search': 2.0}}))
    (a / 'genotype.txt').write_text('Genotype(normal=[1])\n')
    (b / 'genotype.txt').write_text('Genotype(normal=[2])\n')
    (b / '.summary.json.x1.tmp').write_text('{')      # debris of a killed atomic write: not an output
    diffs, _ = fc.compare_dirs(str(a), str(b))
    assert sorted(d.split(':')[0] for d in diffs) == ['genotype.txt', 'log.jsonl', 'summary.json.alpha[0]'], diffs
    assert fc.debris(str(b)) == ['.summary.json.x1.tmp']
    assert fc.compare_dirs(str(a), str(a)) == ([], [])
