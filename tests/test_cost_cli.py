"""`jaxnas cost`: a genotype's per-cell / per-edge / per-op cost and total under each cost
model, for every space (published names included); the totals are the cost table's
genotype cost; bad inputs end with one line and exit status 2."""
import json
import os

import numpy as np
import pytest

from conftest import ROOT
from jaxnas import cli, config as config_lib, cost_report, costs, retrain, spaces
from jaxnas.costs import models as cost_models

TINY = os.path.join(ROOT, 'experiments', 'tiny.py')
# (space, genotype spec): the published names of the DARTS and MBConv spaces, a NAS-Bench-201 index
GENOTYPES = [('darts', 'DARTS_V2'), ('nb201', '11'), ('mbconv', 'MOBILENETV2')]
MODELS = ('params', 'xla', 'gpu-a100')
DTYPE = 'float32'   # the GPU roofline's bfloat16 default compiles its ops ~3x slower on this CPU


def _tiny(space):
    c = config_lib.load_config(TINY)
    c.space = space
    c.cost.dtype = DTYPE
    return c


@pytest.mark.parametrize('space, spec', GENOTYPES)
def test_totals_are_the_tables_genotype_cost(space, spec, tmp_path, capsys):
    out = str(tmp_path / 'cost.json')
    rc = cli.main(['cost', '--config', TINY, f'--config.space={space}', f'--config.cost.dtype={DTYPE}', '--genotype',
                   spec, '--no-progress', '--model', 'params,xla', '--model', 'gpu-a100', '--out', out])
    text = capsys.readouterr().out
    assert rc == 0
    report = json.load(open(out))
    genotype = retrain.resolve_genotype(spec, space)
    assert report['space'] == space and report['genotype'] == str(genotype) and list(report['models']) == list(MODELS)
    config = _tiny(space)
    for name in MODELS:
        m = report['models'][name]
        table = costs.table_for_config(config, name)
        assert m['total'] == pytest.approx(table.genotype_cost(genotype), rel=1e-12)
        assert m['unit'] == cost_models.unit(name) == table.unit
        assert sum(r['cost'] for r in m['rows']) == pytest.approx(m['total'], rel=1e-9)
        assert sum(m['per_cell'].values()) == pytest.approx(m['total'], rel=1e-9)
        assert all(r['cost'] == pytest.approx(r['cost_each'] * r['count']) for r in m['rows'])
        assert f"{name}: {m['unit']}" in text      # the units under the table
    assert report['models']['xla']['total'] > 0 and report['models']['gpu-a100']['total'] > 0
    # every op the genotype chooses has a row (none costs nothing and has none)
    ops = {r['op'] for r in report['models']['params']['rows']}
    assert ops == {op for op in _ops(genotype) if op != 'none'}
    assert len([line for line in text.splitlines() if line.startswith('total ')]) == 1

    rc = cli.main(['cost', '--config', TINY, f'--config.space={space}', '--genotype', spec, '--no-progress',
                   '--model', 'params', '--json'])
    printed = json.loads(capsys.readouterr().out)
    assert rc == 0 and printed['models']['params'] == report['models']['params']


def _ops(genotype):
    """The ops a genotype chooses (the DARTS cell's from its own lists, the others' from their mix)."""
    if hasattr(genotype, 'normal'):
        return {op for op, _ in genotype.normal + genotype.reduce}
    space = spaces.of_genotype(genotype)
    mix = space.one_hot(genotype)
    return {space.primitives[o] for cell in mix for o in np.nonzero(np.asarray(mix[cell]))[1]}


def test_default_models_and_report_columns(tiny_config):
    tiny_config.cost.report_models = ('params',)
    tiny_config.cost.model = 'xla'
    assert cost_report.default_models(tiny_config) == ('params', 'xla')
    assert cost_report.parse_models(None, tiny_config) == ('params', 'xla')
    assert cost_report.parse_models(['gpu-h100,params', 'params'], tiny_config) == ('gpu-h100', 'params')
    g = retrain.resolve_genotype('DARTS_V2')
    got = cost_report.genotype_costs(tiny_config, g)
    assert got == {'params': {'value': costs.table_for_config(tiny_config, 'params').genotype_cost(g),
                              'unit': 'parameters'}}
    # a genotype with no place in the search network: an empty cell with its reason, not a failure
    five = cost_report.genotype_costs(tiny_config, retrain.resolve_genotype('NASNet'))
    assert five['params']['value'] is None and 'search network' in five['params']['error']


@pytest.mark.parametrize('args, message', [
    (['--genotype', 'DARTS_V9'], "no search space reads genotype 'DARTS_V9'"),
    (['--genotype', 'DARTS_V2', '--model', 'abacus'], "unknown cost model 'abacus'"),
    (['--genotype', 'NASNet', '--model', 'params'], 'cannot cost this genotype in the darts search network'),
    (['--genotype', 'DARTS_V2', '--model', 'params', '--config.cost.report_models=abacus'], 'cost.report_models'),
    (['--model', 'params'], 'the following arguments are required: --genotype'),
    (['--genotype', 'DARTS_V2', '--model', 'params', '--out', ROOT], 'is a directory'),
])
def test_bad_inputs_one_line_exit_2(args, message, capsys):
    rc = cli.main(['cost', '--config', TINY, '--no-progress'] + args)
    captured = capsys.readouterr()
    assert rc == 2 and captured.err.startswith('error: ') and captured.err.count('\n') == 1
    assert message in captured.err and captured.out == ''


def test_missing_tpu_table_names_its_generator(tmp_path, monkeypatch, capsys):
    from jaxnas.costs import tpu
    monkeypatch.setattr(tpu, 'DATA_DIR', str(tmp_path))
    tpu.load.cache_clear()
    try:
        rc = cli.main(['cost', '--config', TINY, '--no-progress', '--genotype', 'DARTS_V2', '--model', 'tpu-v6e'])
    finally:
        tpu.load.cache_clear()
    err = capsys.readouterr().err
    assert rc == 2 and err.count('\n') == 1 and 'benchmarks/tpu_tables.py' in err and 'v6e' in err
