"""TensorBoard event files beside a run's ``log.jsonl``: ``<workdir>/tb/``.

Every line appended to a ``log.jsonl`` (:func:`jaxnas.runs.append_jsonl`, which every
command's per-epoch log goes through) is also written here as one TensorBoard step, the
record's ``epoch`` (else its ``step``):

- a scalar per numeric field of the record (``train_loss``, ``derived_val_acc``,
  ``hessian_eigenvalue``, ...); a list of numbers (retraining's per-seed values) as one
  scalar per element, ``<key>/<i>``; nested dicts as ``<key>/<subkey>``; ``epoch`` itself,
  strings, booleans and ``None`` are left out;
- the relaxed architecture weights ``alphas`` as heat-map images, one per cell type
  (``alphas/<cell>``: rows are the edges, columns the ops in the space's order, viridis
  colours on the fixed scale 0..1, so epochs compare), and once per process a text
  ``alphas/ops`` naming the columns (from the run's ``run.json``).

So ``tensorboard --logdir runs/`` (or a sweep's work directory) shows every run.

The writer is tensorboardX's synchronous ``EventsWriter`` (no background thread): each
process opens one event file per run directory, named with its pid so that two
processes never share a file, and flushes it after every record, so a crash loses
nothing already in ``log.jsonl``. A few files stay open per process (least recently
used closed first) and all are closed at exit.

Resume: a resumed run rewrites the epochs after its last checkpoint (the log lines beyond
it were dropped by :func:`jaxnas.runs.truncate_jsonl`). The first record a process
writes into a run's ``tb/`` (and a record whose step is not after the last one written,
a retry resumed in the same process) is preceded by a ``SessionLog.START`` event at that
step, TensorBoard's restart marker: it discards the events of the earlier files at that step
and after, so the curves show each epoch once, from the run that finished it.

``JAXNAS_TENSORBOARD=0`` in the environment turns the event files off.
"""
from __future__ import annotations

import atexit
import collections
import itertools
import json
import os
import struct
import time
from typing import Iterable, Optional

import numpy as np

TB_DIR = 'tb'
_MAX_OPEN = 8
_PIXELS = 12                      # heat-map pixels per (edge, op) cell
_writers: 'collections.OrderedDict[str, object]' = collections.OrderedDict()
_counter = itertools.count()


def enabled() -> bool:
    """Whether runs write event files (``JAXNAS_TENSORBOARD`` is not ``0``/``false``/``no``)."""
    return os.environ.get('JAXNAS_TENSORBOARD', '1').strip().lower() not in ('0', 'false', 'no', 'off')


def record_step(record: dict) -> Optional[int]:
    """The TensorBoard step of a log record: its ``epoch``, else its ``step``, else None."""
    for key in ('epoch', 'step'):
        value = record.get(key)
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return int(value)
    return None


def scalars(record: dict) -> dict:
    """``{tag: float}`` of a record's numeric fields (see the module docstring)."""
    out = {}

    def visit(prefix, value):
        if isinstance(value, bool) or value is None:
            return
        if isinstance(value, (int, float, np.integer, np.floating)):
            out[prefix] = float(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                visit(f'{prefix}/{k}', v)
        elif isinstance(value, (list, tuple)) and value and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            for i, v in enumerate(value):
                out[f'{prefix}/{i}'] = float(v)

    for key, value in record.items():
        if key != 'epoch' and key != 'alphas':
            visit(key, value)
    return out


def heat_map(weights) -> np.ndarray:
    """``(edges, ops)`` weights -> an ``(H, W, 3)`` uint8 viridis image, 0..1 clipped,
    each cell ``_PIXELS`` square."""
    import matplotlib
    w = np.asarray(weights, dtype=float)
    if w.ndim == 1:
        w = w[None]
    w = np.clip(np.nan_to_num(w.reshape(w.shape[0], -1), nan=0.0), 0.0, 1.0)
    rgb = matplotlib.colormaps['viridis'](w)[..., :3]
    rgb = np.repeat(np.repeat(rgb, _PIXELS, axis=0), _PIXELS, axis=1)
    return (rgb * 255).round().astype(np.uint8)


def _op_names(run_dir: str) -> Optional[str]:
    """``'cell: op, op, ...'`` for the image columns, from ``run.json``'s space (or None)."""
    try:
        with open(os.path.join(run_dir, 'run.json')) as f:
            space_name = json.load(f)['config']['space']
        from jaxnas import spaces
        return 'columns (ops): ' + ', '.join(spaces.get(space_name).primitives) + '; rows: edges'
    except Exception:   # a log without a jaxnas run around it: no legend
        return None


class _Writer:
    """One open event file of one run directory, written synchronously."""

    def __init__(self, directory: str):
        from tensorboardX.event_file_writer import EventsWriter
        os.makedirs(directory, exist_ok=True)
        suffix = f'.{os.getpid()}.{next(_counter):06d}'   # zero-padded: name order is write order
        self.events = EventsWriter(os.path.join(directory, 'events'), filename_suffix=suffix)
        self.path = self.events._file_name
        self.last_step = None   # the last step this writer wrote

    def write(self, step: int, summary=None, start: bool = False) -> None:
        from tensorboardX.proto.event_pb2 import Event, SessionLog
        if start:
            self.events.write_event(Event(wall_time=time.time(), step=step,
                                          session_log=SessionLog(status=SessionLog.START)))
        if summary is not None:
            self.events.write_event(Event(wall_time=time.time(), step=step, summary=summary))

    def flush(self) -> None:
        self.events.flush()

    def close(self) -> None:
        self.events.close()


def _writer(run_dir: str) -> _Writer:
    key = os.path.realpath(os.path.join(run_dir, TB_DIR))
    writer = _writers.pop(key, None)
    if writer is None:
        writer = _Writer(key)
    _writers[key] = writer
    while len(_writers) > _MAX_OPEN:
        _writers.popitem(last=False)[1].close()
    return writer


def write_records(run_dir: str, records: Iterable[dict]) -> None:
    """Write log records of the run in ``run_dir`` into ``run_dir/tb/`` (see the module
    docstring). Records without an ``epoch`` or ``step`` are skipped."""
    records = [r for r in records if record_step(r) is not None]
    if not records or not enabled():
        return
    from tensorboardX import summary as tbs
    writer = _writer(run_dir)
    for record in records:
        step = record_step(record)
        values = [tbs.scalar(tag, value).value[0] for tag, value in scalars(record).items()]
        alphas = record.get('alphas')
        if isinstance(alphas, dict):
            for cell, weights in alphas.items():
                values += tbs.image(f'alphas/{cell}', heat_map(weights), dataformats='HWC').value
        if writer.last_step is None:
            legend = _op_names(run_dir) if isinstance(alphas, dict) else None
            if legend:
                values += tbs.text('alphas/ops', legend).value
        # a new writer, or a step written again (a retry resumed in this process): restart marker
        restart = writer.last_step is None or step <= writer.last_step
        writer.write(step, tbs.Summary(value=values), start=restart)
        writer.last_step = step
    writer.flush()


def close(run_dir: Optional[str] = None) -> None:
    """Close the event file of ``run_dir`` (all of this process's, without an argument)."""
    if run_dir is None:
        while _writers:
            _writers.popitem()[1].close()
        return
    writer = _writers.pop(os.path.realpath(os.path.join(run_dir, TB_DIR)), None)
    if writer is not None:
        writer.close()


atexit.register(close)


# ----------------------------------------------------------------------------------------
# Reading back (tests, reports): the TFRecord framing and tensorboardX's Event proto
# ----------------------------------------------------------------------------------------

def read_events(path: str) -> list:
    """The ``Event`` protos of one event file, or of every event file under a directory
    (in name order). A record cut short at the end of a file is left out."""
    from tensorboardX.proto.event_pb2 import Event
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path) if '.tfevents.' in f)
    else:
        files = [path]
    out = []
    for name in files:
        with open(name, 'rb') as f:
            data = f.read()
        at = 0
        while at + 12 <= len(data):
            (length,) = struct.unpack('<Q', data[at:at + 8])
            body = data[at + 12:at + 12 + length]
            if len(body) < length:
                break
            out.append(Event.FromString(body))
            at += 12 + length + 4
    return out


def scalar_series(path: str) -> dict:
    """``{tag: {step: value}}`` of the scalars under ``path``, the way TensorBoard shows
    them: a ``SessionLog.START`` at step s drops the values at s and after written before it."""
    from tensorboardX.proto.event_pb2 import SessionLog
    series: dict = {}
    for event in read_events(path):
        if event.HasField('session_log') and event.session_log.status == SessionLog.START:
            for values in series.values():
                for step in [s for s in values if s >= event.step]:
                    del values[step]
        if event.HasField('summary'):
            for v in event.summary.value:
                if v.HasField('simple_value'):
                    series.setdefault(v.tag, {})[event.step] = v.simple_value
    return series
