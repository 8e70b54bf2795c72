"""The hardware cost of one genotype: ``jaxnas cost`` and the cost columns of the reports.

    jaxnas cost --genotype DARTS_V2 [--model xla --model gpu-h100 ...] [--config FILE] [--json] [--out FILE]

For a genotype of any space (a published name such as ``DARTS_V2`` or ``MOBILENETV2``, a
text form, a NAS-Bench-201 string or index, a ``genotype.json`` / ``.txt`` file or a search
directory), the per-cell, per-edge, per-op rows (:meth:`jaxnas.costs.table.CostTable.breakdown`)
and the total under each requested cost model (:mod:`jaxnas.costs.models`), in the
model's unit. The costs are those of the space's *search network* (``config.model`` at the
data set's input shape, ``cost.batch`` / ``cost.dtype``), from the same table the gradient
search's cost term and the discrete searchers' ``cost`` fitness read; the stem, the
cells' input preprocessing and the classifier are the same for every genotype and are not
counted. The default models are ``cost.report_models`` plus ``cost.model`` if set.

:func:`genotype_costs` gives the totals alone, for ``jaxnas retrain`` and the ``jaxnas run``
report (one column per model of ``cost.report_models``).
"""
from __future__ import annotations

import copy
import json
import os
import sys
from typing import Optional, Sequence

from jaxnas import costs, runs, spaces
from jaxnas.costs import models as cost_models
from jaxnas.errors import JaxnasError, one_line


class CostReportError(JaxnasError):
    """A cost request that cannot be answered (one line)."""


def default_models(config) -> tuple:
    """``cost.report_models`` then ``cost.model`` (if set and not among them)."""
    c = config.get('cost', {})
    names = list(c.get('report_models', ()))
    if c.get('model') and c.get('model') not in names:
        names.append(c.get('model'))
    return tuple(names)


def parse_models(values: Optional[Sequence[str]], config) -> tuple:
    """The models of ``--model`` (repeatable, comma-separated; none: :func:`default_models`),
    checked against the registry."""
    names = [n.strip() for v in (values or ()) for n in str(v).split(',') if n.strip()] or list(default_models(config))
    if not names:
        raise CostReportError('no cost model: pass --model M (e.g. --model xla) or set cost.report_models; choose '
                              f"from {', '.join(cost_models.names())}")
    for n in names:
        cost_models.get(n)   # one-line error naming the registry
    return tuple(dict.fromkeys(names))


def config_for(config, genotype):
    """``config`` with ``space`` set to the genotype's space (its search network is costed)."""
    space = spaces.of_genotype(genotype)
    if space.name == config.space:
        return config, space
    c = copy.deepcopy(config)
    c.space = space.name
    return c, space


def model_report(table, genotype, space) -> dict:
    """One model's part of the report: unit, batch, dtype, the breakdown rows, per-cell
    subtotals and the total (:meth:`~jaxnas.costs.table.CostTable.genotype_cost`)."""
    rows = table.breakdown(genotype, space)
    per_cell = {}
    for r in rows:
        per_cell[r['cell']] = per_cell.get(r['cell'], 0.0) + r['cost']
    return {'unit': table.unit, 'batch': table.batch, 'dtype': table.dtype, 'total': table.genotype_cost(genotype, space),
            'per_cell': per_cell, 'rows': rows}


def genotype_report(config, genotype, models: Sequence[str], *, progress: bool = False) -> dict:
    """The JSON report of ``jaxnas cost``: per model, rows, per-cell subtotals and total."""
    config, space = config_for(config, genotype)
    out = {'genotype': str(genotype), 'space': space.name, 'data': config.data.name,
           'input_shape': list(costs.INPUT_SHAPES[config.data.name]),
           'search_network': {'channels': int(config.model.channels), 'layers': int(config.model.layers)},
           'counted': 'the searchable ops of the search network (stem, cell preprocessing and classifier excluded)',
           'models': {}}
    _placed(lambda: space.one_hot(genotype), space)   # before any table is built
    for name in models:
        table = costs.table_for_config(config, name, progress=progress)
        out['models'][name] = _placed(lambda: model_report(table, genotype, space), space)
    return out


def _placed(fn, space):
    """``fn()``, a genotype that has no place in the search network as a one-line error."""
    from jaxnas.spaces.darts.genotype import GenotypeError
    try:
        return fn()
    except GenotypeError as e:
        raise CostReportError(f'cannot cost this genotype in the {space.name} search network: {e}') from None


def genotype_costs(config, genotype, models: Optional[Sequence[str]] = None) -> dict:
    """``{model: {'value', 'unit'}}``: the genotype's search-network cost under each model
    (default ``cost.report_models``), for the reports. A model that cannot cost it (no
    data for that model, or a genotype with no place in the search network, e.g. a DARTS
    cell of 5 nodes) gives ``value`` ``None`` and its one-line ``error``: a report never
    fails for its cost columns."""
    models = tuple(config.get('cost', {}).get('report_models', ())) if models is None else tuple(models)
    out = {}
    for name in models:
        unit = cost_models.unit(name) if name in cost_models.names() else ''
        try:
            c, space = config_for(config, genotype)
            _placed(lambda: space.one_hot(genotype), space)
            table = costs.table_for_config(c, name)
            value = _placed(lambda: table.genotype_cost(genotype, space), space)
            out[name] = {'value': float(value), 'unit': unit}
        except JaxnasError as e:
            out[name] = {'value': None, 'unit': unit, 'error': one_line(e)}
    return out


def _fmt(x: float) -> str:
    if x == 0:
        return '0'
    if abs(x) >= 1000:
        return f'{x:,.0f}'
    return f'{x:.4g}'


def format_report(report: dict) -> str:
    """The text table: one row per (cell, edge, op, shape) the genotype uses, one cost column
    per model (the row's total: each occurrence times its count), per-cell subtotals and
    totals, and the units."""
    names = list(report['models'])
    first = report['models'][names[0]]
    header = ['cell', 'edge', 'op', 'input', 'c_in', 'c_out', 'stride', 'count'] + names
    key = lambda r: (r['cell'], r['row'], r['op'], tuple(r['input_hw']), r['c_in'], r['c_out'], r['stride'])
    by_model = {n: {key(r): r['cost'] for r in report['models'][n]['rows']} for n in names}
    lines = []
    for r in first['rows']:
        h, w = r['input_hw']
        lines.append([r['cell'], str(r['row']), r['op'], f'{h}x{w}', str(r['c_in']), str(r['c_out']), str(r['stride']),
                      str(r['count'])] + [_fmt(by_model[n].get(key(r), 0.0)) for n in names])
    cells = list(first['per_cell'])
    sub = [[f'{cell} (subtotal)', '', '', '', '', '', '', ''] + [_fmt(report['models'][n]['per_cell'].get(cell, 0.0))
                                                                 for n in names] for cell in cells]
    total = [['total', '', '', '', '', '', '', ''] + [_fmt(report['models'][n]['total']) for n in names]]
    table = [header] + lines + sub + total
    widths = [max(len(row[k]) for row in table) for k in range(len(header))]
    text = lambda row: '  '.join(v.rjust(wd) if k >= 4 else v.ljust(wd) for k, (v, wd) in enumerate(zip(row, widths)))
    n = report['search_network']
    h, w, c = report['input_shape']
    out = [f"genotype ({report['space']}): {report['genotype']}",
           f"search network: channels {n['channels']}, layers {n['layers']}, input {h}x{w}x{c} ({report['data']}); "
           f"counted: {report['counted']}", '',
           text(header), '  '.join('-' * wd for wd in widths)]
    out += [text(r) for r in lines] + ['  '.join('-' * wd for wd in widths)] + [text(r) for r in sub + total]
    out += ['', 'units:'] + [f"  {m}: {report['models'][m]['unit']} (batch {report['models'][m]['batch']}, "
                             f"{report['models'][m]['dtype']}); total {_fmt(report['models'][m]['total'])}"
                             for m in names]
    return '\n'.join(out) + '\n'


def _command(args, overrides) -> int:
    from jaxnas import cli, config as config_lib, retrain
    from jaxnas.search import enable_compilation_cache
    config = cli.load_config(args, overrides)
    config_lib.check_shared(config)
    config_lib.check_cost(config)
    models = parse_models(args.model, config)
    if args.out and os.path.isdir(args.out):
        raise CostReportError(f'--out {args.out} is a directory; pass a file name, e.g. {args.out}/cost.json')
    genotype = retrain.resolve_genotype(args.genotype, config.space)
    enable_compilation_cache()
    report = genotype_report(config, genotype, models, progress=not args.no_progress)
    text = json.dumps(report, indent=2) + '\n'
    if args.out:
        try:
            runs.write_text(args.out, text)
        except OSError as e:
            raise CostReportError(f'cannot write --out {args.out}: {e.strerror or e}') from None
    if args.json and not args.out:
        sys.stdout.write(text)
    else:
        sys.stdout.write(format_report(report))
        if args.out:
            print(f'JSON: {args.out}')
    return 0


def register(subparsers) -> None:
    """``jaxnas cost``: a genotype's per-cell / per-op cost table and totals."""
    from jaxnas import cli
    p = subparsers.add_parser('cost', help="a genotype's hardware cost per cell, edge and op, under each cost model",
                              description="Print a genotype's cost in its space's search network: one row per cell, "
                              'edge and op it uses, and the total, under each cost model (default: '
                              'cost.report_models and cost.model), in the model\'s unit.')
    p.add_argument('--config', default=None, help='config file experiments/FILE.py[:ARG] (default: the default '
                   'config); its space, model, data set and cost section give the search network and shapes')
    cli.add_genotype_option(p, required=True)
    p.add_argument('--model', action='append', default=None, metavar='M',
                   help=f"cost model (repeatable or comma-separated): {', '.join(cost_models.names())}")
    p.add_argument('--json', action='store_true', help='print the machine-readable JSON instead of the table')
    p.add_argument('--out', default=None, metavar='FILE', help='write the JSON to FILE (atomically)')
    p.add_argument('--no-progress', action='store_true', help='no progress bar while ops are costed')
    p.set_defaults(run=_command)
