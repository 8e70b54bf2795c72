"""TPU cost tables: XLA's TPU roofline estimates shipped as data.

``jaxnas/costs/data/tpu-<chip>.json`` holds, per op entry key
(:meth:`jaxnas.costs.table.OpEntry.key`), the ``optimal_seconds`` of XLA's cost analysis
of that op's inference forward pass cross-compiled for one device of the chip
(``jax.experimental.topologies``, libtpu on a CPU-only machine), in microseconds per
batch, with the jax, jaxlib and libtpu versions, the chip's hardware figures and the
command that generated it (``benchmarks/tpu_tables.py``). Ops are costed in the form a
TPU program runs (:func:`tpu_forms`, :data:`FORMS`: dense convolutions as XLA
convolutions, not the im2col matmuls jaxnas writes for XLA:CPU)::

    {"meta": {"chip", "topology", "jax", "jaxlib", "libtpu", "command", "generated",
              "unit": "microseconds per batch", "forms", "chip_info": {...}, ...},
     "entries": {"darts/sep_conv_3x3/8x8/24-24/s1/b64/bfloat16": 12.3, ...}}

Reading a table (:func:`load`, :func:`lookup`) needs neither libtpu nor a TPU, and a
search never compiles for TPU. Making an entry (:func:`compile_us`) needs the ``[tpu]``
extra (``pip install -e .[tpu]``, libtpu) and no TPU either.
"""
from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re

from jaxnas.costs.xla import CostError

DATA_DIR = os.path.join(os.path.dirname(__file__), 'data')
GENERATOR = 'python benchmarks/tpu_tables.py'
UNIT = 'microseconds per batch'
# The topology each chip's device is taken from: the first device of a small slice (only
# one device is compiled for; v4 takes single-device programs only).
TOPOLOGIES = {'v4': 'v4:2x2x1', 'v5e': 'v5e:2x2', 'v5p': 'v5p:2x2x1', 'v6e': 'v6e:2x2'}
META_FIELDS = ('chip', 'topology', 'jax', 'jaxlib', 'libtpu', 'command', 'generated', 'unit')
INSTALL = 'needs the [tpu] extra: pip install -e .[tpu]'

_KEY = re.compile(r'^(?P<space>[^/]+)/(?P<op>[^/]+)/(?P<h>\d+)x(?P<w>\d+)/(?P<c_in>\d+)-(?P<c_out>\d+)'
                  r'/s(?P<stride>\d+)/b(?P<batch>\d+)/(?P<dtype>[^/]+)$')


def path(chip: str) -> str:
    return os.path.join(DATA_DIR, f'tpu-{chip}.json')


def parse_key(key: str):
    """The :class:`~jaxnas.costs.table.OpEntry` of a table key (the inverse of ``OpEntry.key``)."""
    from jaxnas.costs.table import OpEntry
    m = _KEY.match(key)
    if m is None:
        raise CostError(f'{key!r} is not an op entry key (space/op/HxW/Cin-Cout/sS/bB/dtype)')
    g = m.groupdict()
    return OpEntry(g['space'], g['op'], (int(g['h']), int(g['w'])), int(g['c_in']), int(g['c_out']),
                   int(g['stride']), int(g['batch']), g['dtype'])


def check_table(table, where: str) -> dict:
    """``table`` if it is a well-formed TPU table (meta fields, unit, positive finite
    microseconds under entry keys), else a one-line :class:`CostError` naming ``where``."""
    if not isinstance(table, dict) or not isinstance(table.get('meta'), dict) \
            or not isinstance(table.get('entries'), dict):
        raise CostError(f'{where} is not a jaxnas TPU table (needs a meta object and an entries object); '
                        f'regenerate it with `{GENERATOR}`')
    missing = [f for f in META_FIELDS if f not in table['meta']]
    if missing:
        raise CostError(f"{where}: meta lacks {', '.join(missing)}; regenerate it with `{GENERATOR}`")
    if table['meta']['unit'] != UNIT:
        raise CostError(f"{where}: unit {table['meta']['unit']!r}, expected {UNIT!r}")
    for key, v in table['entries'].items():
        parse_key(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise CostError(f'{where}: entry {key} is {v!r}; costs must be finite microseconds > 0')
    return table


@functools.lru_cache(maxsize=None)
def load(chip: str) -> dict:
    """The shipped table of ``chip``: ``{'meta': {...}, 'entries': {key: microseconds}}``."""
    p = path(chip)
    if not os.path.exists(p):
        raise CostError(f'no TPU table for {chip} ({p}); generate it with `{GENERATOR} --chips {chip}` ({INSTALL})')
    with open(p) as f:
        try:
            table = json.load(f)
        except json.JSONDecodeError as e:
            raise CostError(f'{p} is not valid JSON ({e}); regenerate it with `{GENERATOR} --chips {chip}`') from None
    return check_table(table, p)


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
                        f'`{GENERATOR} --chips {chip} --config <your experiment config>` ({INSTALL})')
    return [float(v) for v in out]


# ----------------------------------------------------------------------------------------
# Making entries (libtpu needed, no TPU)
# ----------------------------------------------------------------------------------------

def libtpu_version() -> str:
    """The installed libtpu's version, or a one-line error saying how to install it."""
    from importlib import metadata
    try:
        return metadata.version('libtpu')
    except metadata.PackageNotFoundError:
        raise CostError(f'libtpu is not installed; compiling for TPU {INSTALL}') from None


def versions() -> dict:
    import jax
    import jaxlib
    return {'jax': jax.__version__, 'jaxlib': jaxlib.__version__, 'libtpu': libtpu_version()}


def check_chip(chip: str) -> str:
    if chip not in TOPOLOGIES:
        raise CostError(f"unknown TPU chip {chip!r}; choose one of {', '.join(TOPOLOGIES)}")
    return chip


@functools.lru_cache(maxsize=None)
def device(chip: str):
    """The first device of ``chip``'s topology (:data:`TOPOLOGIES`), to compile for."""
    check_chip(chip)
    libtpu_version()
    # Several processes may load libtpu on one machine (every jax process of an
    # environment with libtpu loads it, and one holds its lock file); cross-compiling
    # uses no TPU, so the lock is not needed.
    os.environ.setdefault('ALLOW_MULTIPLE_LIBTPU_LOAD', '1')
    from jax.experimental import topologies
    try:
        return topologies.get_topology_desc(TOPOLOGIES[chip], 'tpu').devices[0]
    except Exception as e:  # libtpu's own errors: one line
        raise CostError(f'cannot make the TPU {chip} topology {TOPOLOGIES[chip]}: {type(e).__name__}: '
                        f'{str(e).splitlines()[0] if str(e) else ""}') from None


def chip_info(chip: str, cores: int = 1):
    """Hardware figures of ``chip`` per TensorCore (MXU size, VMEM, HBM bandwidth, bf16
    peak ...; ``num_cores``: ``cores`` per device) from jax's Pallas TPU info table, or
    ``None`` where this jax has none."""
    import dataclasses
    try:
        from jax._src.pallas.mosaic import tpu_info
        info = tpu_info.get_tpu_info_for_chip(tpu_info.ChipVersion(chip), int(cores))
    except Exception:  # a private module: absent or changed in other jax versions
        return None
    out = {}
    for f in dataclasses.fields(info):
        v = getattr(info, f.name)
        if dataclasses.is_dataclass(v):
            v = dataclasses.asdict(v)
        elif hasattr(v, 'value'):
            v = v.value
        out[f.name] = v
    return out


def function_us(fn, args, chip: str, what: str = 'the function') -> float:
    """``optimal_seconds`` of ``jit(fn)`` compiled for one ``chip`` device at ``args``
    (a pytree of ``jax.ShapeDtypeStruct``), in microseconds."""
    import jax
    from jax.sharding import SingleDeviceSharding
    sharding = SingleDeviceSharding(device(chip))
    args = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), args)
    try:   # TPU executables stay out of the persistent compilation cache (they cannot be loaded back here)
        from jax._src.config import enable_compilation_cache as cache_state
        no_cache = cache_state(False)
    except Exception:  # a private name: absent or changed in other jax versions
        no_cache = contextlib.nullcontext()
    with no_cache:
        analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else {}
    seconds = (analysis or {}).get('optimal_seconds')
    if seconds is None or not math.isfinite(float(seconds)) or float(seconds) <= 0:
        raise CostError(f'XLA gave no positive optimal_seconds for {what} on TPU {chip} (got {seconds!r})')
    return 1e6 * float(seconds)


def compile_us(entry, build, chip: str, forms: bool = True) -> float:
    """XLA's TPU roofline estimate (``optimal_seconds`` of the cost analysis) of
    ``build(entry)``'s inference forward at the entry's shapes and dtype (variables cast
    to it too), compiled for one ``chip`` device, in the TPU forms (:func:`tpu_forms`;
    ``forms=False``: the programs as jaxnas writes them for the CPU); microseconds per batch."""
    from jaxnas.costs import models
    module = build(entry)
    if module is None:
        raise CostError(f'{entry.key()} computes nothing; it has no TPU cost')
    with tpu_forms() if forms else contextlib.nullcontext():
        return function_us(models.forward_fn(module),
                           (models.variables_struct(module, entry), models.input_struct(entry)), chip, entry.key())


FORMS = ("dense convolutions as lax.conv_general_dilated (XLA:TPU's MXU convolution) in place of the im2col "
         'matmul of jaxnas.ops.eval_forms.conv2d (an XLA:CPU workaround that XLA:TPU costs 10-30x higher at '
         "small channel counts); depthwise convolutions as the evaluation forms' shifted multiply-adds (XLA:TPU "
         'costs them below a feature_group_count convolution)')


def lax_conv2d(x, w, stride=1, padding=0):
    """:func:`jaxnas.ops.eval_forms.conv2d` (same arguments, same result) as one
    ``lax.conv_general_dilated``: the form a TPU program runs."""
    from jax import lax

    from jaxnas.ops.eval_forms import _pair
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    return lax.conv_general_dilated(x, w, (sh, sw), ((ph, ph), (pw, pw)), dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


@contextlib.contextmanager
def tpu_forms():
    """While active, the evaluation forms' dense convolutions are :func:`lax_conv2d`
    (:data:`FORMS`): what the op costs on a TPU, not the CPU-shaped program."""
    from jaxnas.ops import eval_forms
    saved = eval_forms.conv2d
    eval_forms.conv2d = lax_conv2d
    try:
        yield
    finally:
        eval_forms.conv2d = saved
