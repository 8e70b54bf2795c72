"""Validation of the cost models (issue 10, deliverable 6): the ``measured`` per-op latency
table against whole-network latency, and XLA multiply-adds against published counts.

    python benchmarks/cost_validation.py [--spaces darts,nb201,mbconv] [--genotypes 30]
        [--batch 64] [--calls 20] [--warmup 3] [--rounds 3] [--networks search,eval]
        [--out docs/results/cost_validation.json] [--markdown docs/results/cost_validation.md]
        [--figures docs/results] [--no-latency] [--no-macs] [--nats PATH]

**Latency** (per space, at its digits default config: ``jaxnas.config.get_config()`` with
``space`` set; mbconv: ``experiments/digits_mbconv.py``): the ``measured`` table
(:func:`jaxnas.costs.table_for_config`, the model's batch 64, float32) and ``--genotypes``
distinct random genotypes (``space.sample(jax.random.key(i))``, i = 0, 1, ...). For each,
predicted = ``table.genotype_cost(g)`` (the sum of its ops' latencies) against the
whole network's latency on this device at the same batch and dtype, in two networks:

- ``search``: the search network in ``single_path`` mode applied to the genotype's
  one-hot mix (``apply(variables, x, space.one_hot(g), train=False)``): one compiled
  program for every genotype (the mix is an input). Each edge runs its chosen op in a
  ``lax.switch`` (never under ``vmap``), so only that op runs; checked here by the
  compiled program's ``conditional`` count and by the latency spread between genotypes;
- ``eval``: the evaluation network of the genotype (``space.eval_network``) built at the
  search network's macro (``config.model``'s widths, cells, stages; no auxiliary head):
  the network made of the very op modules the table times (:func:`jaxnas.costs.table.edge_module`
  is the ops' evaluation form), one compile per genotype.

Timing: warm-up, then the median of ``--calls`` calls each ended by ``block_until_ready``
(as :func:`jaxnas.metrics.latency`), repeated ``--rounds`` times over the genotypes in
alternating order (a load change on a shared machine then hits every genotype alike); a
genotype's figure is the median of its round medians. Each call is timed on two clocks
at once: ``wall`` (``perf_counter``: the latency) and ``process`` (``process_time``: this
process's CPU time over all its threads, which other processes' load disturbs far less;
the ``measured`` table is built once per clock, ``$JAXNAS_MEASURED_CLOCK``). Reported per
network and clock: Spearman's rho, Pearson's r, the least-squares correction
``measured ~ a * predicted + b`` and its R^2, the repeatability (rho of the first round
against the others: the noise ceiling of the measurement itself), and
``os.getloadavg()`` before and after each space. Also ``dispatch_us``, the time of a
trivial jitted program (what every op timed alone pays once and a fused network does
not), and rho with that much taken off each op of the genotype.

**Multiply-adds** (``--macs``): the evaluation networks' conv and linear multiply-adds as
XLA counts them (:func:`jaxnas.costs.xla.conv_linear_macs`, padding taps included) against
published counts: NAS-Bench-201 cells (C=16, N=5, 32x32, 10 classes) against the NATS-Bench
records of the benchmark at ``--nats`` (default: the three real records of
``tests/data/nats_bench_fake``) and, for cells with no record there, an analytic count of
the same macro (checked against the records first); DARTS_V2 in the ImageNet mobile
setting (C=48, 14 cells, 224x224, 1000 classes) against the DARTS paper's 574M multiply-adds
and 4.7M parameters (Liu et al., ICLR 2019, Table 3); MBConv reference chains of the
digits macro against an analytic count (no published count exists for that macro).

Writes one JSON (``--out``), a scatter PNG per space and network, and a Markdown summary.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import jaxnas  # noqa: E402,F401  (XLA flags before the first JAX computation)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jaxnas import config as config_lib, costs, runs, spaces  # noqa: E402
from jaxnas.costs import measured  # noqa: E402
from jaxnas.nn import init_variables  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPACES = ('darts', 'nb201', 'mbconv')
NETWORKS = ('search', 'eval')
NUM_CLASSES = 10
NATS_FIXTURE = os.path.join(ROOT, 'tests', 'data', 'nats_bench_fake', 'NATS-tss-v1_0-3ffb9-simple')
LOAD_NOTE = 3.0   # load averages above this are flagged in the report (2 shared cores)


# ----------------------------------------------------------------------------------------
# Configs, genotypes, statistics
# ----------------------------------------------------------------------------------------

def space_config(space: str):
    """The digits default config of ``space`` (mbconv: experiments/digits_mbconv.py)."""
    if space == 'mbconv':
        return config_lib.load_config(os.path.join(ROOT, 'experiments', 'digits_mbconv.py'))
    c = config_lib.get_config()
    c.space = space
    return c


def distinct_genotypes(space, n: int, max_draws: int = 0) -> list:
    """``n`` distinct genotypes ``space.sample(jax.random.key(i))``, i = 0, 1, ..."""
    out, seen = [], set()
    for i in range(max_draws or 100 * n):
        g = space.sample(jax.random.key(i))
        text = space.to_text(g)
        if text not in seen:
            seen.add(text)
            out.append(g)
            if len(out) == n:
                return out
    raise ValueError(f'{space.name}: fewer than {n} distinct genotypes in {max_draws or 100 * n} draws')


def ranks(x) -> np.ndarray:
    """Ranks 1..n, ties given their mean rank."""
    x = np.asarray(x, np.float64)
    order = np.argsort(x, kind='mergesort')
    r = np.empty(len(x), np.float64)
    r[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        tie = x == v
        if tie.sum() > 1:
            r[tie] = r[tie].mean()
    return r


def pearson(x, y) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    dx, dy = x - x.mean(), y - y.mean()
    den = np.sqrt((dx * dx).sum() * (dy * dy).sum())
    return float((dx * dy).sum() / den) if den > 0 else float('nan')


def spearman(x, y) -> float:
    """Spearman's rank correlation (Pearson's r of the ranks); NaN for a constant input."""
    return pearson(ranks(x), ranks(y))


def linear_fit(x, y) -> dict:
    """Least squares ``y ~ a * x + b`` and its R^2."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    a, b = np.polyfit(x, y, 1) if len(x) > 1 and np.ptp(x) > 0 else (0.0, float(np.mean(y)))
    resid = y - (a * x + b)
    ss = ((y - y.mean()) ** 2).sum()
    return {'a': float(a), 'b': float(b), 'r2': float(1 - (resid ** 2).sum() / ss) if ss > 0 else float('nan')}


def agreement(predicted, measured_us) -> dict:
    return {'spearman': spearman(predicted, measured_us), 'pearson': pearson(predicted, measured_us),
            'fit': linear_fit(predicted, measured_us)}


def load() -> list:
    return [round(v, 2) for v in os.getloadavg()]


# ----------------------------------------------------------------------------------------
# Whole-network latency
# ----------------------------------------------------------------------------------------

CLOCKS = ('wall', 'process')


def timed_calls(run, *, n: int, warmup: int) -> dict:
    """Median microseconds of ``n`` calls of ``run()`` after ``warmup``, each ended by
    ``block_until_ready``, on both clocks at once: wall (``perf_counter``, the latency) and
    this process's CPU time (``process_time``, all threads; robust to other processes)."""
    for _ in range(warmup):
        jax.block_until_ready(run())
    wall, cpu = [], []
    for _ in range(n):
        w0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(run())
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return {'wall': float(np.median(wall) * 1e6), 'process': float(np.median(cpu) * 1e6)}


def interleaved_latency(calls: list, *, n: int, warmup: int, rounds: int) -> dict:
    """Per clock: microseconds of each ``call()`` (a thunk), the median over ``rounds`` of
    its median of ``n`` timed calls after ``warmup``, the rounds visiting the calls in
    alternating order; and each round's figures (``rounds_<clock>``)."""
    per = {c: [[None] * len(calls) for _ in range(rounds)] for c in CLOCKS}
    for r in range(rounds):
        order = range(len(calls)) if r % 2 == 0 else reversed(range(len(calls)))
        for i in order:
            t = timed_calls(calls[i], n=n, warmup=warmup)
            for c in CLOCKS:
                per[c][r][i] = t[c]
    out = {c: [float(np.median([per[c][r][i] for r in range(rounds)])) for i in range(len(calls))] for c in CLOCKS}
    out.update({f'rounds_{c}': per[c] for c in CLOCKS})
    return out


def dispatch_us(x, *, n: int = 200, warmup: int = 10) -> float:
    """Latency of a jitted program that does (almost) nothing with ``x``: the per-call
    cost every op timed alone pays and an op inside a network does not."""
    fn = jax.jit(lambda x: x[(0,) * x.ndim]).lower(x).compile()
    return timed_calls(lambda: fn(x), n=n, warmup=warmup)


def search_network_latencies(space, config, genotypes, x, *, n: int, warmup: int, rounds: int) -> dict:
    """Latency of the single-path search network applied to each genotype's one-hot mix:
    one compiled program, the mix an input."""
    net = space.search_network(config.model, NUM_CLASSES, mode='single_path')
    mixes = [jax.tree.map(jnp.asarray, space.one_hot(g)) for g in genotypes]
    variables = init_variables(net, 0, x[:2], mixes[0], train=False)
    t0 = time.perf_counter()
    fn = jax.jit(lambda v, x, m: net.apply(v, x, m, train=False)).lower(variables, x, mixes[0]).compile()
    compile_s = time.perf_counter() - t0
    hlo = fn.as_text()
    lat = interleaved_latency([functools.partial(fn, variables, x, m) for m in mixes], n=n, warmup=warmup,
                              rounds=rounds)
    return {'latency': lat, 'compile_s': compile_s, 'hlo_conditionals': hlo.count(' conditional('),
            'hlo_whiles': hlo.count(' while(')}


def eval_config(config):
    """``config.retrain`` with the search network's macro (``config.model``), no auxiliary
    head: the evaluation network of a genotype at the shapes the table costs."""
    r = config.retrain.copy_and_resolve_references()
    m = config.model
    with r.unlocked():
        r.channels, r.layers, r.cells_per_stage = m.channels, m.layers, m.cells_per_stage
        r.mbconv = m.mbconv.copy_and_resolve_references()
        r.auxiliary_weight = 0.0
    return r


def eval_network_latencies(space, config, genotypes, x, *, n: int, warmup: int, rounds: int) -> dict:
    """Latency of each genotype's evaluation network at the search network's macro (one
    compile each; all kept, so the rounds interleave as for the search network)."""
    r = eval_config(config)
    calls, compile_s = [], 0.0
    for g in genotypes:
        net = space.eval_network(g, r, NUM_CLASSES)
        v = init_variables(net, 0, x[:2], train=False)
        args = (v['params'], v.get('batch_stats', {}), x)

        def predict(params, batch_stats, x, net=net):
            return net.apply({'params': params, 'batch_stats': batch_stats}, x, train=False)[0]
        t0 = time.perf_counter()
        fn = jax.jit(predict).lower(*args).compile()
        compile_s += time.perf_counter() - t0
        calls.append(functools.partial(fn, *args))
    return {'latency': interleaved_latency(calls, n=n, warmup=warmup, rounds=rounds), 'compile_s': compile_s}


NETWORK_LATENCIES = {'search': search_network_latencies, 'eval': eval_network_latencies}


def costed_ops(table, space, genotype) -> int:
    """Op occurrences of ``genotype`` the table costs (each timed alone, paying one dispatch)."""
    return int(sum(row['count'] for row in table.breakdown(genotype, space)))


def validate_space(space_name: str, config=None, *, n_genotypes: int = 30, batch: int = 0, calls: int = 20,
                   warmup: int = 3, rounds: int = 3, networks=NETWORKS, clocks=CLOCKS,
                   progress: bool = False) -> dict:
    """The ``measured`` table of ``space_name`` against whole-network latency (module
    docstring); ``batch`` 0 is the model's default."""
    t_start = time.perf_counter()
    space = spaces.get(space_name)
    config = space_config(space_name) if config is None else config
    with config.unlocked():
        config.space = space_name
        config.cost.batch = int(batch)
    load_before = load()
    tables, table_s, cache_files = {}, {}, {}
    saved = os.environ.get('JAXNAS_MEASURED_CLOCK')
    try:
        for c in clocks:   # one table per clock (its own cache file)
            os.environ['JAXNAS_MEASURED_CLOCK'] = c
            t0 = time.perf_counter()
            tables[c] = costs.table_for_config(config, 'measured', progress=progress)
            table_s[c] = time.perf_counter() - t0
            cache_files[c] = measured.cache_path()
    finally:
        if saved is None:
            os.environ.pop('JAXNAS_MEASURED_CLOCK', None)
        else:
            os.environ['JAXNAS_MEASURED_CLOCK'] = saved
    table = tables[clocks[0]]
    genotypes = distinct_genotypes(space, n_genotypes)
    predicted = {c: [tables[c].genotype_cost(g, space) for g in genotypes] for c in clocks}
    n_ops = [costed_ops(table, space, g) for g in genotypes]
    x = jax.random.normal(jax.random.key(0), (table.batch,) + tuple(table.input_shape), jnp.float32)
    x = x.astype(jnp.dtype(table.dtype))
    overhead = dispatch_us(x)
    out = {
        'space': space_name, 'model': dict(config.model.to_dict()), 'input_shape': list(table.input_shape),
        'batch': table.batch, 'dtype': table.dtype, 'calls': calls, 'warmup': warmup, 'rounds': rounds,
        'clocks': list(clocks),
        'table_entries': len({(r[3], r[2].input_hw, r[2].c_in, r[2].c_out, r[2].stride) for r in table.rows}),
        'table_build_s': table_s, 'table_calls_warmup_rounds': list(measured.settings()),
        'table_cache': cache_files, 'dispatch_us': overhead, 'load_before': load_before,
        'genotypes': [{'genotype': space.to_text(g), 'costed_ops': k,
                       **{f'predicted_{c}_us': predicted[c][i] for c in clocks}}
                      for i, (g, k) in enumerate(zip(genotypes, n_ops))],
        'networks': {},
    }
    for name in networks:
        res = NETWORK_LATENCIES[name](space, config, genotypes, x, n=calls, warmup=warmup, rounds=rounds)
        lat = res.pop('latency')
        summary = dict(res)
        for c in clocks:
            for row, v in zip(out['genotypes'], lat[c]):
                row[f'{name}_{c}_us'] = v
            per_round = lat[f'rounds_{c}']
            corrected = [p - overhead[c] * k for p, k in zip(predicted[c], n_ops)]
            summary[c] = {**agreement(predicted[c], lat[c]), 'dispatch_corrected': agreement(corrected, lat[c]),
                          'spread': float(max(lat[c]) / min(lat[c])),
                          # the measurement's own noise ceiling: its rounds against each other
                          'repeatability_spearman': (float(np.mean([spearman(per_round[0], per_round[r])
                                                                    for r in range(1, len(per_round))]))
                                                     if len(per_round) > 1 else None)}
        out['networks'][name] = summary
    out['load_after'] = load()
    out['loaded'] = max(load_before + out['load_after']) > LOAD_NOTE
    out['runtime_s'] = time.perf_counter() - t_start
    return out


def plot_space(result: dict, network: str, path: str) -> None:
    """Predicted (table sum) against measured whole-network time, one panel per clock,
    with the fit line."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = result['genotypes']
    clocks = result['clocks']
    fig, axes = plt.subplots(1, len(clocks), figsize=(4.6 * len(clocks), 4.0), squeeze=False)
    for ax, c in zip(axes[0], clocks):
        x = np.array([r[f'predicted_{c}_us'] for r in rows]) / 1e3
        y = np.array([r[f'{network}_{c}_us'] for r in rows]) / 1e3
        s = result['networks'][network][c]
        f = s['fit']
        ax.scatter(x, y, s=16, color='tab:blue', label=f'{len(rows)} random genotypes')
        xs = np.linspace(x.min(), x.max(), 2)
        ax.plot(xs, f['a'] * xs + f['b'] / 1e3, color='tab:red',
                label=f"{f['a']:.2f} x + {f['b'] / 1e3:.2f} ms (R$^2$ {f['r2']:.2f})")
        what = 'latency' if c == 'wall' else 'process CPU time'
        ax.set_xlabel(f'predicted: sum of per-op {what} (ms)')
        ax.set_ylabel(f'measured: {network} network {what} (ms)')
        ax.set_title(f"{result['space']}, {network} network, {c} clock: $\\rho$ = {s['spearman']:.3f}", fontsize=9)
        ax.legend(fontsize=8, loc='upper left')
        ax.grid(alpha=0.3)
    fig.tight_layout()
    runs.save_figure(fig, path, dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------------------
# Multiply-adds against published counts
# ----------------------------------------------------------------------------------------

def nb201_analytic_macs(genotype, C: int = 16, N: int = 5, image: int = 32, num_classes: int = 10,
                        in_channels: int = 3) -> int:
    """NAS-Bench-201 evaluation network's conv + linear multiply-adds by hand (padding taps
    counted): stem 3x3; per stage ``N`` cells whose conv edges cost ``k*k*C*C*H*W``;
    residual blocks (3x3 stride 2, 3x3, 1x1 shortcut after a 2x2 average pool); classifier."""
    ops = tuple(spaces.get('nb201').parse(genotype))   # the 6 edges' op names
    per_edge = {'nor_conv_3x3': 9, 'nor_conv_1x1': 1}
    total = 9 * in_channels * C * image * image
    c, h = C, image
    for stage in range(3):
        if stage:
            c, h = 2 * c, h // 2
            total += 9 * (c // 2) * c * h * h + 9 * c * c * h * h + (c // 2) * c * h * h
        total += N * sum(per_edge.get(op, 0) for op in ops) * c * c * h * h
    return total + c * num_classes + num_classes


def nb201_rows(nats_path: str = NATS_FIXTURE) -> list:
    """NB201 cells at C=16, N=5, 32x32, 10 classes: ours (``cost_info``) against the
    NATS-Bench record where the benchmark has one, else against the analytic count."""
    from jaxnas.spaces.nb201 import network as nb201_net, tabular
    space = spaces.get('nb201')
    bench = None
    try:
        bench = tabular.open_benchmark(nats_path)
    except Exception as e:  # noqa: BLE001 -- no API or no file: analytic counts only
        print(f'NATS-Bench not available ({e}); analytic counts only', file=sys.stderr)
    cells = {}
    if bench is not None:
        for index in _recorded_indices(bench):
            cells[f'NATS #{index}'] = bench.api.arch(index)
    cells['all nor_conv_3x3'] = '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|'
    cells['all skip_connect'] = '|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|'
    rows = []
    for label, arch in cells.items():
        g = space.parse(arch)
        info = nb201_net.cost_info(g, NUM_CLASSES, 32)
        row = {'network': 'NB201 C=16 N=5 32x32 10 cl.', 'genotype': label, 'arch': arch,
               'macs': info['macs'], 'xla_conv_macs_no_padding': info['xla_conv_macs'], 'params': info['params'],
               'analytic_macs': nb201_analytic_macs(g)}
        record = None
        if bench is not None:
            try:
                record = bench.query(g, 'cifar10')
            except Exception:  # noqa: BLE001 -- the fixture holds three records only
                record = None
        if record is not None:
            row.update(published_macs=round(record['flops'] * 1e6), published_params=round(record['params'] * 1e6),
                       source=f"NATS-Bench tss record (cifar10 'flops', 'params'), {os.path.relpath(nats_path, ROOT)}")
        else:
            row.update(published_macs=None, published_params=None,
                       source='no record in the benchmark at hand; compared with the analytic count')
        rows.append(row)
    return rows


def _recorded_indices(bench) -> list:
    folder = bench.path
    if not os.path.isdir(folder):
        return []
    return sorted(int(f.split('.')[0]) for f in os.listdir(folder) if f[0].isdigit() and f.endswith('.pickle.pbz2'))


def darts_rows() -> list:
    """DARTS_V2 in the ImageNet mobile setting against the DARTS paper."""
    from jaxnas.spaces.darts import evalnet
    from jaxnas.spaces import darts
    net = evalnet.make_network(darts.PUBLISHED['DARTS_V2'], network='imagenet', C=48, num_classes=1000, layers=14,
                               auxiliary=False)
    shape = (224, 224, 3)
    v = costs.variable_shapes(net, shape)
    x = jax.ShapeDtypeStruct((1,) + shape, jnp.float32)

    def forward(params, batch_stats, x):
        return net.apply({'params': params, 'batch_stats': batch_stats}, x, train=False)[0]
    args = (v['params'], v.get('batch_stats', {}), x)
    macs = costs.conv_linear_macs(forward, *args)
    no_pad = costs.conv_linear_macs(forward, *args, count_padding=False)
    params = costs.param_counts(net, shape)['network']
    return [{'network': 'DARTS ImageNet mobile C=48 14 cells 224x224 1000 cl.', 'genotype': 'DARTS_V2',
             'macs': round(macs), 'xla_conv_macs_no_padding': round(no_pad), 'params': params,
             'published_macs': 574_000_000, 'published_params': 4_700_000,
             'source': 'Liu et al., DARTS, ICLR 2019, Table 3: 574M multiply-adds, 4.7M params '
                       '(reference/published.md: "< 600M multiply-adds")'}]


def mbconv_analytic_macs(genotype, macro, image: int = 8, in_channels: int = 1, num_classes: int = 10) -> int:
    """MBConv chain of ``macro`` by hand: stem 3x3, per MBConv layer expand 1x1 + depthwise
    k x k + project 1x1 (identity layers cost nothing), head 1x1, classifier weights."""
    from jaxnas.spaces.mbconv import genotype as G, macro as M
    h = M.out_size(image, macro.stem_stride)
    total = 9 * in_channels * macro.stem_channels * h * h
    c = macro.stem_channels
    for s, stage in enumerate(genotype.stages):
        for i, op in enumerate(stage):
            stride = macro.strides[s] if i == 0 else 1
            c_out = macro.widths[s]
            ho = M.out_size(h, stride)
            spec = G.op_spec(op)
            if spec is not None:
                k, e = spec
                hidden = e * c
                total += c * hidden * h * h + k * k * hidden * ho * ho + hidden * c_out * ho * ho
            c, h = c_out, ho
    total += c * macro.head_channels * h * h
    return total + macro.head_channels * num_classes


def mbconv_rows() -> list:
    """The MBConv reference chains at the digits macro against the analytic count."""
    from jaxnas.spaces.mbconv import macro as M
    space = spaces.get('mbconv')
    config = space_config('mbconv')
    r = config.retrain
    macro = M.from_config(r.mbconv)
    rows = []
    for name, g in space.published.items():
        net = space.eval_network(g, r, NUM_CLASSES)
        v = costs.variable_shapes(net, (8, 8, 1))
        x = jax.ShapeDtypeStruct((1, 8, 8, 1), jnp.float32)

        def forward(params, batch_stats, x, net=net):
            return net.apply({'params': params, 'batch_stats': batch_stats}, x, train=False)[0]
        args = (v['params'], v.get('batch_stats', {}), x)
        rows.append({'network': 'MBConv digits macro 8x8 10 cl.', 'genotype': name, 'arch': space.to_text(g),
                     'macs': round(costs.conv_linear_macs(forward, *args)),
                     'xla_conv_macs_no_padding': round(costs.conv_linear_macs(forward, *args, count_padding=False)),
                     'params': costs.count_params(v['params']), 'analytic_macs': mbconv_analytic_macs(g, macro),
                     'published_macs': None, 'published_params': None,
                     'source': 'no published count for this macro; compared with the analytic count'})
    return rows


def macs_comparison(nats_path: str = NATS_FIXTURE) -> list:
    rows = nb201_rows(nats_path) + darts_rows() + mbconv_rows()
    for row in rows:
        ref = row.get('published_macs') or row.get('analytic_macs')
        row['ratio'] = row['macs'] / ref if ref else None
        row['ratio_vs'] = 'published' if row.get('published_macs') else 'analytic'
    return rows


# ----------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------

def _fmt_m(v) -> str:
    return '' if v is None else f'{v / 1e6:.3f}M'


def markdown(report: dict) -> str:
    lines = ['# Cost-model validation (issue 10, deliverable 6)', '',
             f"Command: `{report['command']}`", '',
             f"jax {report['jax']}, device `{report['device_kind']}`, {report['cpu_count']} CPUs "
             f"({report['machine']}); `uptime` before: `{report.get('uptime_before', '')}`; "
             f"after: `{report.get('uptime_after', '')}`; total {report['runtime_s']:.0f} s.", '']
    lat = report.get('latency', {})
    if lat:
        lines += ['## `measured` table vs whole-network latency', '',
                  'Predicted: `table.genotype_cost(g)`, the sum of the genotype\'s per-op latencies (each op '
                  'alone, jitted, median of timed calls). Measured: the whole network at the same batch '
                  'and dtype (median over rounds of the median of the calls). `search`: the single-path '
                  'search network on the one-hot mix (one program); `eval`: the genotype\'s evaluation '
                  'network at the search macro (one program per genotype). Fit: measured = a * predicted + b.', '',
                  '| space | network | clock | genotypes | Spearman rho | Pearson r | a | b (ms) | R^2 '
                  '| rho, dispatch-corrected | repeatability rho | spread max/min | load before -> after |',
                  '|---|---|---|---|---|---|---|---|---|---|---|---|---|']
        for space, res in lat.items():
            for net, summary in res['networks'].items():
                for c in res['clocks']:
                    s = summary[c]
                    f = s['fit']
                    rep = s['repeatability_spearman']
                    lines.append(f"| {space} | {net} | {c} | {len(res['genotypes'])} | {s['spearman']:.3f} | "
                                 f"{s['pearson']:.3f} | {f['a']:.3f} | {f['b'] / 1e3:.3f} | {f['r2']:.3f} | "
                                 f"{s['dispatch_corrected']['spearman']:.3f} | {'' if rep is None else f'{rep:.3f}'} | "
                                 f"{s['spread']:.2f} | {res['load_before'][0]} -> {res['load_after'][0]}"
                                 f"{' (loaded)' if res['loaded'] else ''} |")
        lines += ['']
        for space, res in lat.items():
            d = ', '.join(f'{c} {v:.1f} us' for c, v in res['dispatch_us'].items())
            tb = ', '.join(f'{c} {v:.0f} s' for c, v in res['table_build_s'].items())
            lines.append(f"- {space}: batch {res['batch']} {res['dtype']}, {res['table_entries']} timed op shapes "
                         f"(tables: {tb}), dispatch of a trivial program: {d}; search network: "
                         f"{res['networks'].get('search', {}).get('hlo_conditionals', '-')} conditionals in the "
                         f"compiled program; {res['runtime_s']:.0f} s.")
            for net in res['networks']:
                lines.append(f"  ![{space} {net}]({report.get('figure_prefix', 'cost_validation')}_{space}_{net}.png)")
        lines += ['']
    rows = report.get('macs')
    if rows:
        lines += ['## XLA multiply-adds vs published counts', '',
                  'Ours: conv + linear multiply-adds of the evaluation network at batch 1 from XLA, each conv '
                  'costed with its padding taps (`jaxnas.costs.conv_linear_macs`; the papers\' '
                  'k*k*Cin*Cout*Ho*Wo/groups); "no padding": as XLA counts the same convs.', '',
                  '| network | genotype | ours | no padding | published | analytic | ours / ref | params | published params | source |',
                  '|---|---|---|---|---|---|---|---|---|---|']
        for r in rows:
            ratio = '' if r['ratio'] is None else f"{r['ratio']:.4f} ({r['ratio_vs']})"
            lines.append(f"| {r['network']} | {r['genotype']} | {_fmt_m(r['macs'])} | {_fmt_m(r['xla_conv_macs_no_padding'])} | "
                         f"{_fmt_m(r.get('published_macs'))} | {_fmt_m(r.get('analytic_macs'))} | {ratio} | "
                         f"{r['params']:,} | {'' if not r.get('published_params') else format(r['published_params'], ',')} | "
                         f"{r['source']} |")
        lines += ['']
    return '\n'.join(lines) + '\n'


def _uptime() -> str:
    try:
        with open('/proc/loadavg') as f:
            return 'load average: ' + ', '.join(f.read().split()[:3])
    except OSError:
        return 'load average: ' + ', '.join(str(v) for v in load())


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--spaces', default=','.join(SPACES))
    p.add_argument('--genotypes', type=int, default=30)
    p.add_argument('--batch', type=int, default=0, help='0: the measured model default (64)')
    p.add_argument('--calls', type=int, default=20)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--networks', default=','.join(NETWORKS))
    p.add_argument('--out', default=os.path.join('docs', 'results', 'cost_validation.json'))
    p.add_argument('--markdown', default=None, help='default: --out with .md')
    p.add_argument('--figures', default=None, help="folder of the PNGs (default: --out's folder)")
    p.add_argument('--no-latency', action='store_true')
    p.add_argument('--no-macs', action='store_true')
    p.add_argument('--nats', default=NATS_FIXTURE, help='a NATS-Bench topology benchmark folder')
    p.add_argument('--progress', action='store_true')
    a = p.parse_args(argv)
    networks = [n for n in a.networks.split(',') if n]
    bad = [n for n in networks if n not in NETWORKS] + [s for s in a.spaces.split(',') if s and s not in SPACES]
    if bad:
        p.error(f"unknown {', '.join(bad)}; networks: {', '.join(NETWORKS)}; spaces: {', '.join(SPACES)}")
    t0 = time.perf_counter()
    d = jax.devices()[0]
    report = {'command': 'python benchmarks/cost_validation.py ' + ' '.join(sys.argv[1:] if argv is None else argv),
              'jax': jax.__version__, 'device_kind': measured.device_kind(), 'platform': d.platform,
              'cpu_count': os.cpu_count(), 'machine': platform.processor() or platform.machine(),
              'xla_flags': os.environ.get('XLA_FLAGS', ''), 'uptime_before': _uptime(), 'latency': {}}
    folder = a.figures or os.path.dirname(a.out) or '.'
    stem = os.path.splitext(os.path.basename(a.out))[0]   # figures: <stem>_<space>_<network>.png
    report['figure_prefix'] = stem
    if not a.no_latency:
        for s in [s for s in a.spaces.split(',') if s]:
            res = validate_space(s, n_genotypes=a.genotypes, batch=a.batch, calls=a.calls, warmup=a.warmup,
                                 rounds=a.rounds, networks=networks, progress=a.progress)
            report['latency'][s] = res
            for net in res['networks']:
                plot_space(res, net, os.path.join(folder, f'{stem}_{s}_{net}.png'))
            print(json.dumps({s: {n: {c: {k: v[c][k] for k in ('spearman', 'fit', 'repeatability_spearman')}
                                      for c in res['clocks']} for n, v in res['networks'].items()},
                              'load': [res['load_before'], res['load_after']]}), flush=True)
    if not a.no_macs:
        report['macs'] = macs_comparison(a.nats)
    report['uptime_after'] = _uptime()
    report['runtime_s'] = time.perf_counter() - t0
    runs.write_json(a.out, report)
    md = a.markdown or os.path.splitext(a.out)[0] + '.md'
    runs.write_text(md, markdown(report))
    return report


if __name__ == '__main__':
    main()
