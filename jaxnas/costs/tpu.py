"""TPU cost tables: XLA's TPU roofline estimates shipped as data.

``jaxnas/costs/data/tpu-<chip>.json`` holds, per op entry key
(:meth:`jaxnas.costs.table.OpEntry.key`), the ``optimal_seconds`` of XLA's cost analysis
of that op cross-compiled for the chip (``jax.experimental.topologies``, libtpu on a
CPU-only machine), in microseconds, with the jax and libtpu versions and the command
that generated it (``benchmarks/tpu_tables.py``). Reading a table needs neither libtpu
nor a TPU; a search never compiles for TPU.
"""
from __future__ import annotations

import functools
import json
import os

from jaxnas.costs.xla import CostError

DATA_DIR = os.path.join(os.path.dirname(__file__), 'data')
GENERATOR = 'python benchmarks/tpu_tables.py'


def path(chip: str) -> str:
    return os.path.join(DATA_DIR, f'tpu-{chip}.json')


@functools.lru_cache(maxsize=None)
def load(chip: str) -> dict:
    """The shipped table of ``chip``: ``{'meta': {...}, 'entries': {key: microseconds}}``."""
    p = path(chip)
    if not os.path.exists(p):
        raise CostError(f'no TPU table for {chip} ({p}); generate it with `{GENERATOR} --chips {chip}` '
                        '(needs the [tpu] extra: pip install -e .[tpu])')
    with open(p) as f:
        table = json.load(f)
    if not isinstance(table, dict) or 'entries' not in table or 'meta' not in table:
        raise CostError(f'{p} is not a jaxnas TPU table (needs keys meta and entries)')
    return table


def lookup(chip: str, entries) -> list:
    """Microseconds per batch of each entry from the shipped table; an entry it lacks is
    a one-line error naming the command that adds it."""
    table = load(chip)['entries']
    out, missing = [], []
    for e in entries:
        v = table.get(e.key())
        if v is None:
            missing.append(e.key())
        out.append(v)
    if missing:
        raise CostError(f'the tpu-{chip} table has no entry for {missing[0]} ({len(missing)} missing): extend it with '
                        f'`{GENERATOR} --chips {chip} --config <your experiment config>` (needs the [tpu] extra)')
    return [float(v) for v in out]
