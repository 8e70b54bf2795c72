"""Data parallelism with ``jax.sharding``: one mesh over the local devices, batches split on
its data axis, everything else replicated, the gradient reduction left to XLA.

The mesh comes from the config (``mesh.shape``, ``mesh.axis_names``; default: every device
of ``jax.devices()`` on one ``data`` axis). :func:`replicate` places a pytree (weights,
BatchNorm statistics, architecture logits, both optimiser states, the step's key) on every
device; :func:`shard_batch` splits a batch's leading axis over the ``data`` axis. The step
is the same ``jit``-compiled function as on one device: under these input shardings XLA's
SPMD partitioner computes the same global-batch program, each device on its slice, and
inserts the all-reduces itself -- of the loss gradients (weights and architecture), and of
BatchNorm's batch mean and variance, which are those of the *global* batch (the SyncBatchNorm
convention; the running statistics are therefore identical on every device). Nothing is
gathered to the host per step. On one device nothing is placed or sharded, so single-device
runs are bit-identical to code without a mesh.
"""
from __future__ import annotations

import os
from typing import Optional

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxnas.errors import JaxnasError

DATA_AXIS = 'data'


class MeshError(JaxnasError):
    """A mesh the devices or the batch cannot make (one line)."""


def distributed_settings(config) -> Optional[tuple]:
    """``(coordinator address, number of processes, process id)`` from ``distributed.*``, else
    from the environment (``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``,
    ``JAX_PROCESS_ID``); ``None`` for a single-process run."""
    d = config.get('distributed', {})
    address = d.get('coordinator_address', '') or os.environ.get('JAX_COORDINATOR_ADDRESS', '')
    if not address:
        return None
    n = d.get('num_processes', 0) or int(os.environ.get('JAX_NUM_PROCESSES', '0') or 0)
    pid = d.get('process_id', -1)
    if pid < 0:
        pid = int(os.environ.get('JAX_PROCESS_ID', '-1') or -1)
    if n < 1 or not 0 <= pid < n:
        raise MeshError(f'a multi-process run at {address} needs distributed.num_processes >= 1 and 0 <= '
                        f'distributed.process_id < num_processes (or JAX_NUM_PROCESSES / JAX_PROCESS_ID), got {n} '
                        f'and {pid}')
    return address, n, pid


def initialize(config) -> bool:
    """``jax.distributed.initialize`` for a multi-process run (:func:`distributed_settings`),
    before anything starts the backend; on CPU the collectives go through gloo. Only process
    0 then writes run directories (:func:`jaxnas.runs.set_primary`). Returns whether this
    is a multi-process run."""
    settings = distributed_settings(config)
    if settings is None:
        return False
    from jaxnas import runs
    address, n, pid = settings
    if not jax.distributed.is_initialized():
        jax.config.update('jax_cpu_collectives_implementation', 'gloo')
        jax.distributed.initialize(address, num_processes=n, process_id=pid)
    runs.set_primary(jax.process_index() == 0)
    return True


def make_mesh(config, devices: Optional[list] = None) -> Mesh:
    """The config's mesh over the first ``prod(mesh.shape)`` of ``devices`` (default
    ``jax.devices()``; ``mesh.shape = ()``: all of them on the data axis); one clear line if
    the shape needs more devices than there are."""
    devices = list(devices if devices is not None else jax.devices())
    m = config.get('mesh', {})
    names = tuple(m.get('axis_names', (DATA_AXIS,))) or (DATA_AXIS,)
    shape = tuple(int(v) for v in m.get('shape', ())) or (len(devices),) + (1,) * (len(names) - 1)
    if DATA_AXIS not in names:
        raise MeshError(f'bad config value mesh.axis_names={names!r}: name one axis {DATA_AXIS!r} '
                        '(the batch is split over it)')
    if len(shape) != len(names) or any(s < 1 for s in shape):
        raise MeshError(f'bad config value mesh.shape={shape!r}: give one size >= 1 per axis of '
                        f'mesh.axis_names={names!r}')
    n = int(np.prod(shape))
    if n > len(devices):
        raise MeshError(f'bad config value mesh.shape={shape!r}: needs {n} devices, but this process sees '
                        f'{len(devices)} ({devices[0].platform}); use a shape whose product is at most {len(devices)}, '
                        'or () for all devices on the data axis')
    return Mesh(np.asarray(devices[:n]).reshape(shape), names)


def data_size(mesh: Mesh) -> int:
    return int(mesh.shape[DATA_AXIS])


def check_batch(mesh: Mesh, batch_size: int, field: str) -> None:
    n = data_size(mesh)
    if batch_size % n:
        raise MeshError(f'bad config value {field}={batch_size}: not divisible by the {n} devices of the mesh\'s data '
                        'axis; use a multiple of it')


def data_mesh(config, batch_size: int, field: str) -> Optional[Mesh]:
    """The config's mesh for a loop whose batches have ``batch_size`` examples (config field
    ``field``), checked to divide over the data axis; ``None`` on one device, where nothing is
    placed or sharded."""
    mesh = make_mesh(config)
    if not is_parallel(mesh):
        return None
    check_batch(mesh, batch_size, field)
    return mesh


def is_parallel(mesh: Optional[Mesh]) -> bool:
    return mesh is not None and mesh.size > 1


def replicate(mesh: Optional[Mesh], tree):
    """``tree`` on every device of the mesh (unchanged without a multi-device mesh)."""
    if not is_parallel(mesh):
        return tree
    return jax.device_put(tree, NamedSharding(mesh, P()))


def shard_batch(mesh: Optional[Mesh], batch, axis: int = 0):
    """Each array's batch axis (``axis``; 1 for retraining's ``(seeds, batch, ...)``) split over
    the data axis (unchanged on one device).
    In a multi-process run every process holds the same global batch (the data order depends
    only on the seed and epoch) and hands over only its own devices' slices."""
    if not is_parallel(mesh):
        return batch
    sharding = NamedSharding(mesh, P(*([None] * axis), DATA_AXIS))
    if jax.process_count() == 1:
        return jax.device_put(batch, sharding)
    return jax.tree.map(lambda x: jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx]), batch)


def describe(mesh: Optional[Mesh]) -> dict:
    if mesh is None:
        return {'devices': 1}
    d = mesh.devices.flat[0]
    return {'devices': int(mesh.size), 'shape': dict(mesh.shape), 'platform': d.platform,
            'device_kind': getattr(d, 'device_kind', '')}
