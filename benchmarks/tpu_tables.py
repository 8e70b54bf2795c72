"""Generate (and check) the shipped TPU cost tables, jaxnas/costs/data/tpu-<chip>.json.

    pip install -e .[tpu]                                   # libtpu; no TPU needed
    python benchmarks/tpu_tables.py                         # every chip, the default configs
    python benchmarks/tpu_tables.py --chips v5e,v6e --config 'experiments/digits.py --config.model.channels=16'
    python benchmarks/tpu_tables.py --check 20              # regenerate 20 random shipped entries per chip, compare
    python benchmarks/tpu_tables.py --mxu                   # the MXU padding steps (bf16 3x3 convs, C=64..136)

For each chip (``--chips``, default v4, v5e, v5p, v6e) and each experiment config
(``--config``, repeatable: a config file ``path.py[:arg]`` followed by
``--config.FIELD=VALUE`` overrides, quoted as one argument; default
:data:`DEFAULT_CONFIGS`), every op on every edge of the config's search network
(:func:`jaxnas.costs.table.entries` at ``--batch`` 64 examples in ``--dtype`` bfloat16,
the tpu models' defaults) is built alone (:func:`jaxnas.costs.table.edge_module`), its
inference forward compiled for the first device of the chip's topology
(:data:`jaxnas.costs.tpu.TOPOLOGIES`, with ``JAX_PLATFORMS=cpu``) and XLA's
``optimal_seconds`` stored in microseconds under the entry's key. A rerun adds the
entries the table lacks and keeps the others (``--recompute``: compiles every entry
again, the old ones included); a table made with other jax / jaxlib / libtpu versions is
only extended with ``--recompute``, so one table holds one set of versions. Each table
is rewritten atomically every 25 entries and at the end. Prints one JSON summary
(also ``--out``).

``--check N`` regenerates N random entries of each shipped table and reports the largest
relative difference from the shipped values; ``--mxu`` costs a bf16 3x3 convolution
(N=64, 32x32, C->C) and the spaces' 3x3 ops at C = 64, 120, 128, 136 on v5e and v6e.

Measured (jax 0.10.2, libtpu 0.0.42.1, shared 2-core CPU at load average 6-9): the default
run compiles 213 entries per chip in 962 s (mean compile per op: v4 1.07 s, v5e 0.95 s,
v5p 0.88 s, v6e 1.62 s; up to 49 s for a 5x5 separable conv at 32x32 on v6e); ``--check 20``:
largest relative difference 0.0 on every chip (80 entries, 83 s); ``--mxu``, microseconds for
C = 64 / 120 / 128 / 136: lax.conv v5e 92.0 / 129.7 / 141.2 / 200.6, v6e 41.4 / 41.8 / 41.9 /
83.9; nb201 nor_conv_3x3 v5e 137.5 / 175.6 / 187.1 / 292.0, v6e 61.9 / 62.3 / 62.4 / 124.8;
darts sep_conv_3x3 v6e 82.1 / 82.2 / 61.7 / 123.6. XLA gives no estimate (-1) for the MBConv
block at 32x32 with these widths: such an entry is a one-line error.
"""
import argparse
import datetime
import json
import os
import random
import shlex
import sys
import time

os.environ.setdefault('JAX_PLATFORMS', 'cpu')              # compile for TPU, run nothing
os.environ.setdefault('ALLOW_MULTIPLE_LIBTPU_LOAD', '1')   # other jax processes may hold libtpu's lock file
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import jaxnas  # noqa: E402,F401  (XLA flags before the first JAX computation)

from jaxnas import config as config_lib, costs, runs, spaces  # noqa: E402
from jaxnas.costs import models, table as table_lib, tpu  # noqa: E402
from jaxnas.errors import JaxnasError  # noqa: E402

# The shipped configs' search networks: the digits searches of the three spaces, the
# DARTS paper's CIFAR-10 search and AutoDL's NAS-Bench-201 one, and the tiny smoke
# configs. (experiments/compare.py:nb201 and collapse.py have the nb201 digits shapes,
# digits_discrete.py the darts digits ones.)
DEFAULT_CONFIGS = (
    'experiments/digits.py',
    'experiments/digits.py --config.space=nb201',
    'experiments/digits_mbconv.py',
    'experiments/cifar10_darts.py',
    'experiments/paper_search.py:gdas_nb201',
    'experiments/tiny.py',
    'experiments/tiny.py --config.space=nb201',
    'experiments/digits_mbconv.py:tiny',
)
MXU_CHIPS = ('v5e', 'v6e')
MXU_CHANNELS = (64, 120, 128, 136)
# The spaces' 3x3 ops costed in the --mxu sweep (space, op).
MXU_OPS = (('nb201', 'nor_conv_3x3'), ('darts', 'sep_conv_3x3'), ('mbconv', 'mbconv_k3_e3'))
SAVE_EVERY = 25


def tpu_model():
    return models.get('tpu-v5e')


def config_entries(spec: str, batch: int, dtype: str) -> list:
    """The op entries of ``spec``'s search network (``path.py[:arg] [--config.F=V ...]``)."""
    path, *overrides = shlex.split(spec)
    config = config_lib.apply_overrides(config_lib.load_config(path), config_lib.parse_overrides(overrides))
    if config.data.name not in costs.INPUT_SHAPES:
        raise JaxnasError(f'config {spec!r}: no input shape for data set {config.data.name!r} in costs.INPUT_SHAPES')
    space = spaces.get(config.space)
    items = table_lib.entries(space, config.model, costs.INPUT_SHAPES[config.data.name], batch=batch, dtype=dtype)
    return sorted({e for *_, e in items if e is not None})


def build(entry):
    return table_lib.edge_module(spaces.get(entry.space), entry.op, entry)


def table_path(data_dir: str, chip: str) -> str:
    return os.path.join(data_dir, f'tpu-{chip}.json')


def read_table(path: str):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        try:
            return tpu.check_table(json.load(f), path)
        except json.JSONDecodeError as e:
            raise JaxnasError(f'{path} is not valid JSON ({e}); move it away to generate it afresh') from None


def write_table(path: str, table: dict) -> None:
    runs.write_bytes(path, (json.dumps(table, indent=1, sort_keys=True) + '\n').encode())


def new_meta(chip: str, versions: dict, command: str, specs, old=None) -> dict:
    old = old or {}
    commands = [c for c in old.get('commands', [old['command']] if 'command' in old else []) if c != command]
    configs = list(old.get('configs', []))
    configs += [s for s in specs if s not in configs]
    device = tpu.device(chip)
    return {'chip': chip, 'topology': tpu.TOPOLOGIES[chip], 'device_kind': device.device_kind, **versions,
            'command': command, 'commands': commands + [command], 'configs': configs,
            'generated': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
            'unit': tpu.UNIT,
            'what': "XLA's TPU roofline estimate (cost_analysis()['optimal_seconds']) of each op's inference "
                    'forward, built alone at its edge shapes (jaxnas.costs.table.edge_module), variables and input '
                    'in the entry dtype, compiled for the first device of the topology with JAX_PLATFORMS=cpu',
            'forms': tpu.FORMS, 'chip_info': tpu.chip_info(chip, getattr(device, 'num_cores', 1))}


def generate(chips, specs, batch, dtype, data_dir, recompute: bool, command: str) -> dict:
    from tqdm import tqdm
    versions = tpu.versions()
    wanted = set()
    for spec in specs:
        wanted |= set(config_entries(spec, batch, dtype))
    summary = {'versions': versions, 'configs': list(specs), 'entries_wanted': len(wanted), 'chips': {}}
    for chip in chips:
        path = table_path(data_dir, chip)
        old = read_table(path)
        if old is not None:
            made = {k: old['meta'].get(k) for k in versions}
            if made != versions and not recompute:
                raise JaxnasError(f'{path} was made with {made}, this environment has {versions}; pass --recompute to '
                                  'regenerate all of its entries with these versions')
        entries = dict(old['entries']) if old else {}
        todo = set(wanted) if recompute else {e for e in wanted if e.key() not in entries}
        if recompute:
            todo |= {tpu.parse_key(k) for k in entries}
        todo = sorted(todo)
        meta = new_meta(chip, versions, command, specs, old['meta'] if old else None)
        t0, times = time.perf_counter(), []
        bar = tqdm(todo, desc=f'tpu-{chip}', unit='op')
        for i, entry in enumerate(bar, 1):
            bar.set_postfix_str(entry.key(), refresh=False)
            t = time.perf_counter()
            entries[entry.key()] = tpu.compile_us(entry, build, chip)
            times.append(time.perf_counter() - t)
            if i % SAVE_EVERY == 0:
                write_table(path, {'meta': meta, 'entries': entries})
        if todo or old is None:
            write_table(path, {'meta': meta, 'entries': entries})
        summary['chips'][chip] = {'table': path, 'entries': len(entries), 'compiled': len(todo),
                                  'seconds': round(time.perf_counter() - t0, 1),
                                  'compile_s_per_op_mean': round(sum(times) / len(times), 3) if times else None,
                                  'compile_s_per_op_max': round(max(times), 3) if times else None}
    return summary


def check(chips, n: int, seed: int, data_dir: str) -> dict:
    """Regenerate ``n`` random entries of each chip's table; the largest relative difference."""
    versions = tpu.versions()
    out = {'versions': versions, 'sample_per_chip': n, 'seed': seed, 'chips': {}}
    for chip in chips:
        path = table_path(data_dir, chip)
        table = read_table(path)
        if table is None:
            raise JaxnasError(f'no table {path} to check; generate it first')
        keys = sorted(table['entries'])
        sample = random.Random(f'{seed}/{chip}').sample(keys, min(n, len(keys)))
        worst, worst_key = 0.0, None
        for key in sample:
            fresh = tpu.compile_us(tpu.parse_key(key), build, chip)
            shipped = table['entries'][key]
            rel = abs(fresh - shipped) / shipped
            if worst_key is None or rel > worst:
                worst, worst_key = rel, key
        out['chips'][chip] = {'checked': len(sample), 'of': len(keys), 'max_rel_diff': worst, 'worst': worst_key,
                              'table_versions': {k: table['meta'].get(k) for k in versions}}
    return out


def mxu(chips) -> dict:
    """A bf16 3x3 'SAME' convolution N=64, 32x32, C->C, and the spaces' 3x3 ops at the same
    shapes, at C = :data:`MXU_CHANNELS`: microseconds per batch and the ratio to C=128."""
    import jax
    import jax.numpy as jnp

    def conv(w, x):
        return jax.lax.conv_general_dilated(x, w, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))

    out = {'shape': 'N=64, 32x32, C->C, 3x3, stride 1, bfloat16', 'channels': list(MXU_CHANNELS), 'chips': {}}
    for chip in chips:
        rows = {}
        us = [tpu.function_us(conv, (jax.ShapeDtypeStruct((3, 3, c, c), jnp.bfloat16),
                                     jax.ShapeDtypeStruct((64, 32, 32, c), jnp.bfloat16)), chip, f'conv C={c}')
              for c in MXU_CHANNELS]
        rows['lax.conv 3x3'] = us
        for space, op in MXU_OPS:
            entries = [table_lib.OpEntry(space, op, (32, 32), c, c, 1, 64, 'bfloat16') for c in MXU_CHANNELS]
            rows[f'{space}/{op}'] = [_or_none(lambda: tpu.compile_us(e, build, chip)) for e in entries]
            if space == 'nb201':   # the dense conv as jaxnas writes it for XLA:CPU (im2col matmul)
                rows[f'{space}/{op} (CPU im2col form)'] = [_or_none(lambda: tpu.compile_us(e, build, chip, forms=False))
                                                           for e in entries]
        ref = MXU_CHANNELS.index(128)
        out['chips'][chip] = {name: {'us': [None if v is None else round(v, 2) for v in vals],
                                     'ratio_to_c128': [None if v is None or vals[ref] is None else round(v / vals[ref], 3)
                                                       for v in vals]}
                              for name, vals in rows.items()}
    return out


def _or_none(cost):
    """``cost()``, or ``None`` where XLA gives no estimate (optimal_seconds -1: seen for an
    MBConv block at 32x32, 64 channels, and dense convs as im2col matmuls at 128 channels)."""
    try:
        return cost()
    except tpu.CostError:
        return None


def parse_chips(text: str) -> list:
    chips = [c.strip() for c in text.split(',') if c.strip()]
    for c in chips:
        tpu.check_chip(c)
    if not chips:
        raise JaxnasError('--chips names no chip; e.g. --chips v5e,v6e')
    return chips


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--chips', default=','.join(tpu.TOPOLOGIES), help='comma-separated: ' + ', '.join(tpu.TOPOLOGIES))
    p.add_argument('--config', action='append', default=None,
                   help="an experiment config with overrides, as one argument: 'path.py[:arg] [--config.F=V ...]' "
                        '(repeatable; default: the shipped configs)')
    p.add_argument('--batch', type=int, default=None, help='examples per costed call (default: the tpu models\', 64)')
    p.add_argument('--dtype', default=None, help="default: the tpu models' (bfloat16)")
    p.add_argument('--recompute', action='store_true', help='compile every entry again, the existing ones included')
    p.add_argument('--check', type=int, default=0, metavar='N',
                   help='regenerate N random entries of each table and compare (writes nothing)')
    p.add_argument('--seed', type=int, default=0, help='of the --check sample')
    p.add_argument('--mxu', action='store_true', help='the MXU padding sweep on v5e and v6e (writes nothing)')
    p.add_argument('--data-dir', default=tpu.DATA_DIR, help=argparse.SUPPRESS)
    p.add_argument('--out', default=None, help='also write the JSON summary here')
    args = p.parse_args(argv)
    command = 'python benchmarks/tpu_tables.py' + ''.join(' ' + shlex.quote(a) for a in (argv or sys.argv[1:]))
    try:
        chips = parse_chips(args.chips)
        batch = tpu_model().default_batch if args.batch is None else args.batch
        dtype = args.dtype or tpu_model().default_dtype
        models.check_dtype(dtype)
        if batch < 1:
            raise JaxnasError(f'--batch must be >= 1, got {batch}')
        if args.check < 0:
            raise JaxnasError(f'--check must be >= 0, got {args.check}')
        t0 = time.perf_counter()
        if args.mxu:
            summary = mxu([c for c in chips if c in MXU_CHIPS] or list(MXU_CHIPS))
        elif args.check:
            summary = check(chips, args.check, args.seed, args.data_dir)
        else:
            summary = generate(chips, tuple(args.config or DEFAULT_CONFIGS), batch, dtype, args.data_dir,
                               args.recompute, command)
        summary['command'] = command
        summary['wall_s'] = round(time.perf_counter() - t0, 1)
    except JaxnasError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    text = json.dumps(summary, indent=1)
    print(text)
    if args.out:
        runs.write_text(args.out, text + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
