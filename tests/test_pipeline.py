"""`jaxnas run` end to end on the tiny config: outputs, resume-skip, bad inputs, random
architectures beside the NAS cell."""
import json
import os
import shutil

import pytest

from jaxnas import cli, config as config_lib, pipeline, report, spaces

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, 'experiments', 'tiny_pipeline.py')
OUTPUTS = ('report.md', 'report.json', 'comparison.png', 'cell_normal.png', 'cell_reduce.png', 'genotype.txt',
           'timings.json', 'nas/scores_seed0.json', 'nas/scores_seed1.json', 'manual/scores_seed0.json',
           'manual/scores_seed1.json', 'search/genotype.txt', 'random_1/scores_seed0.json',
           'random_2/scores_seed1.json')
RANDOM = 'Random (DARTS cell, 2 archs)'


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
    assert list(rep['models']) == ['NAS (DARTS cell)', 'Manual (ResNet)', RANDOM]
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
    assert f'| {RANDOM} |' in md and '| Random 1 |' in md and '| Random 2 |' in md
    # one column per cost.report_models: the genotype's search-network cost from the cost table, '—' for manual
    from jaxnas import costs
    config = config_lib.load_config(TINY)
    names = list(config.cost.report_models)
    assert names and list(nas['genotype_cost']) == names and 'genotype_cost' not in manual
    genotype = spaces.get(config.space).parse(rep['genotype'])
    lines = md.splitlines()
    first = lines.index(next(line for line in lines if line.startswith('| Model | Accuracy')))
    main = lines[first:lines.index('', first)]   # the main table, up to its blank line
    rows = {line.split('|')[1].strip(): [c.strip() for c in line.split('|')[1:-1]] for line in main}
    header = rows['Model']
    for name in names:
        table = costs.table_for_config(config, name)
        assert nas['genotype_cost'][name] == {'value': table.genotype_cost(genotype), 'unit': table.unit}
        col = header.index(f'{name} ({table.unit})')
        assert rows['Manual (ResNet)'][col] == '—' and rows['NAS (DARTS cell)'][col] not in ('—', '')
        cands = [c['genotype_cost'][name]['value'] for c in rep['random']['candidates']]
        assert rep['models'][RANDOM]['genotype_cost'][name]['value'] == pytest.approx(sum(cands) / len(cands))


def test_random_rows_pool_the_candidates_and_rank_nas(run_dir):
    rep = json.load(open(os.path.join(run_dir, 'report.json')))
    rand, pooled, nas = rep['random'], rep['models'][RANDOM], rep['models']['NAS (DARTS cell)']
    assert rand['label'] == RANDOM and len(rand['candidates']) == 2 and pooled['num_archs'] == 2
    for c in rand['candidates']:
        assert c['seeds'] == [0, 1] and c['cost']['params'] > 0 and len(c['accuracy']['values']) == 2
    for k in report.CLASSIFICATION:  # mean ± std over architectures and seeds together
        values = [v for c in rand['candidates'] for v in c[k]['values']]
        assert pooled[k]['values'] == values and pooled[k]['mean'] == pytest.approx(sum(values) / 4)
    means = [c['accuracy']['mean'] for c in rand['candidates']]
    assert rand['nas_rank'] == 1 + sum(m > nas['accuracy']['mean'] for m in means) and rand['num_ranked'] == 3
    margin = nas['accuracy']['mean'] - pooled['accuracy']['mean']
    assert rand['beats_random_by_more_than_std'] == (margin > pooled['accuracy']['std'])
    md = open(os.path.join(run_dir, 'report.md')).read()
    assert f"**{rand['nas_rank']} of 3**" in md


def test_random_archs_are_distinct_seeded_genotypes_of_the_space(run_dir):
    config = config_lib.load_config(TINY)
    drawn = pipeline.random_genotypes(config)
    rep = json.load(open(os.path.join(run_dir, 'report.json')))
    space = spaces.get('darts')
    assert [c['genotype'] for c in rep['random']['candidates']] == [str(g) for g in drawn]
    assert len({str(g) for g in drawn}) == 2
    for k, g in enumerate(drawn, 1):
        assert space.is_genotype(g) and space.parse(str(g)) == g
        identity = json.load(open(os.path.join(run_dir, f'random_{k}', 'run.json')))
        assert identity['description']['genotype'] == str(g) and identity['seeds'] == [0, 1]
    config.seed = 1
    assert [str(g) for g in pipeline.random_genotypes(config)] != [str(g) for g in drawn]
    for name in ('nb201', 'mbconv'):  # any space: distinct draws of its own genotype type
        config.space, config.pipeline.random_archs = name, 20
        gs = pipeline.random_genotypes(config)
        assert len({str(g) for g in gs}) == 20 and all(spaces.get(name).is_genotype(g) for g in gs)


def test_rank_counts_only_strictly_better_random_archs():
    def row(*acc):
        return {'accuracy': {'mean': sum(acc) / len(acc), 'std': 0.0, 'values': list(acc)}}
    pooled = {'accuracy': {'mean': 0.5, 'std': 0.1}}
    r = report.rank_against_random(row(0.6), [row(0.7), row(0.6), row(0.2)], pooled)
    assert (r['nas_rank'], r['num_ranked']) == (2, 4)
    assert r['beats_random_by_more_than_std'] is False and r['margin'] == pytest.approx(0.1)
    assert report.rank_against_random(row(0.9), [row(0.7)], pooled)['beats_random_by_more_than_std'] is True


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
        (['--workdir', str(tmp_path / 'd'), '--config.pipeline.random_archs=-1'], 'pipeline.random_archs'),
    ]
    for extra, message in cases:
        capsys.readouterr()
        rc = cli.main(['run', '--config', TINY, '--no-progress'] + extra)
        err = capsys.readouterr().err.strip()
        assert rc == 2 and err.startswith('error: ') and len(err.splitlines()) == 1 and message in err, err
    assert open(os.path.join(run_dir, 'report.md')).read() == before
    for d in 'abcd':
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


def test_no_random_archs_keeps_the_nas_vs_manual_report(run_dir, tmp_path):
    workdir = str(tmp_path / 'k0')
    assert cli.main(['run', '--config', TINY, '--workdir', workdir, '--no-progress', '--config.pipeline.random_archs=0',
                     '--genotype', os.path.join(run_dir, 'search')]) == 0
    rep = json.load(open(os.path.join(workdir, 'report.json')))
    assert set(rep) == {'genotype', 'models', 'meta'}
    assert list(rep['models']) == ['NAS (DARTS cell)', 'Manual (ResNet)']
    assert not [n for n in os.listdir(workdir) if n.startswith('random')]
    assert 'random' not in open(os.path.join(workdir, 'report.md')).read().lower()
    with_random = json.load(open(os.path.join(run_dir, 'report.json')))['models']
    for label in rep['models']:  # the random architectures change nothing of the NAS and manual runs
        assert rep['models'][label]['accuracy'] == with_random[label]['accuracy']


def test_rerun_retrains_only_unfinished_random_archs(run_dir):
    """Last: it rewrites the report. An interrupted run (report not written, the second
    random architecture not trained) resumes: the first is read back, not retrained, the
    second is trained again to the same scores."""
    done = [os.path.join(run_dir, 'random_1', n) for n in ('scores.json', 'log.jsonl', 'run.json')]
    before = {p: (os.path.getmtime(p), open(p).read()) for p in done}
    old = json.load(open(os.path.join(run_dir, 'report.json')))
    os.remove(os.path.join(run_dir, 'report.json'))
    shutil.rmtree(os.path.join(run_dir, 'random_2'))
    assert cli.main(['run', '--config', TINY, '--workdir', run_dir, '--no-progress']) == 0
    assert {p: (os.path.getmtime(p), open(p).read()) for p in done} == before
    new = json.load(open(os.path.join(run_dir, 'report.json')))
    assert os.path.exists(os.path.join(run_dir, 'random_2', 'scores.json'))
    assert [c['accuracy'] for c in new['random']['candidates']] == [c['accuracy'] for c in old['random']['candidates']]
    assert new['random']['nas_rank'] == old['random']['nas_rank']
