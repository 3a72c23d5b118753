"""Hand-computed cases for the construction geometry (mm, anisotropic pixels, tilt)."""

import math

import numpy as np
import pytest

from kneemeasure.errors import KneeMeasureError
from kneemeasure.measure import (
    extrusion_mm,
    foot_on_line_px,
    measure_construction,
    perpendicular_line_px,
    plateau_direction_from_points,
    signed_distance_to_line,
)


def test_horizontal_plateau_isotropic():
    # 6 columns outward at 0.5 mm = 3.0 mm; the 2-row offset is perpendicular and ignored.
    assert extrusion_mm(
        (10, 10), (12, 16), plateau_dir_rc=(0.0, 1.0), row_spacing_mm=0.5, col_spacing_mm=0.5
    ) == pytest.approx(3.0)


def test_meniscus_inside_margin_is_negative():
    assert extrusion_mm(
        (10, 10), (10, 6), plateau_dir_rc=(0.0, 1.0), row_spacing_mm=0.5, col_spacing_mm=0.5
    ) == pytest.approx(-2.0)


def test_outward_toward_decreasing_column():
    # medial on image left: outward = (0, -1); 8 columns to the left at 0.4 mm = 3.2 mm.
    assert extrusion_mm(
        (50, 40), (51, 32), plateau_dir_rc=(0.0, -1.0), row_spacing_mm=0.4, col_spacing_mm=0.4
    ) == pytest.approx(3.2)


def test_anisotropic_uses_column_spacing_for_horizontal_step():
    # Pixel Spacing [row, col] = [0.3125, 1.5]: 2 columns = 3.0 mm, not 0.625 mm.
    assert extrusion_mm(
        (100, 20), (100, 22), plateau_dir_rc=(0.0, 1.0), row_spacing_mm=0.3125, col_spacing_mm=1.5
    ) == pytest.approx(3.0)
    # the same displacement along rows would be 0.625 mm
    assert extrusion_mm(
        (20, 100), (22, 100), plateau_dir_rc=(1.0, 0.0), row_spacing_mm=0.3125, col_spacing_mm=1.5
    ) == pytest.approx(0.625)


def test_tilted_plateau_projection():
    # Plateau tilted 30 deg: outward direction (row_mm, col_mm) = (sin30, cos30).
    u = (math.sin(math.radians(30)), math.cos(math.radians(30)))
    # meniscus 4 mm along the plateau and 1 mm perpendicular to it, isotropic 0.5 mm
    perp = (u[1], -u[0])
    d_mm = 4 * np.array(u) + 1 * np.array(perp)
    m = (10 + d_mm[0] / 0.5, 10 + d_mm[1] / 0.5)
    assert extrusion_mm(
        (10, 10), m, plateau_dir_rc=u, row_spacing_mm=0.5, col_spacing_mm=0.5
    ) == pytest.approx(4.0)


def test_tilted_plateau_anisotropic_direction_from_points():
    # Two plateau points 10 cols and 2 rows apart at row 0.6 mm, col 0.3 mm:
    # physical (1.2, 3.0) -> direction (1.2, 3.0)/|.|
    u = plateau_direction_from_points(
        (50, 40), (52, 50), row_spacing_mm=0.6, col_spacing_mm=0.3, outer_col_sign=+1
    )
    assert u == pytest.approx(np.array([1.2, 3.0]) / math.hypot(1.2, 3.0))
    # oriented to the outer side even if points are given in reverse order
    u2 = plateau_direction_from_points(
        (52, 50), (50, 40), row_spacing_mm=0.6, col_spacing_mm=0.3, outer_col_sign=+1
    )
    assert u2 == pytest.approx(u)
    # meniscus exactly 5 mm along u from the margin
    m = (60 + 5 * u[0] / 0.6, 30 + 5 * u[1] / 0.3)
    assert extrusion_mm(
        (60, 30), m, plateau_dir_rc=u, row_spacing_mm=0.6, col_spacing_mm=0.3
    ) == pytest.approx(5.0)


def test_width_relative_and_threshold_inclusive():
    r = measure_construction(
        (10, 10),
        (10, 16),
        meniscus_inner_rc=(10, -4),
        plateau_dir_rc=(0.0, 1.0),
        row_spacing_mm=0.5,
        col_spacing_mm=0.5,
        threshold_mm=3.0,
    )
    assert r.extrusion_mm == pytest.approx(3.0)
    assert r.meniscal_width_mm == pytest.approx(10.0)
    assert r.relative_extrusion_pct == pytest.approx(30.0)
    assert r.extruded is True  # >= threshold
    r2 = measure_construction(
        (10, 10), (10, 15.9), plateau_dir_rc=(0.0, 1.0), row_spacing_mm=0.5, col_spacing_mm=0.5
    )
    assert r2.extruded is False and r2.meniscal_width_mm is None


def test_us_point_line_distance_toward_skin():
    # horizontal tibial line at row 100; meniscus point at row 80 (superficial), 0.1 mm pixels
    d = signed_distance_to_line(
        (80, 50),
        (100, 10),
        line_dir_rc=(0.0, 1.0),
        positive_rc=(-1.0, 0.0),
        row_spacing_mm=0.1,
        col_spacing_mm=0.2,
    )
    assert d == pytest.approx(2.0)
    deeper = signed_distance_to_line(
        (105, 50),
        (100, 10),
        line_dir_rc=(0.0, 1.0),
        positive_rc=(-1.0, 0.0),
        row_spacing_mm=0.1,
        col_spacing_mm=0.2,
    )
    assert deeper == pytest.approx(-0.5)


def test_perpendicular_line_is_perpendicular_in_mm():
    u = np.array([0.6, 0.8])
    a, b = perpendicular_line_px(
        (10, 10), plateau_dir_rc=u, half_length_mm=5, row_spacing_mm=0.5, col_spacing_mm=0.25
    )
    d_mm = np.array([(b[0] - a[0]) * 0.5, (b[1] - a[1]) * 0.25])
    assert d_mm @ u == pytest.approx(0.0, abs=1e-9)
    assert np.hypot(*d_mm) == pytest.approx(10.0)


def test_foot_on_line():
    f = foot_on_line_px(
        (80, 50), (100, 10), line_dir_rc=(0.0, 1.0), row_spacing_mm=0.1, col_spacing_mm=0.2
    )
    assert f == pytest.approx(np.array([100.0, 50.0]))


@pytest.mark.parametrize("bad", [0.0, -0.5, float("nan")])
def test_bad_spacing_raises(bad):
    with pytest.raises(KneeMeasureError, match="spacing"):
        extrusion_mm((0, 0), (1, 1), plateau_dir_rc=(0, 1), row_spacing_mm=bad, col_spacing_mm=0.5)
