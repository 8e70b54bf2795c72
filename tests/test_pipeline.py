"""`jaxnas run` end to end on the tiny config: outputs, resume-skip, bad inputs."""
import json
import os

import pytest

from jaxnas import cli, report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, 'experiments', 'tiny_pipeline.py')
OUTPUTS = ('report.md', 'report.json', 'comparison.png', 'cell_normal.png', 'cell_reduce.png', 'genotype.txt',
           'timings.json', 'nas/scores_seed0.json', 'nas/scores_seed1.json', 'manual/scores_seed0.json',
           'manual/scores_seed1.json', 'search/genotype.txt')


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp('pipeline') / 'run')
    rc = cli.main(['run', '--config', TINY, '--workdir', workdir, '--no-progress'])
    assert rc == 0
    return workdir


def test_run_writes_report(run_dir):
    for name in OUTPUTS:
        assert os.path.exists(os.path.join(run_dir, name)), name
    for name in ('comparison.png', 'cell_normal.png', 'cell_reduce.png'):
        with open(os.path.join(run_dir, name), 'rb') as f:
            assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    rep = json.load(open(os.path.join(run_dir, 'report.json')))
    assert set(rep['models']) == {'NAS (DARTS cell)', 'Manual (ResNet)'}
    nas, manual = rep['models']['NAS (DARTS cell)'], rep['models']['Manual (ResNet)']
    for m in (nas, manual):
        assert m['num_seeds'] == 2 and m['seeds'] == [0, 1]
        for k in report.CLASSIFICATION:
            assert 0 <= m[k]['mean'] <= 1 and m[k]['std'] >= 0 and len(m[k]['values']) == 2
        for k, _ in report.COST:
            assert m['cost'][k] > 0
    assert abs(manual['cost']['params'] - nas['cost']['params']) <= 0.05 * nas['cost']['params']
    assert rep['genotype'] == open(os.path.join(run_dir, 'search', 'genotype.txt')).read().strip()
    md = open(os.path.join(run_dir, 'report.md')).read()
    assert '| NAS (DARTS cell) |' in md and '| Manual (ResNet) |' in md and '±' in md


def test_rerun_skips_finished_stages(run_dir, capsys):
    before = {n: os.path.getmtime(os.path.join(run_dir, n)) for n in OUTPUTS}
    assert cli.main(['run', '--config', TINY, '--workdir', run_dir, '--no-progress']) == 0
    assert {n: os.path.getmtime(os.path.join(run_dir, n)) for n in OUTPUTS} == before


def test_bad_inputs_exit_2_and_overwrite_nothing(run_dir, tmp_path, capsys):
    before = open(os.path.join(run_dir, 'report.md')).read()
    cases = [
        (['--workdir', run_dir, '--config.retrain.epochs=3'], 'different config'),
        (['--workdir', str(tmp_path / 'a'), '--genotype', str(tmp_path / 'missing' / 'search')], 'does not exist'),
        (['--workdir', str(tmp_path / 'b'), '--genotype',
          "Genotype(normal=[('sep_conv_3x3', 0)], normal_concat=[2], reduce=[], reduce_concat=[2])"], 'pairs'),
        (['--workdir', str(tmp_path / 'c'), '--config.pipeline.num_seeds=0'], 'pipeline.num_seeds'),
    ]
    for extra, message in cases:
        capsys.readouterr()
        rc = cli.main(['run', '--config', TINY, '--no-progress'] + extra)
        err = capsys.readouterr().err.strip()
        assert rc == 2 and err.startswith('error: ') and len(err.splitlines()) == 1 and message in err, err
    assert open(os.path.join(run_dir, 'report.md')).read() == before
    for d in 'abc':
        assert not os.path.exists(tmp_path / d)


def test_retrain_cli_from_search_dir(run_dir, tmp_path):
    workdir = str(tmp_path / 'rt')
    rc = cli.main(['retrain', '--config', TINY, '--workdir', workdir, '--no-progress',
                   '--genotype', os.path.join(run_dir, 'search'), '--config.retrain.num_seeds=2'])
    assert rc == 0
    scores = json.load(open(os.path.join(workdir, 'scores.json')))
    nas = json.load(open(os.path.join(run_dir, 'nas', 'scores.json')))
    # same genotype, config and seeds as the pipeline's NAS stage: the same scores
    assert [s['accuracy'] for s in scores['scores']] == [s['accuracy'] for s in nas['scores']]
