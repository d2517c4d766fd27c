"""Images moved by random offsets (wsjax.data.augment)."""

import numpy as np
import pytest

from wsjax import data
from wsjax.data.augment import shift_images, shifted_split


def test_shift_images_moves_each_image_within_the_bound_and_zero_fills():
    x = np.zeros((50, 9, 9, 1), np.float32)
    x[:, 4, 4, 0] = 1.0  # one lit pixel in the centre
    moved = shift_images(x, 2, seed=0)
    assert moved.shape == x.shape and moved.dtype == x.dtype
    offsets = set()
    for im in moved[..., 0]:
        (r,), (c,) = np.nonzero(im)
        assert im.sum() == 1.0 and abs(r - 4) <= 2 and abs(c - 4) <= 2
        offsets.add((r - 4, c - 4))
    assert len(offsets) > 10  # drawn independently per image
    np.testing.assert_array_equal(shift_images(x, 2, seed=0), moved)  # a function of the seed
    assert not np.array_equal(shift_images(x, 2, seed=1), moved)
    assert shift_images(x, 0, seed=0) is x
    sums = shift_images(np.ones((20, 4, 4, 1), np.float32), 1, seed=0).sum(axis=(1, 2, 3))
    assert set(sums) <= {16.0, 12.0, 9.0} and min(sums) < 16  # zero filled, never wrapped around
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError):
            shift_images(x, bad, seed=0)


def test_shifted_split_moves_the_data_set_with_offsets_per_split():
    x, y = data.load("lecun89_centred", "train", seed=3)
    xs, ys = shifted_split("lecun89_centred", "train", 3, 2)
    np.testing.assert_array_equal(ys, y)
    np.testing.assert_array_equal(xs, shift_images(x, 2, 3000))
    xt, _ = data.load("lecun89_centred", "test", seed=3)
    np.testing.assert_array_equal(shifted_split("lecun89_centred", "test", 3, 2)[0], shift_images(xt, 2, 3001))
    assert shifted_split("lecun89_centred", "train", 3, 0)[0] is x
    with pytest.raises(ValueError, match="split"):
        shifted_split("lecun89_centred", "val", 3, 2)
