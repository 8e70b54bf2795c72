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

from typing import Optional

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxnas.errors import JaxnasError

DATA_AXIS = 'data'


class MeshError(JaxnasError):
    """A mesh the devices or the batch cannot make (one line)."""


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


def is_parallel(mesh: Optional[Mesh]) -> bool:
    return mesh is not None and mesh.size > 1


def replicate(mesh: Optional[Mesh], tree):
    """``tree`` on every device of the mesh (unchanged without a multi-device mesh)."""
    if not is_parallel(mesh):
        return tree
    return jax.device_put(tree, NamedSharding(mesh, P()))


def shard_batch(mesh: Optional[Mesh], batch):
    """Each array's leading (batch) axis split over the data axis (unchanged on one device)."""
    if not is_parallel(mesh):
        return batch
    return jax.device_put(batch, NamedSharding(mesh, P(DATA_AXIS)))


def describe(mesh: Optional[Mesh]) -> dict:
    if mesh is None:
        return {'devices': 1}
    d = mesh.devices.flat[0]
    return {'devices': int(mesh.size), 'shape': dict(mesh.shape), 'platform': d.platform,
            'device_kind': getattr(d, 'device_kind', '')}
