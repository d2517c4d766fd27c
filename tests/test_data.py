import gzip
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from wsjax import data
from wsjax.data.idx import read_idx


def _write_idx(path, array, code=0x08):
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(">u1" if code == 0x08 else ">f4").tobytes())


def _fake_mnist_folder(root, name="mnist", n=(12, 5)):
    folder = os.path.join(root, name)
    os.makedirs(folder)
    rng = np.random.default_rng(0)
    for split, count in zip(("train", "t10k"), n):
        _write_idx(os.path.join(folder, f"{split}-images-idx3-ubyte.gz"), rng.integers(0, 256, (count, 28, 28)))
        _write_idx(os.path.join(folder, f"{split}-labels-idx1-ubyte.gz"), rng.integers(0, 10, count))
    return folder


def test_fashion_mnist_offline_is_complete(offline):
    x, y = data.load("fashion_mnist", "train")
    xt, yt = data.load("fashion_mnist", "test")
    assert x.shape == (60000, 28, 28, 1) and x.dtype == np.float32
    assert xt.shape == (10000, 28, 28, 1) and yt.dtype == np.int32
    assert 0.0 == x.min() and x.max() == 1.0
    np.testing.assert_array_equal(np.bincount(y), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(yt), np.full(10, 1000))
    with pytest.raises(ValueError):
        x[0, 0, 0, 0] = 1.0  # shared cache is read-only


def test_digits_and_lecun89_protocol():
    x, y = data.load("digits", "train")
    xt, _ = data.load("digits", "test")
    assert x.shape == (1437, 8, 8, 1) and xt.shape == (360, 8, 8, 1)
    for name in ("lecun89", "lecun89_centred"):
        tr0, te0 = data.load(name, "train", seed=0), data.load(name, "test", seed=0)
        tr1 = data.load(name, "train", seed=1)
        assert tr0[0].shape == (320, 16, 16, 1) and te0[0].shape == (160, 16, 16, 1)
        assert 0.0 <= tr0[0].min() and tr0[0].max() <= 1.0
        flat = lambda a: {a[i].tobytes() for i in range(len(a))}
        assert not flat(tr0[0]) & flat(te0[0]), "train and test of one seed must be disjoint"
        assert flat(tr0[0]) != flat(tr1[0]), "a different seed must draw a different split"
    # a pure function of the seed: recomputed past every cache, the same arrays
    from wsjax.data import lecun89

    np.testing.assert_array_equal(lecun89._positions.__wrapped__(0)[0][0], data.load("lecun89", "train", seed=0)[0])
    np.testing.assert_array_equal(lecun89.centred_split("test", 0)[0], data.load("lecun89_centred", "test", seed=0)[0])


def test_idx_files_from_data_dir(tmp_path, offline):
    _fake_mnist_folder(str(tmp_path))
    x, y = data.load("mnist", "train", data_dir=str(tmp_path))
    assert x.shape == (12, 28, 28, 1) and y.shape == (12,)
    assert data.load("mnist", "test", data_dir=str(tmp_path))[0].shape == (5, 28, 28, 1)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda raw: raw[:-7], "data bytes"),
        (lambda raw: b"\x01\x02" + raw[2:], "bad magic"),
        (lambda raw: raw[:6], "header"),
    ],
)
def test_corrupt_idx_is_a_clear_error(tmp_path, mutate, message):
    path = tmp_path / "x-idx1-ubyte"
    raw = bytes([0, 0, 8, 1]) + np.asarray([20], ">u4").tobytes() + bytes(range(20))
    path.write_bytes(mutate(raw))
    with pytest.raises(ValueError, match=message):
        read_idx(path)


def test_unknown_names_and_bad_arguments():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'.*fashion_mnist"):
        data.load("imagenet", "train")
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        data.load("digits", "validation")
    with pytest.raises(ValueError, match="seed"):
        data.load("digits", "train", seed=-1)


def test_missing_dataset_names_every_source_and_the_fix(offline):
    with pytest.raises(data.DatasetNotFoundError) as err:
        data.load("mnist", "train")
    msg = str(err.value)
    for part in ("TFDS prepared data", "WSJAX_DATA_DIR", "TFDS download (disabled", "To fix", "tfds.data_source('mnist'"):
        assert part in msg


def test_tfds_path_with_mock_data(monkeypatch):
    monkeypatch.delenv("WSJAX_OFFLINE", raising=False)
    monkeypatch.delenv("WSJAX_DATA_DIR", raising=False)
    with tfds.testing.mock_data(num_examples=9):
        x, y = data.load("mnist", "test", seed=3)
        assert x.shape == (9, 28, 28, 1) and x.dtype == np.float32 and y.dtype == np.int32
        assert 0.0 <= x.min() and x.max() <= 1.0
        xc, yc = data.load("cifar10", "train", seed=3)
        assert xc.shape == (9, 32, 32, 3) and yc.min() >= 0 and yc.max() <= 9
