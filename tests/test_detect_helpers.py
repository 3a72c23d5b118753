"""Tiny hand-computable checks of the detection helpers."""

import numpy as np
import pytest

from kneemeasure.detect.joint import to_isotropic
from kneemeasure.detect.meniscus import subpixel_crossing
from kneemeasure.detect.tibia import fit_line_robust, intersect_lines, up_normal_of


def test_subpixel_crossing_step_between_samples():
    assert subpixel_crossing(np.array([0.0, 0.0, 1.0, 1.0]), level=0.5, start=0) == 1.5


def test_subpixel_crossing_quarter_and_backwards():
    prof = np.array([0.0, 0.0, 4.0, 4.0])
    assert subpixel_crossing(prof, level=1.0, start=0) == pytest.approx(1.25)
    assert subpixel_crossing(prof, level=1.0, start=3, direction=-1) == pytest.approx(1.25)


def test_subpixel_crossing_none_when_flat():
    assert subpixel_crossing(np.ones(5), level=0.5, start=0) is None


def test_intersect_vertical_and_horizontal_lines():
    r, c = intersect_lines(np.array([3.0, 0.0]), np.array([0.0, 1.0]),
                           np.array([0.0, 7.0]), np.array([1.0, 0.0]))
    assert (r, c) == pytest.approx((3.0, 7.0))


def test_intersect_parallel_raises():
    with pytest.raises(ValueError):
        intersect_lines(np.zeros(2), np.array([0.0, 1.0]), np.ones(2), np.array([0.0, 2.0]))


def test_robust_line_ignores_osteophyte_like_outliers():
    rows = np.arange(10.0)
    cols = 5.0 + 0.5 * rows
    cols[:2] -= 4.0  # a spur protruding outward at the top
    line = fit_line_robust(np.column_stack([rows, cols]))
    slope = line.direction[1] / line.direction[0]
    assert slope == pytest.approx(0.5, abs=1e-6)
    assert line.n_inliers == 8
    assert line.rms_mm == pytest.approx(0.0, abs=1e-9)


def test_up_normal_points_to_decreasing_row():
    n = up_normal_of(np.array([0.0, -1.0]))
    assert n == pytest.approx([-1.0, 0.0])
    n = up_normal_of(np.array([0.6, 0.8]))
    assert n[0] < 0 and abs(n @ [0.6, 0.8]) < 1e-12


def test_to_isotropic_maps_points_back_with_anisotropic_pixels():
    img = np.zeros((64, 10), np.float32)
    img[32, 5] = 1.0
    iso = to_isotropic(img, row_spacing_mm=0.25, col_spacing_mm=1.5, step_mm=0.5)
    assert iso.data.shape == (32, 28)
    assert iso.to_original((16.0, 15.0)) == pytest.approx((32.0, 5.0))


def test_main_run_drops_a_band_above_the_bone_and_keeps_texture_holes():
    from kneemeasure.detect.joint import _main_run

    m = np.zeros((12, 8), bool)
    m[5:12, :] = True  # bone
    m[1:3, 1:7] = True  # a cartilage band over it
    m[:, 0] = True  # touching the bone along one side (a spine)
    m[8, 4] = False  # a one-pixel texture hole inside the marrow
    out = _main_run(m)
    assert not out[1:3, 1:7].any()
    assert out[5:12, 1:].sum() == 7 * 7  # the hole is filled, the bone is whole
    assert out[:, 0].all()  # the column that is one run stays


def test_fill_rows_between_the_first_and_last_pixel():
    from kneemeasure.detect.joint import fill_rows

    m = np.array([[0, 1, 0, 1, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]], bool)
    want = np.array([[0, 1, 1, 1, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]], bool)
    assert np.array_equal(fill_rows(m), want)


def test_holes_equal_scipy_fill_holes_labelling():
    from scipy import ndimage as ndi

    from kneemeasure.detect.joint import _holes

    rng = np.random.default_rng(1)
    for k in range(120):
        shape = (int(rng.integers(1, 50)), int(rng.integers(1, 50)))
        m = ndi.gaussian_filter(rng.standard_normal(shape), rng.uniform(0.5, 3)) > rng.uniform(
            -0.3, 0.3
        )
        ref, n_ref = ndi.label(ndi.binary_fill_holes(m) & ~m)
        got, n_got = _holes(m)
        assert n_got == n_ref and np.array_equal(got, ref), k
    ring = np.zeros((7, 7), bool)
    ring[1:6, 1:6] = True
    ring[3, 3] = False  # one hole; the outside is not a hole
    got, n = _holes(ring)
    assert n == 1 and got[3, 3] == 1 and got.sum() == 1


def test_tibia_profiles_in_one_call_equal_one_call_each():
    """trace_margin samples all its profiles at once; the values must not change."""
    from scipy import ndimage as ndi

    from kneemeasure.detect.tibia import mean_profiles, sample_mm

    rng = np.random.default_rng(2)
    image = ndi.gaussian_filter(rng.random((80, 90)).astype(np.float32), 2.0)
    kw = dict(row_spacing_mm=0.4, col_spacing_mm=0.3)
    t = np.arange(-5.0, 6.0 + 1e-9, 0.05)
    along, across = np.array([-0.8, 0.6]), np.array([0.6, 0.8])
    bases = np.array([[15.0, 12.0], [16.5, 13.2], [14.0, 11.0]])
    one = []
    for base in bases:
        acc = 0.0
        for o in (-0.4, 0.0, 0.4):
            b = base + o * across
            acc = acc + sample_mm(image, b[0] + t * along[0], b[1] + t * along[1], **kw)
        one.append(ndi.gaussian_filter1d(acc / 3.0, 1.0))
    many = mean_profiles(image, bases, along=along, across=across, t_mm=t, **kw)
    np.testing.assert_array_equal(many, np.array(one))
