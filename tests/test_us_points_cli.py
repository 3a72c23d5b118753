"""`measure --points` on a real ultrasound file: mm from the region calibration, by hand."""

from __future__ import annotations

import csv
import math

import pydicom
import pytest
from typer.testing import CliRunner

from kneemeasure.cli import app

runner = CliRunner()


def test_points_on_real_ultrasound_use_region_calibration(realdata, tmp_path):
    path = realdata / "dicom_robustness" / "pydicom_data" / "JPGLosslessP14SV1_1s_1f_8b.dcm"
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    (region,) = ds.SequenceOfUltrasoundRegions
    assert region.PhysicalUnitsXDirection == 3 and region.PhysicalUnitsYDirection == 3  # cm
    dy_mm, dx_mm = region.PhysicalDeltaY * 10, region.PhysicalDeltaX * 10
    # tibial point (300, 200), tibial line along (0, +1) -> plus two surface points,
    # meniscus 40 rows above and 40 columns right of it
    pts = "300,200;260,240;300,150;302,250"
    r = runner.invoke(app, ["measure", str(path), "--points", pts, "-o", str(tmp_path), "-q"])
    assert r.exit_code == 0, r.output
    (row,) = list(csv.DictReader(open(tmp_path / "measurements.csv", encoding="utf-8")))
    # by hand: perpendicular distance, in mm, from (260, 240) to the line through (300, 200)
    # with direction (2 rows, 100 cols), positive toward the skin (smaller rows)
    ux, uy = 100 * dx_mm, 2 * dy_mm  # line direction in mm (col, row)
    n = math.hypot(ux, uy)
    px, py = (240 - 200) * dx_mm, (260 - 300) * dy_mm
    expected = -(ux * py - uy * px) / n  # cross product; minus: up is toward the skin
    assert float(row["extrusion_mm"]) == pytest.approx(expected, abs=1e-3)
    assert float(row["row_spacing_mm"]) == pytest.approx(dy_mm, rel=1e-6)
    assert row["spacing_source"] == "US regions"
    assert row["method"] == "manual" and row["plateau_direction_source"] == "points"
    assert row["modality"] == "US"
