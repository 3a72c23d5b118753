"""--points / --points-file parsing, corrections files and measure_from_points geometry."""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kneemeasure.cli import app
from kneemeasure.errors import KneeMeasureError, UsageError
from kneemeasure.interactive.points import (
    ManualPoints,
    build_points_option,
    check_inside,
    measure_from_points,
    parse_points,
    read_points_file,
    write_points_file,
)
from kneemeasure.models import Landmarks
from kneemeasure.phantom import PhantomSpec, make_volume, write_series

# ----------------------------------------------------------------------------- parsing


def test_parse_two_and_four_points():
    p = parse_points(" 120.5,80 ; 118,72 ")
    assert (p.plateau_rc, p.meniscus_rc, p.surface_rc) == ((120.5, 80.0), (118.0, 72.0), None)
    q = parse_points("1,2;3,4;5,6;7,8")
    assert q.surface_rc == ((5.0, 6.0), (7.0, 8.0))


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("1,2", "1 point(s) given"),
        ("1,2;3,4;5,6", "3 point(s) given"),
        ("1,2;3", "is not ROW,COL"),
        ("1,x;3,4", "is not a number"),
        ("1,nan;3,4", "not a finite number"),
        ("1,2;3,4;5,6;5,6", "coincide"),
    ],
)
def test_parse_errors_say_the_form(text, fragment):
    with pytest.raises(UsageError, match=re.escape(fragment)):
        parse_points(text)


def test_points_file_roundtrip(tmp_path):
    entries = [
        ManualPoints(
            (10.0, 20.0),
            (11.5, 25.25),
            series_instance_uid="1.2.3",
            side="medial",
            instance_number=7,
            method="auto+corrected",
            surface_rc=((12.0, 5.0), (10.0, 20.0)),
            direction_source="points",
            inner_from_detection=False,  # a written file always records the inner apex
        ),
        ManualPoints(
            (30.0, 40.0),
            (31.0, 35.0),
            series_instance_uid="1.2.3",
            side="lateral",
            instance_number=7,
            meniscus_inner_rc=(31.0, 50.0),
            direction_source="image-row",
            inner_from_detection=False,
        ),
    ]
    path = write_points_file(tmp_path / "corr.csv", entries)
    back = read_points_file(path)
    assert back == entries


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


BASE = [
    "series_instance_uid",
    "side",
    "instance_number",
    "plateau_row_px",
    "plateau_col_px",
    "meniscus_row_px",
    "meniscus_col_px",
]


def test_points_file_minimal_columns_use_detection_for_width(tmp_path):
    path = _write_csv(tmp_path / "c.csv", BASE, [["1.2", "medial", "3", "1", "2", "3", "4"]])
    (e,) = read_points_file(path)
    assert e.inner_from_detection and e.direction_source == "" and e.method == "manual"


@pytest.mark.parametrize(
    "header, row, fragment",
    [
        (BASE[:-1], ["1.2", "medial", "3", "1", "2", "3"], "missing column"),
        (BASE, ["1.2", "middle", "3", "1", "2", "3", "4"], "side must be"),
        (BASE, ["", "medial", "3", "1", "2", "3", "4"], "empty series_instance_uid"),
        (BASE, ["1.2", "medial", "x", "1", "2", "3", "4"], "not an integer"),
        (BASE, ["1.2", "medial", "3", "1", "2", "3", "?"], "is not a number"),
        (BASE + ["method"], ["1.2", "medial", "3", "1", "2", "3", "4", "auto"], "method must"),
        (BASE + ["surface1_row_px"], ["1.2", "medial", "3", "1", "2", "3", "4", "5"], "all four"),
    ],
)
def test_points_file_errors(tmp_path, header, row, fragment):
    path = _write_csv(tmp_path / "c.csv", header, [row])
    with pytest.raises(UsageError, match=fragment):
        read_points_file(path)


def test_points_file_duplicate_side(tmp_path):
    row = ["1.2", "medial", "3", "1", "2", "3", "4"]
    with pytest.raises(UsageError, match="second row"):
        read_points_file(_write_csv(tmp_path / "c.csv", BASE, [row, row]))


def test_option_conflicts():
    assert build_points_option() is None
    with pytest.raises(UsageError, match="not both"):
        build_points_option(points="1,2;3,4", points_file="x.csv")
    with pytest.raises(UsageError, match="needs landmarks"):
        build_points_option(no_auto=True)
    with pytest.raises(UsageError, match="--save-corrections"):
        build_points_option(save_corrections="c.csv")
    with pytest.raises(UsageError, match="without --points"):
        build_points_option(points="1,2;3,4", interactive=True)
    opt = build_points_option(points="1,2;3,4", no_auto=True)
    assert opt["given"]["meniscus_rc"] == [3.0, 4.0] and opt["no_auto"]


def test_check_inside():
    check_inside(ManualPoints((0, 0), (9.5, 19.5)), (10, 20), where="x")
    with pytest.raises(KneeMeasureError, match="outside the 10x20 image"):
        check_inside(ManualPoints((0, 0), (12, 4)), (10, 20), where="x")


# ----------------------------------------------------------------------------- geometry


def test_image_row_direction_anisotropic():
    # 6 columns at 0.25 mm outward; the 4-row offset (2 mm) is perpendicular and ignored
    lm, mme = measure_from_points(
        ManualPoints((10, 10), (6, 16)), row_spacing_mm=0.5, col_spacing_mm=0.25
    )
    assert mme == pytest.approx(1.5)
    assert lm.plateau_direction_source == "image-row" and lm.plateau_dir_rc == (0.0, 1.0)


def test_left_knee_outer_is_decreasing_column():
    _, mme = measure_from_points(
        ManualPoints((10, 10), (10, 4)),
        row_spacing_mm=0.5,
        col_spacing_mm=0.25,
        outer_col_sign=-1,
    )
    assert mme == pytest.approx(1.5)


def test_tilted_plateau_from_surface_points_anisotropic():
    # surface (0, 0) -> (6, 16) px = (3, 4) mm: u = (0.6, 0.8);
    # meniscus - margin = (4, 12) px = (2, 3) mm -> 0.6 * 2 + 0.8 * 3 = 3.6 mm
    mp = ManualPoints((10, 10), (14, 22), surface_rc=((0, 0), (6, 16)))
    lm, mme = measure_from_points(mp, row_spacing_mm=0.5, col_spacing_mm=0.25)
    assert lm.plateau_dir_rc == pytest.approx((0.6, 0.8))
    assert mme == pytest.approx(3.6)
    assert lm.plateau_direction_source == "points"
    assert lm.plateau_surface_rc == ((0, 0), (6, 16))
    # the order of the surface points does not matter (the direction is oriented outward)
    mp.surface_rc = ((6, 16), (0, 0))
    assert measure_from_points(mp, row_spacing_mm=0.5, col_spacing_mm=0.25)[1] == (
        pytest.approx(3.6)
    )


def test_detected_direction_and_width_used_when_no_surface_points():
    det = Landmarks((0, 0), (0, 0), (14.0, 2.0), (0.6, 0.8), 0.7)
    lm, mme = measure_from_points(
        ManualPoints((10, 10), (14, 22)), row_spacing_mm=0.5, col_spacing_mm=0.25, detected=det
    )
    assert mme == pytest.approx(3.6)
    assert lm.plateau_direction_source == "detected"
    assert lm.meniscus_inner_rc == (14.0, 2.0) and lm.confidence == 1.0
    # a recorded image-row direction ignores detection; a recorded "no width" too
    mp = ManualPoints((10, 10), (14, 22), direction_source="image-row", inner_from_detection=False)
    lm, mme = measure_from_points(mp, row_spacing_mm=0.5, col_spacing_mm=0.25, detected=det)
    assert mme == pytest.approx(3.0) and lm.meniscus_inner_rc is None
    with pytest.raises(KneeMeasureError, match="detected"):
        measure_from_points(
            ManualPoints((10, 10), (14, 22), direction_source="detected"),
            row_spacing_mm=0.5,
            col_spacing_mm=0.25,
        )


def test_ultrasound_distance_toward_the_skin():
    # cortex line horizontal through (50, 10); meniscus 4 rows above (toward the skin) at 0.1 mm
    _, mme = measure_from_points(
        ManualPoints((50, 10), (46, 30)), row_spacing_mm=0.1, col_spacing_mm=0.2, modality="US"
    )
    assert mme == pytest.approx(0.4)
    # tilted cortex given by two points: 45 degrees in mm; distance = |(-0.4, 2.0) x u|
    mp = ManualPoints((50, 10), (46, 20), surface_rc=((50, 10), (40, 15)))
    _, mme = measure_from_points(mp, row_spacing_mm=0.1, col_spacing_mm=0.2, modality="US")
    u = (-1 / math.sqrt(2), 1 / math.sqrt(2))
    d = (-0.4, 2.0)
    assert abs(mme) == pytest.approx(abs(d[0] * u[1] - d[1] * u[0]))


SPEC = PhantomSpec(
    n_slices=4,
    rows=220,
    cols=180,
    row_spacing_mm=0.4,
    col_spacing_mm=0.7,
    plateau_tilt_deg=8.0,
    extrusion_mm=3.3,
)


def test_phantom_truth_landmarks_give_truth_mme():
    _, t = make_volume(SPEC)
    u = t.plateau_dir_rc
    inner = (
        t.plateau_rc[0] - 10 * u[0] / SPEC.row_spacing_mm,
        t.plateau_rc[1] - 10 * u[1] / SPEC.col_spacing_mm,
    )
    mp = ManualPoints(t.plateau_rc, t.meniscus_rc, surface_rc=(inner, t.plateau_rc))
    _, mme = measure_from_points(
        mp,
        row_spacing_mm=SPEC.row_spacing_mm,
        col_spacing_mm=SPEC.col_spacing_mm,
        outer_col_sign=t.medial_col_sign,
    )
    assert mme == pytest.approx(t.extrusion_mm, abs=0.05)


# ----------------------------------------------------------------------------- CLI


def _csv_row(path: Path) -> dict[str, str]:
    with open(path, newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    return row


def test_cli_points_on_phantom_tilted_anisotropic(tmp_path):
    write_series(SPEC, tmp_path / "ph")
    _, t = make_volume(SPEC)
    u = t.plateau_dir_rc
    s1 = (
        t.plateau_rc[0] - 12 * u[0] / SPEC.row_spacing_mm,
        t.plateau_rc[1] - 12 * u[1] / SPEC.col_spacing_mm,
    )
    pts = ";".join(f"{r!r},{c!r}" for r, c in (t.plateau_rc, t.meniscus_rc, s1, t.plateau_rc))
    res = CliRunner().invoke(
        app,
        [
            "measure",
            str(tmp_path / "ph"),
            "-o",
            str(tmp_path / "out"),
            "-q",
            "--no-auto",
            "--slice",
            str(t.ref_instance_number),
            "--points",
            pts,
        ],
    )
    assert res.exit_code == 0, res.output
    row = _csv_row(tmp_path / "out" / "measurements.csv")
    assert abs(float(row["extrusion_mm"]) - t.extrusion_mm) < 0.05
    assert row["method"] == "manual"
    assert row["plateau_direction_source"] == "points"
    assert row["status"] == "ok" and row["max_extrusion_mm"] == ""
    assert int(row["instance_number"]) == t.ref_instance_number
    assert (tmp_path / "out" / row["png"]).is_file()

    # the same points from a file (naming the slice itself) give the same row
    write_points_file(
        tmp_path / "c.csv",
        [
            ManualPoints(
                t.plateau_rc,
                t.meniscus_rc,
                surface_rc=(s1, t.plateau_rc),
                series_instance_uid=row["series_instance_uid"],
                side="medial",
                instance_number=t.ref_instance_number,
            )
        ],
    )
    res = CliRunner().invoke(
        app,
        [
            "measure",
            str(tmp_path / "ph"),
            "-o",
            str(tmp_path / "out2"),
            "-q",
            "--no-auto",
            "--points-file",
            str(tmp_path / "c.csv"),
        ],
    )
    assert res.exit_code == 0, res.output
    row2 = _csv_row(tmp_path / "out2" / "measurements.csv")
    assert row2["extrusion_mm"] == row["extrusion_mm"]

    # without surface points and detection the image row is used: wrong on a tilted plateau
    res = CliRunner().invoke(
        app,
        [
            "measure",
            str(tmp_path / "ph"),
            "-o",
            str(tmp_path / "out3"),
            "-q",
            "--no-auto",
            "--slice",
            str(t.ref_instance_number),
            "--points",
            pts.rsplit(";", 2)[0],
        ],
    )
    assert res.exit_code == 0, res.output
    row3 = _csv_row(tmp_path / "out3" / "measurements.csv")
    assert row3["plateau_direction_source"] == "image-row"
    assert abs(float(row3["extrusion_mm"]) - t.extrusion_mm) > 0.2


def test_cli_usage_errors(tmp_path):
    (tmp_path / "x").mkdir()
    r = CliRunner().invoke(app, ["measure", str(tmp_path / "x"), "--points", "1,2"])
    assert r.exit_code == 2 and "PLATEAU_ROW" in r.output
    r = CliRunner().invoke(app, ["measure", str(tmp_path / "x"), "--points-file", "nope.csv"])
    assert r.exit_code == 2 and "no such file" in r.output
