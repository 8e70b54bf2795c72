"""``jaxnas report``: finished runs and sweeps aggregated into paper tables.

    jaxnas report runs/sweep_digits_sweep --by relaxation.name \\
        --metric derived_val_acc --metric log:derived_val_acc:max --format latex --plot derived_val_acc --out DIR

PATHS are run directories (``run.json``), sweeps (``sweep.jsonl``: their ``done``
trials) and studies whose sub-directories are runs (``jaxnas compare``, ``jaxnas run``).
Each run's config is its ``run.json``; its metrics come from

- ``summary.json`` (``scores.json`` for a retraining): ``--metric KEY``, a dotted path
  for nested values (``cost.genotype_cost``), a list index or ``*`` for every element
  (``scores.*.accuracy``: each seed of a retraining one value);
- ``log.jsonl``: ``--metric log:KEY[:last|max|min|mean|first]`` (default ``last``).

Runs are grouped by config fields (``--by relaxation.name --by optim.a_lr``; also
``kind``, the run's command; by default the fields whose values differ between the runs,
``seed`` and ``name`` apart), and each group's metrics given as mean ± std over its
values (the runs, i.e. seeds; the population std, ``ddof=0``, as ``jaxnas compare``).
Markdown, CSV and LaTeX (booktabs) tables, ``report.json`` with every value and run, and
with ``--plot METRIC`` a PNG: bars with std error bars per group for a summary metric, the
per-epoch curves (mean over the group's runs, ± std band) for a ``log:`` metric.

The table code (:class:`Column`, :func:`markdown`, :func:`csv_text`, :func:`latex`,
:func:`stat`, :func:`mean_std`, :func:`fmt`, :func:`mean_curve`) is also
``jaxnas compare``'s.
"""
from __future__ import annotations

import csv
import difflib
import io
import json
import os
import re
from typing import List, NamedTuple, Optional, Sequence

import numpy as np

from jaxnas import runs as runs_lib
from jaxnas.errors import JaxnasError

FORMATS = ('md', 'csv', 'latex')
REDUCTIONS = ('last', 'max', 'min', 'mean', 'first')
IGNORED_FIELDS = ('seed', 'name')   # never a default grouping field
DEFAULT_METRICS = ('derived_val_acc', 'derived_test_acc', 'best_fitness', 'scores.*.accuracy')


class ReportError(JaxnasError):
    """Paths or options ``jaxnas report`` cannot use (one line)."""


# ----------------------------------------------------------------------------------------
# Statistics and tables (shared with jaxnas compare)
# ----------------------------------------------------------------------------------------

def mean_std(values) -> tuple:
    """``(mean, std)`` of the values that are not None (population std), ``(None, None)`` if none."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return float(np.mean(values)), float(np.std(values))


def stat(values) -> dict:
    """``{'mean', 'std', 'n'}`` of the values not None (:func:`mean_std`)."""
    mean, std = mean_std(values)
    return {'mean': mean, 'std': std, 'n': sum(v is not None for v in values)}


def fmt(s: dict, digits: int = 3) -> str:
    """``'mean ± std'`` with ``digits`` decimals, ``'n/a'`` without values."""
    if s['mean'] is None:
        return 'n/a'
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


class Column(NamedTuple):
    """A table column: ``key`` of the row dicts (and CSV name), ``header`` (Markdown and
    LaTeX); ``digits`` makes it a mean ± std column (CSV: ``key_mean``, ``key_std``)."""
    key: str
    header: str
    digits: Optional[int] = None


def _plain_cell(value) -> str:
    return '' if value is None else str(value)


def markdown(columns: Sequence[Column], rows: Sequence[dict]) -> list:
    """The lines of a Markdown table."""
    lines = ['| ' + ' | '.join(c.header for c in columns) + ' |', '|' + '---|' * len(columns)]
    for row in rows:
        lines.append('| ' + ' | '.join(fmt(row[c.key], c.digits) if c.digits is not None else _plain_cell(row[c.key])
                                       for c in columns) + ' |')
    return lines


def csv_text(columns: Sequence[Column], rows: Sequence[dict]) -> str:
    """The table as CSV: a mean ± std column is two, ``key_mean`` and ``key_std``."""
    out = io.StringIO(newline='')
    w = csv.writer(out)
    w.writerow([name for c in columns for name in ((f'{c.key}_mean', f'{c.key}_std') if c.digits is not None
                                                   else (c.key,))])
    for row in rows:
        w.writerow([v for c in columns for v in ((row[c.key]['mean'], row[c.key]['std']) if c.digits is not None
                                                 else (row[c.key],))])
    return out.getvalue()


_LATEX_SPECIAL = {'\\': r'\textbackslash{}', '&': r'\&', '%': r'\%', '$': r'\$', '#': r'\#', '_': r'\_',
                  '{': r'\{', '}': r'\}', '~': r'\textasciitilde{}', '^': r'\textasciicircum{}'}


def latex_escape(text: str) -> str:
    return ''.join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def latex(columns: Sequence[Column], rows: Sequence[dict], caption: Optional[str] = None) -> str:
    """The table as a LaTeX ``tabular`` with booktabs rules (``\\usepackage{booktabs}``);
    a mean ± std cell is ``$m \\pm s$``, a missing one ``--``."""
    def cell(c, row):
        if c.digits is None:
            return latex_escape(_plain_cell(row[c.key]))
        s = row[c.key]
        return '--' if s['mean'] is None else f"${s['mean']:.{c.digits}f} \\pm {s['std']:.{c.digits}f}$"
    numeric = lambda c: c.digits is not None or all(
        isinstance(row[c.key], (int, float)) and not isinstance(row[c.key], bool) for row in rows)
    spec = ''.join('r' if numeric(c) else 'l' for c in columns)
    lines = ['\\begin{table}[t]', '\\centering'] if caption else []
    lines += [f'\\begin{{tabular}}{{{spec}}}', '\\toprule', ' & '.join(latex_escape(c.header) for c in columns) + r' \\',
              '\\midrule']
    lines += [' & '.join(cell(c, row) for c in columns) + r' \\' for row in rows]
    lines += ['\\bottomrule', '\\end{tabular}']
    if caption:
        lines += [f'\\caption{{{latex_escape(caption)}}}', '\\end{table}']
    return '\n'.join(lines) + '\n'


def mean_curve(curves: Sequence[Sequence]) -> tuple:
    """``(epochs 1..L, mean, std)`` over curves cut to the shortest length L; points that
    are None or NaN in some curves (e.g. between Hessian estimates) are averaged over the
    others, NaN where none has one, without a RuntimeWarning."""
    length = min(len(c) for c in curves) if curves else 0
    values = np.array([[np.nan if v is None else v for v in c[:length]] for c in curves], dtype=float)
    values = values.reshape(len(curves), length)
    finite = np.isfinite(values)
    seen = finite.sum(axis=0)
    safe = np.where(finite, values, 0.0)
    mean = np.where(seen > 0, safe.sum(axis=0) / np.maximum(seen, 1), np.nan)
    var = np.where(seen > 0, (np.where(finite, values - mean, 0.0) ** 2).sum(axis=0) / np.maximum(seen, 1), np.nan)
    return np.arange(1, length + 1), mean, np.sqrt(var)


# ----------------------------------------------------------------------------------------
# Runs
# ----------------------------------------------------------------------------------------

class Run(NamedTuple):
    """A finished run directory: its path, kind, flattened config and summary."""
    path: str
    kind: str
    config: dict
    summary: dict

    def log(self) -> list:
        return runs_lib.read_jsonl(os.path.join(self.path, runs_lib.rundir.LOG))


def flatten(tree, prefix: str = '') -> dict:
    """``{'a': {'b': 1}}`` -> ``{'a.b': 1}`` (lists kept as values)."""
    out = {}
    for k, v in (tree or {}).items():
        key = f'{prefix}{k}'
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + '.'))
        else:
            out[key] = v
    return out


_SKIP_DIRS = ('checkpoints', 'tb', 'logs')


def _is_run(path: str) -> bool:
    return any(os.path.exists(os.path.join(path, f)) for f in ('summary.json', 'scores.json', runs_lib.rundir.LOG))


def _load_run(path: str) -> Run:
    identity = runs_lib.read_json(os.path.join(path, runs_lib.IDENTITY)) or {}
    summary = runs_lib.read_json(os.path.join(path, 'summary.json'))
    if summary is None:
        summary = runs_lib.read_json(os.path.join(path, 'scores.json'), {})
    return Run(path, identity.get('kind', 'unknown'), flatten(identity.get('config')), summary)


def find_runs(paths: Sequence[str]) -> tuple:
    """``(runs, notes)``: the runs under ``paths`` (see the module docstring), and one note
    per thing left out (an unfinished sweep trial). A path that is none of these is a
    :class:`ReportError`."""
    found, notes = [], []

    def visit(path, top):
        if os.path.exists(os.path.join(path, 'sweep.jsonl')):
            from jaxnas import sweep
            for r in sweep.read_index(path):
                trial = os.path.join(path, r['workdir'])
                if r['status'] != 'done':
                    notes.append(f"{trial}: trial {r['status']}" + (f" ({r['error']})" if r.get('error') else '')
                                 + ', left out')
                else:
                    visit(trial, False)
            return
        if _is_run(path):
            found.append(_load_run(path))
            return
        subs = sorted(d for d in os.listdir(path) if d not in _SKIP_DIRS and os.path.isdir(os.path.join(path, d)))
        before = len(found)
        for d in subs:
            sub = os.path.join(path, d)
            if os.path.exists(os.path.join(sub, runs_lib.IDENTITY)) or os.path.exists(os.path.join(sub, 'sweep.jsonl')):
                visit(sub, False)
        if len(found) == before and top:
            raise ReportError(f'{path} holds no finished run (no summary.json or log.jsonl, no sweep.jsonl, no run '
                              'directories inside); pass run or sweep directories')

    for p in paths:
        if not os.path.isdir(p):
            raise ReportError(f'{p} is not a directory; pass run directories, sweeps or studies')
        visit(p, True)
    seen, unique = set(), []
    for r in found:
        key = os.path.realpath(r.path)
        if key not in seen:
            seen.add(key)
            unique.append(r)
    return unique, notes


# ----------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------

class Metric(NamedTuple):
    """A metric spec: ``source`` ``summary`` or ``log``, ``key``, ``reduce`` (log only)."""
    spec: str
    source: str
    key: str
    reduce: Optional[str]


def parse_metric(spec: str) -> Metric:
    if spec.startswith('log:'):
        key, _, reduce = spec[4:].partition(':')
        reduce = reduce or 'last'
        if not key or reduce not in REDUCTIONS:
            raise ReportError(f'bad metric {spec!r}: write log:KEY[:{"|".join(REDUCTIONS)}], e.g. '
                              'log:derived_val_acc:max')
        return Metric(spec, 'log', key, reduce)
    if not spec or spec.startswith('.') or spec.endswith('.') or '..' in spec:
        raise ReportError(f'bad metric {spec!r}: write a summary key (dotted for nested ones, e.g. '
                          'cost.genotype_cost) or log:KEY[:last|max|...]')
    return Metric(spec, 'summary', spec, None)


def _numbers(value) -> list:
    """The numbers in a value: a number, or the numbers of a (nested) list; else []."""
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _numbers(v)]
    return []


def lookup(tree, key: str) -> list:
    """The numbers at dotted path ``key`` of a JSON tree (``*`` expands a list or dict)."""
    nodes = [tree]
    for part in key.split('.'):
        nxt = []
        for node in nodes:
            if part == '*':
                nxt += list(node.values()) if isinstance(node, dict) else list(node) if isinstance(node, list) else []
            elif isinstance(node, dict) and part in node:
                nxt.append(node[part])
            elif isinstance(node, list) and re.fullmatch(r'-?\d+', part) and -len(node) <= int(part) < len(node):
                nxt.append(node[int(part)])
        nodes = nxt
    return [x for node in nodes for x in _numbers(node)]


def _reduce(values: list, how: str) -> Optional[float]:
    values = [v for v in values if np.isfinite(v)]
    if not values:
        return None
    return float({'last': values[-1], 'first': values[0], 'max': max(values), 'min': min(values),
                  'mean': np.mean(values)}[how])


def metric_values(run: Run, metric: Metric, log: Optional[list] = None) -> list:
    """The values of ``metric`` in ``run`` (one per seed in the run; [] if absent)."""
    if metric.source == 'summary':
        return lookup(run.summary, metric.key)
    log = run.log() if log is None else log
    per_record = [lookup(r, metric.key) for r in log]
    per_record = [v for v in per_record if v]
    if not per_record:
        return []
    width = min(len(v) for v in per_record)   # a retraining logs one value per seed
    out = [_reduce([v[i] for v in per_record], metric.reduce) for i in range(width)]
    return [v for v in out if v is not None]


def metric_curves(run: Run, key: str) -> list:
    """The per-epoch curves of log key ``key`` in ``run`` (one per seed)."""
    per_record = [lookup(r, key) for r in run.log()]
    width = min((len(v) for v in per_record if v), default=0)
    return [[v[i] if len(v) > i else None for v in per_record] for i in range(width)]


# ----------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------

def _key_text(value) -> str:
    if isinstance(value, (list, tuple)):
        return ','.join(_key_text(v) for v in value) if value else '()'
    return str(value)


def _sort_key(value):
    return (0, value, '') if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, 0, _key_text(value))


def default_by(run_list: Sequence[Run]) -> list:
    """The config fields that every run has and whose values differ between the runs
    (``seed``/``name`` apart), and ``kind`` when the runs are of several kinds."""
    keys = sorted(set.intersection(*(set(r.config) for r in run_list)))   # fields every run has
    by = [k for k in keys if k not in IGNORED_FIELDS
          and len({json.dumps(r.config.get(k), sort_keys=True) for r in run_list}) > 1]
    if len({r.kind for r in run_list}) > 1:
        by = ['kind'] + by
    return by


def field(run: Run, key: str):
    if key == 'kind':
        return run.kind
    if key == 'path':
        return run.path
    return run.config.get(key)


def build(paths: Sequence[str], by: Optional[Sequence[str]] = None, metrics: Optional[Sequence[str]] = None) -> dict:
    """The report record: runs found, grouped, their metrics' statistics (see the module docstring)."""
    run_list, notes = find_runs(paths)
    if not run_list:
        raise ReportError(f"no finished run under {' '.join(paths)}" + (f' ({notes[0]})' if notes else ''))
    by = list(default_by(run_list) if by is None else by)
    known = set().union(*(r.config for r in run_list)) | {'kind', 'path'}
    for key in by:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
            raise ReportError(f"--by {key}: no run has that config field" + (
                f"; did you mean {', '.join(close)}" if close else '; fields look like relaxation.name, optim.a_lr'))
    if metrics:
        specs = [parse_metric(m) for m in metrics]
    else:
        specs = [parse_metric(m) for m in DEFAULT_METRICS if any(lookup(r.summary, m) for r in run_list)]
        if not specs:
            raise ReportError('none of the default metrics (' + ', '.join(DEFAULT_METRICS) + ') is in these runs; '
                              'name one with --metric KEY or --metric log:KEY')
    logs = {r.path: r.log() for r in run_list} if any(m.source == 'log' for m in specs) else {}
    groups = {}
    for r in run_list:
        key = tuple(json.dumps(field(r, k), sort_keys=True) for k in by)
        groups.setdefault(key, []).append(r)
    out_groups = []
    for key in sorted(groups, key=lambda k: [_sort_key(json.loads(v)) for v in k]):
        members = groups[key]
        values = {m.spec: [v for r in members for v in metric_values(r, m, logs.get(r.path))] for m in specs}
        out_groups.append({'key': {k: json.loads(v) for k, v in zip(by, key)}, 'runs': [r.path for r in members],
                           'seeds': [r.config.get('seed') for r in members],
                           'stats': {m: {**stat(v), 'values': v} for m, v in values.items()}})
    missing = [m.spec for m in specs if all(not g['stats'][m.spec]['n'] for g in out_groups)]
    if missing:
        raise ReportError(f'metric {missing[0]} is in none of the {len(run_list)} runs; summary keys look like '
                          "derived_val_acc or cost.genotype_cost, log metrics like log:train_acc:max")
    return {'by': by, 'metrics': [m.spec for m in specs], 'groups': out_groups, 'runs': len(run_list), 'notes': notes}


def table(record: dict, digits: int = 3) -> tuple:
    """``(columns, rows)`` of a report record: the grouping fields, the run count, one mean ± std per metric."""
    columns = [Column(k, k) for k in record['by']] + [Column('runs', 'runs')]
    columns += [Column(m, m, digits) for m in record['metrics']]
    rows = [{**{k: _key_text(v) for k, v in g['key'].items()}, 'runs': len(g['runs']), **g['stats']}
            for g in record['groups']]
    return columns, rows


def render(record: dict, form: str, digits: int = 3) -> str:
    columns, rows = table(record, digits)
    if form == 'csv':
        return csv_text(columns, rows)
    caption = f"Mean $\\pm$ std over runs (seeds), {record['runs']} runs."
    if form == 'latex':
        return latex(columns, rows).rstrip('\n') + f'\n% {caption}\n'
    lines = [f"# jaxnas report: {record['runs']} runs in {len(rows)} groups", ''] + markdown(columns, rows)
    lines += ['', 'Mean ± std (population, ddof 0) over the values of each group: one per run (seed), one per '
              'seed of a multi-seed retraining. `log:KEY:R` reduces a run\'s logged values with R.']
    lines += [f'- left out: {n}' for n in record['notes']]
    return '\n'.join(lines) + '\n'


def plot(record: dict, run_paths: dict, metric: str, path: str) -> None:
    """The PNG of ``metric`` per group: bars ± std, or for ``log:KEY`` the mean curve ± std per epoch."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    m = parse_metric(metric)
    label = lambda g: ', '.join(f'{k}={_key_text(v)}' for k, v in g['key'].items()) or 'all runs'
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(record['groups']) + 2), 3.4))
    if m.source == 'log':
        for g in record['groups']:
            curves = [c for p in g['runs'] for c in metric_curves(run_paths[p], m.key)]
            if not curves:
                continue
            x, mean, std = mean_curve(curves)
            ax.plot(x, mean, marker='.', label=label(g))
            ax.fill_between(x, mean - std, mean + std, alpha=0.2)
        ax.set_xlabel('epoch')
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_ylabel(m.key)
        ax.legend(fontsize=7)
    else:
        if metric not in record['metrics']:
            raise ReportError(f'--plot {metric}: not one of the table metrics ({", ".join(record["metrics"])}); '
                              'add it with --metric')
        stats = [g['stats'][metric] for g in record['groups']]
        means = [np.nan if s['mean'] is None else s['mean'] for s in stats]
        stds = [0.0 if s['std'] is None else s['std'] for s in stats]
        x = np.arange(len(stats))
        ax.bar(x, means, yerr=stds, capsize=4, color='tab:blue', alpha=0.8)
        ax.set_xticks(x, [label(g) for g in record['groups']], rotation=30, ha='right', fontsize=7)
        ax.set_ylabel(metric)
    ax.set_title(f"{metric}: mean ± std over runs", fontsize=9)
    fig.tight_layout()
    runs_lib.save_figure(fig, path, dpi=110)
    plt.close(fig)


def plot_name(metric: str) -> str:
    return 'report_' + re.sub(r'[^A-Za-z0-9._-]', '_', metric) + '.png'


def write(record: dict, out: str, digits: int = 3, plot_metric: Optional[str] = None) -> List[str]:
    """Write ``report.md/.csv/.tex/.json`` (and the plot) into ``out``; returns the paths."""
    os.makedirs(out, exist_ok=True)
    paths = []
    for form, ext in (('md', 'md'), ('csv', 'csv'), ('latex', 'tex')):
        p = os.path.join(out, f'report.{ext}')
        runs_lib.write_text(p, render(record, form, digits))
        paths.append(p)
    p = os.path.join(out, 'report.json')
    runs_lib.write_json(p, record)
    paths.append(p)
    if plot_metric:
        run_paths = {}
        for g in record['groups']:
            for rp in g['runs']:
                run_paths[rp] = _load_run(rp)
        p = os.path.join(out, plot_name(plot_metric))
        plot(record, run_paths, plot_metric, p)
        paths.append(p)
    return paths


def _command(args, rest) -> int:
    if rest:
        raise ReportError(f'unexpected argument {rest[0]}; jaxnas report takes PATHS and its own options')
    if args.plot and not args.out:
        raise ReportError('--plot needs --out DIR (where the PNG goes)')
    if args.plot:
        parse_metric(args.plot)
    metrics = list(args.metric or [])
    if args.plot and not args.plot.startswith('log:') and metrics and args.plot not in metrics:
        metrics.append(args.plot)
    record = build(args.paths, by=args.by, metrics=metrics or None)
    if args.plot and not args.plot.startswith('log:') and args.plot not in record['metrics']:
        record = build(args.paths, by=args.by, metrics=record['metrics'] + [args.plot])   # the defaults and it
    print(render(record, args.format, args.digits), end='')
    if args.out:
        written = write(record, args.out, args.digits, args.plot)
        print(f"report written: {', '.join(written)}")
    return 0


def register(subparsers) -> None:
    """``jaxnas report``: tables (and a plot) from finished runs and sweeps."""
    p = subparsers.add_parser('report', help='paper tables from finished runs and sweeps',
                              description='Aggregate run directories and sweeps into a table of mean ± std over '
                              'seeds, grouped by config fields, as Markdown, CSV or LaTeX, with an optional plot.')
    p.add_argument('paths', nargs='+', metavar='PATH', help='run directories, sweep directories or studies')
    p.add_argument('--by', action='append', default=None, metavar='FIELD',
                   help='group by this config field (repeatable; default: the fields that differ, seed apart)')
    p.add_argument('--metric', action='append', default=None, metavar='M',
                   help='summary key (dotted; * for every element) or log:KEY[:last|max|min|mean|first] '
                   '(repeatable; default: derived_val_acc, derived_test_acc where present)')
    p.add_argument('--format', choices=FORMATS, default='md', help='what is printed (default md)')
    p.add_argument('--digits', type=int, default=3, help='decimals (default 3)')
    p.add_argument('--plot', default=None, metavar='METRIC', help='also plot this metric per group (needs --out)')
    p.add_argument('--out', default=None, metavar='DIR', help='write report.md/.csv/.tex/.json (and the plot) here')
    p.set_defaults(run=_command)
