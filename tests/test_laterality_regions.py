"""The fibula vote's region properties equal scikit-image's ``regionprops``.

``kneemeasure.detect.laterality`` computes area, bounding box, centroid,
eccentricity and solidity itself (``regionprops`` imports ``scipy.spatial`` on
every start of the command); the vote's thresholds (eccentricity > 0.9,
solidity < 0.8) must see the same numbers.
"""

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.measure import regionprops

from kneemeasure.detect.laterality import _convex_hull_image, _hull_2d, _regions


def _compare(lab: np.ndarray) -> int:
    ours = _regions(lab)
    ref = regionprops(lab)
    assert [r.label for r in ours] == [r.label for r in ref]
    for a, b in zip(ours, ref, strict=True):
        assert a.area == b.area
        assert a.bbox == tuple(b.bbox)
        np.testing.assert_allclose(a.centroid, b.centroid, rtol=0, atol=1e-9)
        np.testing.assert_array_equal(a.coords, b.coords)
        assert a.eccentricity == pytest.approx(b.eccentricity, abs=1e-9)
        assert a.solidity == pytest.approx(b.solidity, abs=1e-12)
    return len(ours)


def test_random_blobs_match_regionprops():
    rng = np.random.default_rng(3)
    n = 0
    for seed in range(12):
        noise = ndi.gaussian_filter(rng.standard_normal((90, 110)), 2.0 + seed % 4)
        lab, _ = ndi.label(noise > 0.02 * (seed - 6))
        n += _compare(lab)
    assert n > 100  # many shapes: concave, thin, touching the border


def test_small_and_degenerate_regions_match_regionprops():
    lab = np.zeros((20, 30), int)
    lab[2, 2] = 1  # one pixel
    lab[5, 3:12] = 2  # a horizontal line
    lab[8:18, 20] = 3  # a vertical line
    lab[10, 5], lab[11, 6], lab[12, 7], lab[13, 8] = 4, 4, 4, 4  # a diagonal (8-connected)
    lab[15:19, 10:14] = 5
    lab[16:18, 11:13] = 0  # a ring
    assert _compare(lab) == 5


def test_hull_of_a_square_is_its_corners():
    pts = np.array([[0, 0], [0, 2], [2, 2], [2, 0], [1, 1], [0, 1], [1, 0]], float)
    assert sorted(map(tuple, _hull_2d(pts))) == [(0, 0), (0, 2), (2, 0), (2, 2)]


def test_convex_hull_image_of_an_l_shape():
    img = np.zeros((6, 6), bool)
    img[1:5, 1] = True
    img[4, 1:5] = True
    hull = _convex_hull_image(img)
    # the triangle (1,1)-(4,1)-(4,4) filled, borders included
    expected = np.zeros_like(img)
    for r in range(1, 5):
        expected[r, 1 : r + 1] = True
    np.testing.assert_array_equal(hull, expected)
