"""The comparison report of ``jaxnas run``: NAS-derived network vs the hand-designed one.

The seed paper (Mondal & Patil, IJRAET 13(1), 2024, Fig. 3) compares NAS-optimised and
manually designed models on accuracy, precision, recall and F1 and on computational
efficiency. This module writes the same comparison from measured runs, whatever it shows:

- ``report.json``: per model, the mean and standard deviation over seeds of every score,
  the per-seed scores and the cost of the compiled forward pass;
- ``report.md``: a Markdown table (accuracy, precision, recall, F1 as mean +- std over
  seeds; parameters, multiply-adds, latency, peak memory; one column per cost model of
  ``cost.report_models``: the genotype's search-network cost from the cost table,
  :func:`jaxnas.cost_report.genotype_costs`, empty for the manual network, which is not a
  genotype), the genotype and the timings;
- ``comparison.png``: bar chart NAS vs manual (classification metrics with std error bars,
  and the cost ratios NAS / manual);
- ``cell_normal.png`` / ``cell_reduce.png``: drawings of the derived cells.

With random architectures of the same space (``pipeline.random_archs`` > 0), each trained
exactly as the NAS cell, the report adds their row (mean ± std over the architectures and
seeds together), one row per architecture, and the NAS cell's rank among them by mean
test accuracy -- the check that a search beats sampling from its space (Li & Talwalkar,
UAI 2019, "Random search and reproducibility for NAS"; Yu et al., ICLR 2020, "Evaluating
the search phase of neural architecture search").
"""
from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np

from jaxnas import runs, spaces

CLASSIFICATION = ('accuracy', 'precision', 'recall', 'f1')
COST = (('params', 'Params'), ('macs_per_example', 'MACs / example'),
        ('latency_ms_median', 'Latency (ms)'), ('memory_peak_bytes', 'Peak memory (bytes)'))


def summarize(summary: dict) -> dict:
    """Mean / std over seeds of the classification scores, and the cost, of one model."""
    scores = summary['scores']
    out = {'description': summary.get('description', {}), 'seeds': [s['seed'] for s in scores],
           'num_seeds': len(scores), 'eval_split': summary.get('eval_split'),
           'num_eval_examples': scores[0]['num_examples'] if scores else 0}
    for k in CLASSIFICATION:
        values = np.asarray([s[k] for s in scores], np.float64)
        out[k] = {'mean': float(values.mean()), 'std': float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                  'values': values.tolist()}
    cost = summary.get('cost', {})
    out['cost'] = cost
    if 'genotype_cost' in summary:
        out['genotype_cost'] = summary['genotype_cost']
    for key in ('step_compile_s', 'step_time_s_median', 'train_wall_time_s_this_call', 'epochs', 'batch_size',
                'seeds_trained_together'):
        out[key] = summary.get(key)
    return out


def summarize_random(candidates: list) -> dict:
    """The random architectures ``[(genotype, summary), ...]`` as one row: every score's mean
    and sample std over all (architecture, seed) pairs; each cost field the mean over the
    architectures."""
    summaries = [s for _, s in candidates]
    first = summaries[0]
    out = summarize({'description': {'model': 'random', 'archs': len(summaries)},
                     'scores': [x for s in summaries for x in s['scores']], 'eval_split': first.get('eval_split')})
    out['seeds'] = [x['seed'] for x in first['scores']]
    out['num_seeds'] = len(out['seeds'])
    out['num_archs'] = len(summaries)
    cost = dict(first.get('cost', {}))
    for k, v in cost.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            cost[k] = float(np.mean([s['cost'][k] for s in summaries]))
    out['cost'] = cost
    if all('genotype_cost' in s for s in summaries):   # the mean over the architectures
        out['genotype_cost'] = {}
        for name, entry in first['genotype_cost'].items():
            values = [s['genotype_cost'].get(name, {}).get('value') for s in summaries]
            mean = float(np.mean(values)) if all(v is not None for v in values) else None
            out['genotype_cost'][name] = {'value': mean, 'unit': entry.get('unit', '')}
    for key in ('epochs', 'batch_size', 'seeds_trained_together'):
        out[key] = first.get(key)
    return out


def rank_against_random(nas: dict, candidates: list, pooled: dict) -> dict:
    """The NAS cell's rank by mean test accuracy among itself and the random architectures
    (1 = best; a tie counts for the NAS cell), and whether its mean beats the random mean
    (``pooled``: :func:`summarize_random`) by more than the random std."""
    acc = nas['accuracy']['mean']
    margin = acc - pooled['accuracy']['mean']
    return {'nas_rank': 1 + sum(c['accuracy']['mean'] > acc for c in candidates), 'num_ranked': len(candidates) + 1,
            'nas_accuracy_mean': acc, 'random_accuracy_mean': pooled['accuracy']['mean'],
            'random_accuracy_std': pooled['accuracy']['std'], 'margin': margin,
            'beats_random_by_more_than_std': bool(margin > pooled['accuracy']['std'])}


def _pm(stat: dict, scale: float = 100.0) -> str:
    return f"{scale * stat['mean']:.2f} ± {scale * stat['std']:.2f}"


def _num(x, unit: str = '') -> str:
    if x is None:
        return 'n/a'
    for threshold, suffix in ((1e9, 'G'), (1e6, 'M'), (1e3, 'k')):
        if abs(x) >= threshold:
            return f'{x / threshold:.2f}{suffix}{unit}'
    return f'{x:.0f}{unit}' if float(x).is_integer() else f'{x:.3g}{unit}'


def genotype_cost_columns(models: dict) -> list:
    """``[(model, unit), ...]``: the genotype-cost columns of the report table, the cost
    models of the first row that has any (:func:`jaxnas.cost_report.genotype_costs`)."""
    for m in models.values():
        if m.get('genotype_cost'):
            return [(name, e.get('unit', '')) for name, e in m['genotype_cost'].items()]
    return []


def genotype_cost_cells(m: dict, columns: list) -> list:
    """One row's genotype-cost cells: the value, or '—' where the row is not a genotype
    (the manual network) or the model could not cost it."""
    costs = m.get('genotype_cost') or {}
    return [_num(costs[name]['value']) if costs.get(name, {}).get('value') is not None else '—'
            for name, _ in columns]


def markdown(models: dict, *, genotype: str, meta: dict, random: Optional[dict] = None) -> str:
    """The report text; ``models`` maps a row label to :func:`summarize` output (the random
    architectures' row, if any, to :func:`summarize_random`'s), ``random`` is
    ``report.json``'s ``random`` entry."""
    first = next(iter(models.values()))
    n_seeds, n_eval = first['num_seeds'], first['num_eval_examples']
    lat_batch = first['cost'].get('batch_size', 1)
    versus = ' vs random architectures' if random else ''
    columns = genotype_cost_columns(models)
    extra_head = ''.join(f' {name} ({unit}) |' for name, unit in columns)
    lines = [f"# jaxnas run: NAS vs hand-designed network{versus} ({meta.get('data', '')})", '',
             f"Scores on the held-out {first['eval_split']} split ({n_eval} examples), mean ± std over "
             f"{n_seeds} seed(s) (sample std). Cost from the compiled inference forward pass: "
             f"multiply-adds = XLA flops / 2 per example (scans unrolled, elementwise work included), "
             f"latency = median of {first['cost'].get('latency_calls', '?')} calls at batch size {lat_batch} "
             f"on {first['cost'].get('backend', '?')}, peak memory from XLA's buffer assignment at that batch.",
             '',
             '| Model | Accuracy (%) | Precision (%) | Recall (%) | F1 (%) | Params | MACs | '
             f'Latency (ms, batch {lat_batch}) | Peak memory |' + extra_head,
             '|---|---|---|---|---|---|---|---|---|' + '---|' * len(columns)]
    for label, m in models.items():
        c = m['cost']
        lines.append(f"| {label} | {_pm(m['accuracy'])} | {_pm(m['precision'])} | {_pm(m['recall'])} | "
                     f"{_pm(m['f1'])} | {_num(c.get('params'))} | {_num(c.get('macs_per_example'))} | "
                     f"{c.get('latency_ms_median', float('nan')):.3f} | {_num(c.get('memory_peak_bytes'), 'B')} |"
                     + ''.join(f' {v} |' for v in genotype_cost_cells(m, columns)))
    if columns:
        lines += ['', f"Search-network cost ({', '.join(name for name, _ in columns)}; cost.report_models): the "
                  "genotype's cost in the search network (config.model), from the cost table that the search's "
                  "cost term reads (`jaxnas cost` breaks it down per op)" +
                  ('; the random row is the mean over its architectures' if random else '') +
                  '. — marks the manual network, which is not a genotype.']
    lines += ['', '## Per seed (accuracy / macro F1, %)', '', '| Model | ' + ' | '.join(
        f'seed {s}' for s in first['seeds']) + ' |', '|---|' + '---|' * len(first['seeds'])]
    per_arch = [(label, m) for label, m in models.items() if 'num_archs' not in m]
    per_arch += [(c['label'], c) for c in (random or {}).get('candidates', ())]
    for label, m in per_arch:
        lines.append(f'| {label} | ' + ' | '.join(
            f'{100 * a:.2f} / {100 * f:.2f}' for a, f in zip(m['accuracy']['values'], m['f1']['values'])) + ' |')
    if random:
        lines += _random_section(models, random)
    lines += ['', '## Models', '']
    for label, m in models.items():
        d = m['description']
        if 'num_archs' in m:
            lines.append(f"- **{label}**: {m['num_archs']} architectures drawn uniformly by the space's sampler "
                         "(genotypes above), each with the NAS network's evaluation-network width, depth, "
                         "protocol and seeds; cost columns are the mean over the architectures")
            continue
        desc = ', '.join(f'{k}={v}' for k, v in d.items() if k not in ('genotype',))
        lines.append(f"- **{label}**: {desc}; auxiliary-head params (training only, not counted): "
                     f"{m['cost'].get('aux_head_params', 0)}")
    drawings = ' '.join(f'![cell]({name})' for name in meta.get('drawings', ()))
    lines += ['', f'Derived genotype: `{genotype}`', '', drawings, '',
              '![comparison](comparison.png)', '', '## Training and timing', '']
    for label, m in per_arch:
        lines.append(f"- {label}: {m['epochs']} epochs, batch {m['batch_size']}, {m['seeds_trained_together']} "
                     f"seeds in one compiled step; step compile {_secs(m['step_compile_s'])}, "
                     f"steady step {_secs(m['step_time_s_median'])} (all seeds)")
    for k, v in meta.get('timings', {}).items():
        lines.append(f'- stage {k}: {v:.1f} s')
    if meta.get('notes'):
        lines += [''] + [f'Note: {n}' for n in meta['notes']]
    return '\n'.join(lines) + '\n'


def _random_section(models: dict, random: dict) -> list:
    """Markdown lines: the NAS cell against the random architectures, one row each."""
    nas_label = next(iter(models))
    nas = models[nas_label]
    r = random
    verdict = 'yes' if r['beats_random_by_more_than_std'] else 'no'
    lines = ['', '## NAS vs random architectures', '',
             f"{len(r['candidates'])} architectures drawn by the space's sampler (seeded from the config seed), "
             'each trained exactly as the NAS cell (Li & Talwalkar 2019; Yu et al. 2020). '
             f"NAS cell rank by mean test accuracy among NAS and random: **{r['nas_rank']} of {r['num_ranked']}** "
             '(1 = best). NAS accuracy '
             f"{100 * r['nas_accuracy_mean']:.2f}% vs random {100 * r['random_accuracy_mean']:.2f} ± "
             f"{100 * r['random_accuracy_std']:.2f}% (over architectures and seeds): margin "
             f"{100 * r['margin']:+.2f} points; beats the random mean by more than its std: **{verdict}**.", '',
             '| Architecture | Accuracy (%) | F1 (%) | Params | MACs | Genotype |', '|---|---|---|---|---|---|']
    for label, m, g in [(nas_label, nas, None)] + [(c['label'], c, c['genotype']) for c in r['candidates']]:
        lines.append(f"| {label} | {_pm(m['accuracy'])} | {_pm(m['f1'])} | {_num(m['cost'].get('params'))} | "
                     f"{_num(m['cost'].get('macs_per_example'))} | {'(derived, below)' if g is None else f'`{g}`'} |")
    return lines


def _secs(x) -> str:
    return 'n/a' if x is None else f'{x:.3f} s'


def comparison_chart(models: dict, path: str, *, reference: Optional[str] = None,
                     random: Optional[dict] = None) -> None:
    """Grouped bars: classification metrics (mean, std error bars) and cost ratios to
    ``reference`` (default: the last model). With ``random`` (``report.json``'s entry) each
    random architecture's mean is a dot on the random bar, and the title gives the NAS rank."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    labels = list(models)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={'width_ratios': [3, 2]})
    width = 0.8 / len(labels)
    x = np.arange(len(CLASSIFICATION))
    colors = ['tab:blue', 'tab:orange', 'tab:green', 'tab:red']
    for i, label in enumerate(labels):
        m = models[label]
        means = [100 * m[k]['mean'] for k in CLASSIFICATION]
        stds = [100 * m[k]['std'] for k in CLASSIFICATION]
        ax1.bar(x + (i - (len(labels) - 1) / 2) * width, means, width, yerr=stds, capsize=3, label=label,
                color=colors[i % len(colors)])
        if random and label == random['label']:
            for c in random['candidates']:
                ax1.plot(x + (i - (len(labels) - 1) / 2) * width, [100 * c[k]['mean'] for k in CLASSIFICATION],
                         'k.', ms=5, label='one random architecture' if c is random['candidates'][0] else None)
    ax1.set_xticks(x, [k.capitalize() if k != 'f1' else 'F1' for k in CLASSIFICATION])
    lo = min(100 * models[l][k]['mean'] - 100 * models[l][k]['std'] for l in labels for k in CLASSIFICATION)
    ax1.set_ylim(max(0.0, lo - 5), 100.5)
    ax1.set_ylabel('% (mean ± std over seeds' + ('; random: archs x seeds)' if random else ')'))
    ax1.set_title('Classification (held-out split)' + (
        f"; NAS rank {random['nas_rank']}/{random['num_ranked']} vs random" if random else ''))
    ax1.legend(loc='lower right')
    ref = reference or labels[-1]
    x2 = np.arange(len(COST))
    for i, label in enumerate(labels):
        ratios = [(models[label]['cost'].get(k) or np.nan) / (models[ref]['cost'].get(k) or np.nan) for k, _ in COST]
        ax2.bar(x2 + (i - (len(labels) - 1) / 2) * width, ratios, width, label=label, color=colors[i % len(colors)])
    ax2.axhline(1.0, color='k', lw=0.8)
    ax2.set_xticks(x2, [n.split(' (')[0] for _, n in COST], rotation=20)
    ax2.set_ylabel(f'relative to {ref}')
    ax2.set_title('Cost (lower is cheaper)')
    fig.tight_layout()
    runs.save_figure(fig, path, dpi=120)
    plt.close(fig)


def random_entry(nas: dict, random: list) -> tuple:
    """``(label, pooled row, report.json's 'random' entry)`` of the random architectures
    ``[(genotype, summary), ...]`` against the NAS row ``nas`` (:func:`summarize` output)."""
    space = spaces.of_genotype(random[0][0])
    label = f'Random ({space.label}, {len(random)} archs)'
    pooled = summarize_random(random)
    candidates = [{'label': f'Random {k}', 'genotype': str(g), **summarize(s)} for k, (g, s) in enumerate(random, 1)]
    return label, pooled, {'label': label, 'space': space.name, 'candidates': candidates,
                           **rank_against_random(nas, candidates, pooled)}


def write_report(workdir: str, genotype, summaries: dict, meta: Optional[dict] = None, *,
                 random: Optional[list] = None) -> dict:
    """Write report.json / report.md / comparison.png / cell drawings; return report.json's dict.
    ``summaries`` maps a row label to a :func:`jaxnas.retrain.fit` summary, NAS first, the
    cost reference last; ``random`` lists ``(genotype, summary)`` of random architectures."""
    drawn = spaces.of_genotype(genotype).draw(genotype, workdir)
    meta = {**(meta or {}), 'drawings': [os.path.basename(p) for p in drawn]}
    models = {label: summarize(s) for label, s in summaries.items()}
    reference = list(models)[-1]
    report = {'genotype': str(genotype), 'models': models, 'meta': meta}
    rand = None
    if random:
        label, pooled, rand = random_entry(next(iter(models.values())), random)
        models[label] = pooled
        report['random'] = rand
    text = json.dumps(report, indent=2) + '\n'   # fails here, before report.md/.json are written, if not JSON
    comparison_chart(models, os.path.join(workdir, 'comparison.png'), reference=reference, random=rand)
    runs.write_text(os.path.join(workdir, 'report.md'), markdown(models, genotype=str(genotype), meta=meta, random=rand))
    runs.write_text(os.path.join(workdir, 'report.json'), text)  # last: marks the report complete
    return report
