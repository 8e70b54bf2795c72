"""Data sets for architecture search: loading, DARTS-style splits, batching.

Split protocol
--------------
Differentiable architecture search needs three disjoint sets:

* ``train`` -- the *weight-train* split, used for the network weights;
* ``val``   -- the *arch-val* split (DARTS' ``valid_queue``), used for the
  architecture parameters;
* ``test``  -- held out, only for reporting.

For the TFDS image sets (``cifar10``, ``cifar100``, ``svhn_cropped``,
``mnist``) the official ``train`` split is cut in two by a permutation drawn
from ``seed``: the first ``floor(train_portion * n)`` examples become
weight-train, the rest arch-val (DARTS uses ``train_portion=0.5``). The
official ``test`` split is the test set. ``digits`` (scikit-learn's bundled
8x8 digits, no download) first holds out a stratified 20% as test, then splits
the rest the same way (also stratified).

All images are float32 NHWC, normalised per channel with the mean and standard
deviation of the weight-train split only. Augmentation (:func:`augment_batch`)
runs on device, on normalised images, so its zero padding is the mean pixel.

Preparing the TFDS sets
-----------------------
Nothing is ever downloaded here. The sets are read with ``tfds.data_source``
(random-access ArrayRecord files, decoded with Pillow; TensorFlow is not
needed for reading). Prepare each set once, on a machine with network access::

    pip install 'jaxnas[prepare]'   # adds TensorFlow, needed by `tfds build`
    tfds build cifar10 --file_format=array_record [--data_dir=DIR]

and pass ``data_dir=DIR`` (``--config.data.data_dir=DIR``) if it is not the
TFDS default (``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).
"""

from __future__ import annotations

import math
import os
from typing import Iterator, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.errors import JaxnasError


class DataError(JaxnasError):
    """A data set cannot be loaded or an argument is invalid (one line)."""


class Dataset(NamedTuple):
    """A loaded data set: normalised float32 NHWC images and int32 labels."""

    name: str
    train_x: np.ndarray  # weight-train split
    train_y: np.ndarray
    val_x: np.ndarray  # arch-val split (DARTS 'valid_queue')
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int
    augment: bool  # apply augment_batch (random crop, pad 4) to train batches
    flip: bool = False  # ... with horizontal flips too (not for digit sets)


# Name -> horizontal flip during augmentation. Digits are not mirror-symmetric.
_TFDS_SETS = {
    'cifar10': True,
    'cifar100': True,
    'svhn_cropped': False,
    'mnist': False,
}
DATASETS = ('digits',) + tuple(_TFDS_SETS)

_TEST_FRACTION = 0.2  # digits only: the held-out test share
_READ_CHUNK = 1024  # records per batched random-access read


def load_dataset(
    name: str,
    *,
    data_dir: str | None = None,
    train_portion: float = 0.5,
    seed: int = 0,
    limit: int | None = None,
) -> Dataset:
    """Loads `name` and splits it into weight-train / arch-val / test.

    Args:
      name: one of `DATASETS`.
      data_dir: TFDS data directory (default: `$TFDS_DATA_DIR` or
        `~/tensorflow_datasets`). Ignored for 'digits'.
      train_portion: share of the training pool used as weight-train; the rest is
        arch-val. In (0, 1]; 1 leaves arch-val empty (e.g. for final training).
      seed: seeds the split permutation (the same seed gives the same split).
      limit: read at most this many examples of each pool (the official 'train'
        and 'test' splits; for 'digits' the 80% / 20% pools), for quick runs.

    Returns:
      The `Dataset`.

    Raises:
      DataError: unknown name, bad arguments, or a TFDS set that is not prepared.
    """
    if name not in DATASETS:
        raise DataError(f'unknown data set {name!r}; choose one of {", ".join(DATASETS)}')
    if not 0.0 < train_portion <= 1.0:
        raise DataError(f'train_portion must be in (0, 1], got {train_portion}')
    if limit is not None and limit < 1:
        raise DataError(f'limit must be a positive number of examples, got {limit}')

    if name == 'digits':
        pool_x, pool_y, test_x, test_y, num_classes = _load_digits(seed, limit)
        stratify = True
    else:
        pool_x, pool_y, test_x, test_y, num_classes = _load_tfds(name, data_dir, limit)
        stratify = False
    train_idx, val_idx = _split_indices(pool_y, train_portion, seed, stratify=stratify)
    if len(train_idx) == 0:
        raise DataError(
            f'data set {name!r}: weight-train split is empty ({len(pool_y)}'
            f' training examples, train_portion={train_portion}); raise limit'
        )
    train_x = pool_x[train_idx]
    mean, std = _channel_stats(train_x)

    def norm(x):
        x = x.astype(np.float32)
        x -= mean
        x /= std
        return x

    return Dataset(
        name=name,
        train_x=norm(train_x),
        train_y=pool_y[train_idx].astype(np.int32),
        val_x=norm(pool_x[val_idx]),
        val_y=pool_y[val_idx].astype(np.int32),
        test_x=norm(test_x),
        test_y=test_y.astype(np.int32),
        num_classes=int(num_classes),
        augment=name != 'digits',
        flip=_TFDS_SETS.get(name, False),
    )


def _load_digits(seed: int, limit: int | None):
    """scikit-learn digits as (pool_x, pool_y, test_x, test_y, num_classes)."""
    from sklearn import datasets as sk_datasets
    from sklearn import model_selection

    digits = sk_datasets.load_digits()
    x = digits.images.astype(np.float32)[..., None]  # (1797, 8, 8, 1), 0..16
    y = digits.target.astype(np.int32)
    pool_idx, test_idx = model_selection.train_test_split(
        np.arange(len(y)),
        test_size=_TEST_FRACTION,
        random_state=seed,
        stratify=y,
    )
    pool_idx, test_idx = pool_idx[:limit], test_idx[:limit]
    return x[pool_idx], y[pool_idx], x[test_idx], y[test_idx], 10


def _split_indices(
    y: np.ndarray, train_portion: float, seed: int, *, stratify: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded weight-train / arch-val index split of a pool of labels `y`."""
    n = len(y)
    n_train = int(math.floor(train_portion * n))
    if n_train >= n:
        return np.random.default_rng(seed).permutation(n), np.arange(0)
    if stratify and n_train > 0:
        from sklearn import model_selection

        try:
            return model_selection.train_test_split(
                np.arange(n), train_size=n_train, random_state=seed, stratify=y
            )
        except ValueError:  # too few examples per class (e.g. a tiny limit)
            pass
    perm = np.random.default_rng(seed).permutation(n)
    return perm[:n_train], perm[n_train:]


def _channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel float32 mean and std of NHWC `x` (std of 0 becomes 1)."""
    channels = [x[..., c] for c in range(x.shape[-1])]
    mean = np.array([c.mean(dtype=np.float64) for c in channels])
    std = np.array([c.std(dtype=np.float64) for c in channels])
    std[std == 0] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def check_prepared(name: str, data_dir: str | None = None) -> None:
    """A one-line :class:`DataError` (how to prepare it) unless data set ``name`` can be
    read: commands call it before they write anything. Opens the prepared files' index
    only; reads no examples, never downloads."""
    if name not in DATASETS:
        raise DataError(f'unknown data set {name!r}; choose one of {", ".join(DATASETS)}')
    if name != 'digits':
        _tfds_sources(name, data_dir)


def _tfds_sources(name: str, data_dir: str | None) -> dict:
    """The train and test ``tfds.data_source`` of a prepared set, or the one-line error."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise DataError(
            f'data set {name!r} needs tensorflow-datasets: pip install tensorflow-datasets ({e})'
        ) from e

    sources = {}
    try:
        for split in ('train', 'test'):
            sources[split] = tfds.data_source(
                name, split=split, data_dir=data_dir, download=False, try_gcs=False
            )
    except Exception as e:  # tfds raises KeyError, NotImplementedError, ...
        raise _not_prepared_error(tfds, name, data_dir, e) from e
    return sources


def _load_tfds(name: str, data_dir: str | None, limit: int | None):
    """A TFDS set as (pool_x, pool_y, test_x, test_y, num_classes).

    Reads prepared files only; never downloads.
    """
    sources = _tfds_sources(name, data_dir)
    train_x, train_y = _read_source(sources['train'], limit)
    test_x, test_y = _read_source(sources['test'], limit)
    label = sources['train'].dataset_info.features['label']
    return train_x, train_y, test_x, test_y, label.num_classes


def _not_prepared_error(tfds, name: str, data_dir: str | None, error: Exception) -> DataError:
    """The one-line error for a TFDS set that cannot be read from `data_dir`."""
    root = os.path.expanduser(data_dir) if data_dir else _default_tfds_dir()
    build = f"pip install 'jaxnas[prepare]' && tfds build {name} --file_format=array_record --data_dir={root}"
    fix = f'`{build}` (needs network and TensorFlow) or pass --config.data.data_dir=DIR'
    try:
        builder = tfds.builder(name, data_dir=data_dir, try_gcs=False)
        prepared = builder.is_prepared()
        file_format = getattr(builder.info.file_format, 'value', None)
    except Exception:  # pylint: disable=broad-except
        prepared, file_format = False, None
    if not prepared:
        return DataError(f'data set {name!r} is not prepared in {root}; prepare it once with {fix}')
    if file_format and file_format != 'array_record':
        return DataError(
            f'data set {name!r} in {root} is stored as {file_format}, but jaxnas'
            f' reads array_record; rebuild it with {fix}'
        )
    reason = (str(error).strip().splitlines() or [''])[0]
    return DataError(
        f'data set {name!r} in {root} cannot be read'
        f' ({type(error).__name__}: {reason}); rebuild it with {fix}'
    )


def _default_tfds_dir() -> str:
    default = os.path.join(os.path.expanduser('~'), 'tensorflow_datasets')
    return os.environ.get('TFDS_DATA_DIR', default)


def _read_source(source, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The first `limit` records of a data source as image and int32 arrays."""
    n = len(source) if limit is None else min(limit, len(source))
    images, labels = None, np.empty((n,), np.int32)
    for start in range(0, n, _READ_CHUNK):
        keys = list(range(start, min(start + _READ_CHUNK, n)))
        records = source.__getitems__(keys)  # batched (parallel) reads
        for i, record in zip(keys, records):
            image = np.asarray(record['image'])
            if images is None:
                images = np.empty((n,) + image.shape, image.dtype)
            images[i] = image
            labels[i] = record['label']
    if images is None:
        raise DataError(f'data set split {source!r} is empty')
    return images, labels


def augment_batch(key: jax.Array, images: jax.Array, *, pad: int = 4, flip: bool = True) -> jax.Array:
    """Random crop with zero padding `pad` and random horizontal flip.

    Each example gets its own crop offset and coin flip. Pure and vectorised,
    so it can be jitted (mark `pad` and `flip` static) and runs on device.

    Args:
      key: PRNG key.
      images: float NHWC batch.
      pad: zero padding on each side before cropping back to H x W (0: no crop).
      flip: mirror each image left-right with probability 1/2.

    Returns:
      The augmented batch, same shape and dtype as `images`.
    """
    n, h, w, c = images.shape
    crop_key, flip_key = jax.random.split(key)
    if pad > 0:
        padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        offsets = jax.random.randint(crop_key, (n, 2), 0, 2 * pad + 1)
        crop = lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), (h, w, c))
        images = jax.vmap(crop)(padded, offsets)
    if flip:
        mirror = jax.random.bernoulli(flip_key, 0.5, (n, 1, 1, 1))
        images = jnp.where(mirror, images[:, :, ::-1, :], images)
    return images


def num_batches(n: int, batch_size: int, drop_last: bool = True) -> int:
    """Number of batches `batches` yields for `n` examples."""
    if batch_size < 1:
        raise DataError(f'batch_size must be positive, got {batch_size}')
    return n // batch_size if drop_last else -(-n // batch_size)


def batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    drop_last: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yields shuffled `(x_batch, y_batch)` pairs for one epoch.

    The order depends only on `(seed, epoch)`, so a resumed run replays the same
    batches. Each example appears at most once (exactly once if not
    `drop_last`).
    """
    if len(x) != len(y):
        raise DataError(f'x and y differ in length: {len(x)} vs {len(y)}')
    count = num_batches(len(x), batch_size, drop_last)
    order = np.random.default_rng((seed, epoch)).permutation(len(x))

    def generate():
        for b in range(count):
            idx = order[b * batch_size : (b + 1) * batch_size]
            yield x[idx], y[idx]

    return generate()
