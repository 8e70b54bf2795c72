"""The commands a space must serve, on the space added through the contract alone (mbconv):
`jaxnas compare` and `jaxnas run` end to end on its tiny digits config (search, retrain
and discrete smoke runs are in tests/test_space_mbconv.py)."""
import pytest
import json
import os

from jaxnas import cli, spaces

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, 'experiments', 'digits_mbconv.py') + ':tiny'


@pytest.mark.slow
def test_compare_on_mbconv(tmp_path):
    workdir = str(tmp_path / 'study')
    rc = cli.main(['compare', '--config', TINY, '--workdir', workdir, '--no-progress',
                   "--config.compare.relaxations=('darts', 'gdas')", '--config.compare.seeds=(0,)',
                   '--config.search.epochs=1'])
    assert rc == 0
    record = json.load(open(os.path.join(workdir, 'compare.json')))
    assert record['space'] == 'mbconv' and set(record['relaxations']) == {'darts', 'gdas'}
    space = spaces.get('mbconv')
    for stats in record['relaxations'].values():
        for text in stats['genotypes'].values():
            assert space.is_genotype(space.parse(text))
    for name in ('compare.md', 'alphas.png'):
        assert os.path.getsize(os.path.join(workdir, name)) > 0


@pytest.mark.slow
def test_run_on_mbconv(tmp_path):
    workdir = str(tmp_path / 'run')
    assert cli.main(['run', '--config', TINY, '--workdir', workdir, '--no-progress',
                     '--config.pipeline.random_archs=1']) == 0   # one random cell: one more compile, not 3
    rep = json.load(open(os.path.join(workdir, 'report.json')))
    space = spaces.get('mbconv')
    label, rand = f'NAS ({space.label})', rep['random']
    assert set(rep['models']) == {label, rand['label'], 'Manual (ResNet)'} and rand['label'].startswith('Random (')
    nas, manual = rep['models'][label], rep['models']['Manual (ResNet)']
    assert abs(manual['cost']['params'] - nas['cost']['params']) <= 0.05 * nas['cost']['params']
    assert space.is_genotype(space.parse(rep['genotype']))
    assert rand['space'] == 'mbconv' and len(rand['candidates']) == 1
    assert space.is_genotype(space.parse(rand['candidates'][0]['genotype']))
    for path in space.draw(space.parse(rep['genotype']), str(tmp_path)):
        assert os.path.basename(path) in os.listdir(workdir)
