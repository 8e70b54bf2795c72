"""Tests for jaxnas.data; offline, no TensorFlow, a few seconds."""

import collections.abc
import io
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import data
from jaxnas.errors import JaxnasError

tfds = pytest.importorskip('tensorflow_datasets')


# ---------------------------------------------------------------- digits


@pytest.fixture(scope='module')
def digits():
    return data.load_dataset('digits', seed=0)


def test_digits_shapes_and_dtypes(digits):
    ds = digits
    assert ds.name == 'digits' and ds.num_classes == 10
    assert not ds.augment and not ds.flip
    for x, y in [(ds.train_x, ds.train_y), (ds.val_x, ds.val_y), (ds.test_x, ds.test_y)]:
        assert x.dtype == np.float32 and x.shape[1:] == (8, 8, 1)
        assert y.dtype == np.int32 and y.shape == (len(x),)
        assert set(np.unique(y)) == set(range(10))  # stratified: all classes
    sizes = len(ds.train_y), len(ds.val_y), len(ds.test_y)
    assert sum(sizes) == 1797
    assert sizes[2] == 360  # 20% test
    assert abs(sizes[0] - sizes[1]) <= 1  # 50/50 of the rest


def test_digits_normalised_with_train_stats(digits):
    assert abs(float(digits.train_x.mean())) < 1e-4
    assert abs(float(digits.train_x.std()) - 1.0) < 1e-4
    assert abs(float(digits.val_x.mean())) < 0.2  # same stats, other split


def test_digits_deterministic_per_seed(digits):
    again = data.load_dataset('digits', seed=0)
    other = data.load_dataset('digits', seed=1)
    for a, b in zip(digits, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(digits.train_y, other.train_y)
    assert not np.array_equal(digits.test_x, other.test_x)


def test_digits_train_portion_and_limit():
    ds = data.load_dataset('digits', train_portion=0.8, limit=100)
    assert (len(ds.train_y), len(ds.val_y), len(ds.test_y)) == (80, 20, 100)
    full = data.load_dataset('digits', train_portion=1.0)
    assert len(full.val_y) == 0 and len(full.train_y) == 1797 - 360


@pytest.mark.parametrize('stratify', [True, False])
def test_split_indices_disjoint_and_complete(stratify):
    y = np.arange(101) % 7
    train, val = data._split_indices(y, 0.5, seed=3, stratify=stratify)
    assert len(train) == 50 and len(val) == 51
    assert not set(train) & set(val)
    assert sorted(np.concatenate([train, val])) == list(range(101))


# ------------------------------------------------------------ errors


def test_unknown_name():
    with pytest.raises(data.DataError, match="unknown data set 'foo'.*cifar10"):
        data.load_dataset('foo')
    assert issubclass(data.DataError, JaxnasError)
    assert issubclass(data.DataError, ValueError)


@pytest.mark.parametrize('kwargs', [dict(train_portion=0.0), dict(train_portion=1.5), dict(limit=0)])
def test_bad_arguments(kwargs):
    with pytest.raises(data.DataError):
        data.load_dataset('digits', **kwargs)


@pytest.mark.parametrize('name', ['cifar10', 'mnist'])
def test_not_prepared_is_one_line_error(tmp_path, name):
    with pytest.raises(data.DataError) as info:
        data.load_dataset(name, data_dir=str(tmp_path))
    msg = str(info.value)
    assert '\n' not in msg
    assert f"'{name}'" in msg and str(tmp_path) in msg
    assert 'not prepared' in msg and 'tfds build' in msg


def test_tfrecord_prepared_set_is_reported(tmp_path):
    """Metadata of a TFRecord build: readable by tfds, not by data_source."""
    builder = tfds.builder('mnist', data_dir=str(tmp_path), try_gcs=False)
    _write_metadata(builder, {'train': 4, 'test': 2}, 'tfrecord')
    with pytest.raises(data.DataError, match='stored as tfrecord.*tfds build'):
        data.load_dataset('mnist', data_dir=str(tmp_path))


# ----------------------------------------------- TFDS via mock_data


class _FakeSource(collections.abc.Sequence):
    """Random-access source like tfds.data_source's, with unique images.

    Example i is a constant image of value 2 * i + 1 (train) or 2 * i (test), so
    examples can be told apart after normalisation; its label is
    i % num_classes.
    """

    def __init__(self, info, split, size):
        self.dataset_info = info
        self._shape = info.features['image'].shape
        self._num_classes = info.features['label'].num_classes
        self._offset = int(split == 'train')
        self._size = size

    def __len__(self):
        return self._size

    def __getitem__(self, i):
        if not 0 <= i < self._size:
            raise IndexError(i)
        value = 2 * i + self._offset
        return {'image': np.full(self._shape, value, np.uint8), 'label': np.int64(i % self._num_classes)}

    def __getitems__(self, keys):
        return [self[i] for i in keys]


def _mock_tfds(sizes):
    """`tfds.testing.mock_data` serving `_FakeSource`s of the given sizes.

    The default mock of tfds 4.9.10 breaks on the batched `__getitems__` read
    (its partial is not bound to the mock), hence `as_data_source_fn`.
    """

    def as_data_source(builder, split, decoders=None, **kwargs):
        del decoders, kwargs
        return _FakeSource(builder.info, split, sizes[split])

    return tfds.testing.mock_data(as_data_source_fn=as_data_source)


@pytest.mark.parametrize(
    'name,shape,num_classes,flip',
    [
        ('cifar10', (32, 32, 3), 10, True),
        ('cifar100', (32, 32, 3), 100, True),
        ('svhn_cropped', (32, 32, 3), 10, False),
        ('mnist', (28, 28, 1), 10, False),
    ],
)
def test_tfds_mocked(tmp_path, name, shape, num_classes, flip):
    with _mock_tfds({'train': 40, 'test': 12}):
        ds = data.load_dataset(name, data_dir=str(tmp_path), seed=0)
    assert ds.name == name and ds.num_classes == num_classes
    assert ds.augment and ds.flip == flip
    assert (len(ds.train_y), len(ds.val_y), len(ds.test_y)) == (20, 20, 12)
    for x, y in [(ds.train_x, ds.train_y), (ds.val_x, ds.val_y), (ds.test_x, ds.test_y)]:
        assert x.shape == (len(y),) + shape and x.dtype == np.float32
        assert y.dtype == np.int32 and y.min() >= 0 and y.max() < num_classes
    np.testing.assert_allclose(ds.train_x.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(ds.train_x.std(axis=(0, 1, 2)), 1, atol=1e-4)
    # Test split: official order. Train/val: a disjoint cover of 'train'.
    np.testing.assert_array_equal(ds.test_y, np.arange(12) % num_classes)
    ids = lambda x: np.round(x[:, 0, 0, 0], 3)  # unique value per example
    train_ids, val_ids = ids(ds.train_x), ids(ds.val_x)
    assert len(set(train_ids) | set(val_ids)) == 40


def test_tfds_mocked_seed_and_limit(tmp_path):
    with _mock_tfds({'train': 40, 'test': 12}):
        a = data.load_dataset('mnist', data_dir=str(tmp_path), seed=0)
        b = data.load_dataset('mnist', data_dir=str(tmp_path), seed=0)
        c = data.load_dataset('mnist', data_dir=str(tmp_path), seed=1)
        small = data.load_dataset('mnist', data_dir=str(tmp_path), limit=10, train_portion=0.6)
    np.testing.assert_array_equal(a.train_x, b.train_x)
    assert not np.array_equal(a.train_x, c.train_x)
    assert (len(small.train_y), len(small.val_y), len(small.test_y)) == (6, 4, 10)


# ------------------------------------- TFDS from real array_record files


def _write_metadata(builder, sizes, file_format):
    from tensorflow_datasets.core import splits as splits_lib

    os.makedirs(builder.data_dir, exist_ok=True)
    infos = [
        splits_lib.SplitInfo(
            name=split,
            shard_lengths=[n],
            num_bytes=0,
            filename_template=_template(builder, split, file_format),
        )
        for split, n in sizes.items()
    ]
    builder.info.set_splits(splits_lib.SplitDict(infos))
    builder.info.set_file_format(file_format, override=True)
    builder.info.write_to_directory(builder.data_dir)


def _template(builder, split, file_format):
    from tensorflow_datasets.core import naming

    return naming.ShardedFileTemplate(
        data_dir=builder.data_dir, dataset_name=builder.name, split=split, filetype_suffix=file_format
    )


def _write_array_record_set(data_dir, name, sizes):
    """A genuinely prepared set: PNG tf.Examples in array_record, + metadata.

    Example i of a split is a constant image of value 3 * i (+1 for train) with
    label i % 10. Needs no TensorFlow.
    """
    from array_record.python import array_record_module
    from PIL import Image
    from tensorflow_datasets.proto import tf_example_pb2

    builder = tfds.builder(name, data_dir=str(data_dir), try_gcs=False)
    shape = builder.info.features['image'].shape
    for split, n in sizes.items():
        path = _template(builder, split, 'array_record').sharded_filepath(shard_index=0, num_shards=1)
        os.makedirs(builder.data_dir, exist_ok=True)
        writer = array_record_module.ArrayRecordWriter(os.fspath(path), 'group_size:1')
        for i in range(n):
            image = np.full(shape, 3 * i + (split == 'train'), np.uint8)
            png = io.BytesIO()
            Image.fromarray(image[..., 0] if shape[-1] == 1 else image).save(png, format='PNG')
            example = tf_example_pb2.Example()
            feature = example.features.feature
            feature['image'].bytes_list.value.append(png.getvalue())
            feature['label'].int64_list.value.append(i % 10)
            if 'id' in builder.info.features:
                feature['id'].bytes_list.value.append(f'{split}_{i}'.encode())
            writer.write(example.SerializeToString())
        writer.close()
    _write_metadata(builder, sizes, 'array_record')


@pytest.mark.parametrize('name,shape', [('mnist', (28, 28, 1)), ('cifar10', (32, 32, 3))])
def test_tfds_real_array_record_files(tmp_path, name, shape):
    _write_array_record_set(tmp_path, name, {'train': 30, 'test': 7})
    ds = data.load_dataset(name, data_dir=str(tmp_path), seed=0)
    assert (len(ds.train_y), len(ds.val_y), len(ds.test_y)) == (15, 15, 7)
    assert ds.train_x.shape[1:] == shape and ds.num_classes == 10
    np.testing.assert_array_equal(ds.test_y, np.arange(7) % 10)
    # Constant images, increasing in i, survive decoding and normalisation.
    test_values = ds.test_x.reshape(7, -1)
    assert np.ptp(test_values, axis=1).max() < 1e-5
    assert np.all(np.diff(test_values[:, 0]) > 0)
    all_ids = np.concatenate([ds.train_x[:, 0, 0, 0], ds.val_x[:, 0, 0, 0]])
    assert len(np.unique(np.round(all_ids, 3))) == 30
    assert sorted(np.concatenate([ds.train_y, ds.val_y])) == sorted(np.arange(30) % 10)


# ---------------------------------------------------------- augment


def _images(n=6, h=5, w=7, c=2):
    return jnp.arange(n * h * w * c, dtype=jnp.float32).reshape(n, h, w, c) + 1


def test_augment_shape_jit_determinism():
    x = _images()
    fn = jax.jit(data.augment_batch, static_argnames=('pad', 'flip'))
    key = jax.random.key(0)
    out = fn(key, x, pad=2, flip=True)
    assert out.shape == x.shape and out.dtype == x.dtype
    np.testing.assert_array_equal(out, fn(key, x, pad=2, flip=True))
    np.testing.assert_array_equal(out, data.augment_batch(key, x, pad=2))
    assert not np.array_equal(out, fn(jax.random.key(1), x, pad=2, flip=True))


def test_augment_identity_without_pad_and_flip():
    x = _images()
    out = data.augment_batch(jax.random.key(3), x, pad=0, flip=False)
    np.testing.assert_array_equal(out, x)


def test_augment_flip_only_mirrors_or_keeps():
    x = _images(n=32)
    out = np.asarray(data.augment_batch(jax.random.key(4), x, pad=0, flip=True))
    x = np.asarray(x)
    kept = np.all(out == x, axis=(1, 2, 3))
    mirrored = np.all(out == x[:, :, ::-1], axis=(1, 2, 3))
    assert np.all(kept | mirrored)
    assert kept.any() and mirrored.any()


def test_augment_crop_is_shifted_window_of_padded_image():
    x = np.asarray(_images(n=16))
    pad = 2
    out = np.asarray(data.augment_batch(jax.random.key(5), jnp.asarray(x), pad=pad, flip=False))
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    h, w = x.shape[1:3]
    offsets = set()
    for i in range(len(x)):
        matches = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if np.array_equal(out[i], padded[i, dy : dy + h, dx : dx + w])
        ]
        assert matches
        offsets.add(matches[0])
    assert len(offsets) > 1  # per-example offsets


# ---------------------------------------------------------- batches


def test_batches_order_depends_only_on_seed_and_epoch():
    x = np.arange(103)[:, None].astype(np.float32)
    y = np.arange(103).astype(np.int32)
    run = lambda **kw: [b[1].tolist() for b in data.batches(x, y, 10, **kw)]
    first = run(seed=1, epoch=0)
    assert first == run(seed=1, epoch=0)
    assert first != run(seed=1, epoch=1)
    assert first != run(seed=2, epoch=0)
    assert len(first) == data.num_batches(103, 10) == 10
    seen = np.concatenate(first)
    assert len(seen) == 100 and len(set(seen)) == 100  # at most once
    for xb, yb in data.batches(x, y, 10, seed=1, epoch=0):
        np.testing.assert_array_equal(xb[:, 0], yb)  # pairs stay aligned
    full = run(seed=1, epoch=0, drop_last=False)
    assert len(full) == data.num_batches(103, 10, drop_last=False) == 11
    assert sorted(np.concatenate(full)) == list(range(103))
    assert full[:10] == first


def test_num_batches():
    assert data.num_batches(10, 5) == 2
    assert data.num_batches(9, 5) == 1
    assert data.num_batches(9, 5, drop_last=False) == 2
    assert data.num_batches(3, 5) == 0
    with pytest.raises(data.DataError):
        data.num_batches(3, 0)
