"""The interactive path of ``run_measure`` with the window replaced by an Agg figure
driven by synthetic events: CSV, PNG, saved corrections and their replay."""

from __future__ import annotations

import csv

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from kneemeasure.interactive import window
from kneemeasure.interactive.controller import MeasureController, SessionResult
from kneemeasure.interactive.events import click, drag, key
from kneemeasure.interactive.points import build_points_option
from kneemeasure.phantom import PhantomSpec, make_volume, write_series
from kneemeasure.pipeline import MeasureOptions, run_measure

SPEC = PhantomSpec(
    n_slices=5, rows=220, cols=180, row_spacing_mm=0.45, col_spacing_mm=0.6, extrusion_mm=2.5
)


def _fake_window(monkeypatch, script):
    """Replace the real window: same controller on an Agg figure, ``script(ctrl)`` acts."""
    seen = {}

    def run_session(volume, **kw) -> SessionResult:
        fig = Figure(figsize=(9.0, 8.6), dpi=60)
        FigureCanvasAgg(fig)
        ctrl = MeasureController(fig, volume, **kw)
        fig.canvas.draw()
        seen["ctrl"] = ctrl
        script(ctrl)
        return ctrl.result or SessionResult("skip", ctrl.index)

    monkeypatch.setattr(window, "check_display", lambda: "agg")
    monkeypatch.setattr(window, "run_session", run_session)
    return seen


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    d = tmp_path_factory.mktemp("ph")
    write_series(SPEC, d / "ph")
    return d / "ph", make_volume(SPEC)[1]


def test_corrected_session_writes_outputs_and_replays(phantom, tmp_path, monkeypatch):
    series_dir, truth = phantom

    def script(ctrl):
        assert ctrl.auto is not None  # detection pre-placed the markers
        drag(ctrl, tuple(ctrl.pts["meniscus"]), truth.meniscus_rc)
        drag(ctrl, tuple(ctrl.pts["plateau"]), truth.plateau_rc)
        key(ctrl, "a")

    seen = _fake_window(monkeypatch, script)
    corr = tmp_path / "corrections.csv"
    opts = MeasureOptions(
        profile=False, points=build_points_option(interactive=True, save_corrections=corr)
    )
    res = run_measure([series_dir], tmp_path / "out", opts)
    (m,) = res.measurements
    assert m.method == "auto+corrected" and m.status == "ok"
    assert seen["ctrl"].result.method == "auto+corrected"
    assert m.plateau_row_px == pytest.approx(truth.plateau_rc[0], abs=0.05)
    assert m.meniscus_col_px == pytest.approx(truth.meniscus_rc[1], abs=0.05)
    assert abs(m.extrusion_mm - truth.extrusion_mm) < 0.5
    (row,) = _rows(tmp_path / "out" / "measurements.csv")
    assert row["method"] == "auto+corrected"
    assert (tmp_path / "out" / row["png"]).stat().st_size > 10_000
    (c,) = _rows(corr)
    assert c["method"] == "auto+corrected" and c["side"] == "medial"
    assert c["plateau_direction_source"] == row["plateau_direction_source"]

    # replay: no window, same CSV
    opts2 = MeasureOptions(profile=False, points=build_points_option(points_file=corr))
    run_measure([series_dir], tmp_path / "replay", opts2)
    assert (tmp_path / "replay" / "measurements.csv").read_text() == (
        tmp_path / "out" / "measurements.csv"
    ).read_text()


def test_skip_keeps_the_automatic_row(phantom, tmp_path, monkeypatch):
    series_dir, _ = phantom
    _fake_window(monkeypatch, lambda ctrl: key(ctrl, "s"))
    opts = MeasureOptions(profile=False, points=build_points_option(interactive=True))
    run_measure([series_dir], tmp_path / "skip", opts)
    run_measure([series_dir], tmp_path / "auto", MeasureOptions(profile=False))
    assert (tmp_path / "skip" / "measurements.csv").read_text() == (
        tmp_path / "auto" / "measurements.csv"
    ).read_text()


def test_no_auto_session_asks_for_clicks(phantom, tmp_path, monkeypatch):
    series_dir, truth = phantom

    def script(ctrl):
        assert ctrl.auto is None and ctrl.active == "plateau"
        assert ctrl.index == truth.ref_index
        click(ctrl, *truth.plateau_rc)
        click(ctrl, *truth.meniscus_rc)
        key(ctrl, "a")

    _fake_window(monkeypatch, script)
    opts = MeasureOptions(
        slice_instance=truth.ref_instance_number,
        points=build_points_option(interactive=True, no_auto=True),
    )
    (m,) = run_measure([series_dir], tmp_path / "out", opts).measurements
    assert m.method == "manual" and m.plateau_direction_source == "image-row"
    assert m.extrusion_mm == pytest.approx(truth.extrusion_mm, abs=0.05)
