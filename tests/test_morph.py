"""Disk morphology (kneemeasure.detect.morph) equals scipy.ndimage's, pixel for pixel."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from kneemeasure.detect.morph import (
    binary_dilation_disk,
    binary_erosion_disk,
    binary_opening_disk,
    disk,
)


def _masks():
    rng = np.random.default_rng(7)
    for shape, sigma, level in (((64, 80), 2.0, 0.0), ((41, 23), 1.0, -0.2), ((90, 90), 4.0, 0.1),
                                ((7, 50), 1.0, 0.0), ((50, 7), 1.5, -0.1)):  # fmt: skip
        yield ndi.gaussian_filter(rng.standard_normal(shape), sigma) > level
    yield np.ones((30, 40), bool)  # erosion at the border: outside is background
    yield np.zeros((30, 40), bool)
    one = np.zeros((25, 25), bool)
    one[12, 12] = True
    yield one


@pytest.mark.parametrize("radius", [1, 2, 3, 4, 6, 9, 30])
def test_erosion_dilation_opening_equal_scipy(radius):
    st = disk(radius)
    for mask in _masks():
        np.testing.assert_array_equal(binary_erosion_disk(mask, radius),
                                      ndi.binary_erosion(mask, structure=st))  # fmt: skip
        np.testing.assert_array_equal(
            binary_erosion_disk(mask, radius, border_value=1),
            ndi.binary_erosion(mask, structure=st, border_value=1),
        )
        np.testing.assert_array_equal(binary_dilation_disk(mask, radius),
                                      ndi.binary_dilation(mask, structure=st))  # fmt: skip
        np.testing.assert_array_equal(binary_opening_disk(mask, radius),
                                      ndi.binary_opening(mask, structure=st))  # fmt: skip


def test_hand_computed_square():
    mask = np.zeros((9, 9), bool)
    mask[1:8, 1:8] = True  # a 7x7 square
    # the radius-3 disk fits only at the centre
    expected = np.zeros_like(mask)
    expected[4, 4] = True
    np.testing.assert_array_equal(binary_erosion_disk(mask, 3), expected)
    # opening by it leaves that one disk (7 + 5 + 5 + 5 + 5 + 1 + 1 = 29 pixels)
    opened = binary_opening_disk(mask, 3)
    assert opened[4, 1] and opened[1, 4] and not opened[1, 1] and opened.sum() == 29


def test_disk_footprint():
    assert disk(1).sum() == 5 and disk(2).sum() == 13 and disk(3).sum() == 29
    assert disk(6).sum() == 113
