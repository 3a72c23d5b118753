"""The interactive controller driven by synthetic matplotlib events on an Agg figure."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from kneemeasure.interactive.controller import MeasureController
from kneemeasure.interactive.events import click, drag, key, scroll
from kneemeasure.interactive.points import ManualPoints, measure_from_points
from kneemeasure.models import Landmarks

RS, CS = 0.5, 0.25  # anisotropic: rows 0.5 mm apart, columns 0.25 mm apart


def _volume(n: int = 3) -> np.ndarray:
    rng = np.random.default_rng(0)
    vol = rng.normal(100.0, 10.0, size=(n, 60, 120)).astype(np.float32)
    for k in range(n):
        vol[k, 30:, :] += 50.0 * (k + 1)  # slices differ
    return vol


def _auto(index_shift: float = 0.0) -> Landmarks:
    return Landmarks(
        plateau_rc=(30.0 + index_shift, 60.0),
        meniscus_rc=(26.0 + index_shift, 72.0),
        meniscus_inner_rc=(25.0, 40.0),
        plateau_dir_rc=(0.0, 1.0),
        confidence=0.8,
    )


def _make(auto=None, detect=None, n=3, **kw) -> MeasureController:
    fig = Figure(figsize=(6, 6), dpi=80)
    FigureCanvasAgg(fig)
    done = []
    ctrl = MeasureController(
        fig,
        _volume(n),
        index=1,
        row_spacing_mm=RS,
        col_spacing_mm=CS,
        outer_col_sign=+1,
        auto=auto,
        detect=detect,
        instance_numbers=[11, 12, 13][:n],
        on_done=done.append,
        **kw,
    )
    ctrl._done = done
    fig.canvas.draw()
    return ctrl


def _marker(ctrl, style):
    """Data position (row, col) of the construction marker drawn with ``style``."""
    found = [ln for ln in ctrl.ax.lines if ln.get_marker() == style]
    assert found, f"no {style!r} marker drawn"
    xs, ys = found[-1].get_data()
    return float(np.ravel(ys)[0]), float(np.ravel(xs)[0])


def test_clicks_in_order_without_detection_then_accept():
    ctrl = _make()
    assert ctrl.active == "plateau"
    assert "TIBIAL MARGIN" in ctrl.prompt_artist.get_text()
    click(ctrl, 30.0, 60.0)
    assert ctrl.active == "meniscus"
    assert "OUTER EDGE" in ctrl.prompt_artist.get_text()
    click(ctrl, 27.0, 72.0)
    assert ctrl.active is None
    np.testing.assert_allclose(ctrl.pts["plateau"], (30.0, 60.0), atol=1e-6)
    np.testing.assert_allclose(ctrl.pts["meniscus"], (27.0, 72.0), atol=1e-6)
    # image-row direction: 12 columns x 0.25 mm = 3.0 mm -> extruded at the inclusive 3 mm cut-off
    assert ctrl.title_artist.get_text().startswith("MME 3.0 mm")
    assert "EXTRUDED" in ctrl.title_artist.get_text()
    key(ctrl, "a")
    res = ctrl._done[0]
    assert res is ctrl.result
    assert (res.action, res.method, res.index) == ("accept", "manual", 1)
    assert res.points.instance_number == 12
    assert res.landmarks.plateau_direction_source == "image-row"
    assert res.points.direction_source == "image-row"
    assert res.landmarks.plateau_rc == pytest.approx((30.0, 60.0), abs=1e-3)


def test_accept_before_both_points_refuses():
    ctrl = _make()
    click(ctrl, 30.0, 60.0)
    key(ctrl, "enter")
    assert ctrl.result is None
    assert "before accepting" in ctrl.prompt_artist.get_text()


def test_drag_meniscus_redraws_value_and_marks_corrected():
    ctrl = _make(auto=_auto())
    assert ctrl.method() == "auto"
    assert ctrl.title_artist.get_text().startswith("MME 3.0 mm")  # 12 cols * 0.25
    assert _marker(ctrl, "x") == pytest.approx((26.0, 72.0))
    drag(ctrl, (26.0, 72.0), (26.0, 80.0))
    # 20 cols * 0.25 mm = 5.0 mm
    assert ctrl.title_artist.get_text().startswith("MME 5.0 mm")
    assert _marker(ctrl, "x") == pytest.approx((26.0, 80.0), abs=1e-6)
    assert ctrl.method() == "auto+corrected"
    key(ctrl, "a")
    res = ctrl.result
    assert res.method == "auto+corrected"
    assert res.points.meniscus_rc == pytest.approx((26.0, 80.0), abs=1e-3)
    # the detected inner apex is kept for the width, recorded for a replay
    assert res.points.meniscus_inner_rc == (25.0, 40.0)
    assert res.landmarks.plateau_direction_source == "detected"


def test_drag_direction_handle_tilts_the_plateau():
    ctrl = _make(auto=_auto())
    handle = ctrl.direction_handle()
    # 10 mm inward along the detected direction (0, 1): 40 columns at 0.25 mm
    assert handle == pytest.approx((30.0, 20.0))
    # drop it at (36, 44): to the margin (30, 60) is (-6, 16) px = (-3, 4) mm -> u = (-0.6, 0.8)
    drag(ctrl, (30.0, 20.0), (36.0, 44.0))
    lm = ctrl.current_landmarks()
    assert lm.plateau_direction_source == "points"
    assert lm.plateau_dir_rc == pytest.approx((-0.6, 0.8))
    # meniscus - margin = (-4, 12) px = (-2, 3) mm -> 1.2 + 2.4 = 3.6 mm
    assert ctrl.title_artist.get_text().startswith("MME 3.6 mm")
    key(ctrl, "a")
    res = ctrl.result
    assert res.points.surface_rc == ((36.0, 44.0), (30.0, 60.0))
    _, mme = measure_from_points(res.points, row_spacing_mm=RS, col_spacing_mm=CS)
    assert mme == pytest.approx(3.6)


def test_reset_restores_automatic_landmarks():
    ctrl = _make(auto=_auto())
    drag(ctrl, (30.0, 60.0), (33.0, 50.0))
    assert ctrl.method() == "auto+corrected"
    key(ctrl, "r")
    assert ctrl.pts["plateau"] == pytest.approx((30.0, 60.0))
    assert ctrl.method() == "auto"
    key(ctrl, "a")
    assert ctrl.result.method == "auto"


def test_key_selects_landmark_then_click_places_it():
    ctrl = _make(auto=_auto())
    click(ctrl, 10.0, 10.0)  # nothing selected, not on a marker: no change
    assert ctrl.pts["plateau"] == pytest.approx((30.0, 60.0))
    key(ctrl, "2")
    assert ctrl.active == "meniscus"
    click(ctrl, 28.0, 64.0)
    assert ctrl.pts["meniscus"] == pytest.approx((28.0, 64.0), abs=1e-6)
    assert ctrl.title_artist.get_text().startswith("MME 1.0 mm")


def test_scroll_and_keys_change_slice_and_detection_follows():
    calls = []

    def detect(i):
        calls.append(i)
        return _auto(index_shift=float(i - 1)) if i != 2 else None

    ctrl = _make(auto=_auto(), detect=detect)
    first = ctrl.image_artist.get_array().copy()
    scroll(ctrl, "up", at=(30, 60))
    assert ctrl.index == 2
    assert not np.array_equal(ctrl.image_artist.get_array(), first)
    assert "slice 3/3 (instance 13)" in ctrl.status_artist.get_text()
    scroll(ctrl, "up", at=(30, 60))  # clipped at the last slice
    assert ctrl.index == 2
    # landmarks stay where they were; no detection on slice 2 -> image-row direction
    assert ctrl.current_landmarks().plateau_direction_source == "image-row"
    assert ctrl.method() == "auto+corrected"
    key(ctrl, "down")
    key(ctrl, "pagedown")
    assert ctrl.index == 0
    key(ctrl, "r")  # automatic landmarks of slice 0
    assert ctrl.pts["plateau"] == pytest.approx((29.0, 60.0))
    assert sorted(set(calls)) == [0, 2]
    key(ctrl, "a")
    assert ctrl.result.index == 0 and ctrl.result.method == "auto+corrected"


def test_skip_and_no_more_events_after_finishing():
    ctrl = _make(auto=_auto())
    key(ctrl, "s")
    assert ctrl.result.action == "skip"
    assert ctrl.result.points is None
    drag(ctrl, (26.0, 72.0), (26.0, 90.0))  # ignored: the session is over
    assert ctrl.pts["meniscus"] == pytest.approx((26.0, 72.0))


def test_window_level_zoom_and_pan():
    ctrl = _make(auto=_auto())
    lo, hi = ctrl.image_artist.get_clim()
    drag(ctrl, (40.0, 30.0), (40.0, 90.0), button=3)  # right-drag to the right widens
    lo2, hi2 = ctrl.image_artist.get_clim()
    assert hi2 - lo2 > hi - lo
    key(ctrl, "w")
    assert ctrl.image_artist.get_clim() == pytest.approx((lo, hi))

    width0 = np.diff(ctrl.ax.get_xlim())[0]
    key(ctrl, "+", at=(30.0, 60.0))
    assert np.diff(ctrl.ax.get_xlim())[0] == pytest.approx(width0 / 1.5)
    key(ctrl, "-", at=(30.0, 60.0))
    assert np.diff(ctrl.ax.get_xlim())[0] == pytest.approx(width0)
    key(ctrl, "z")  # 44 mm around the landmarks: 176 columns at 0.25 mm
    assert np.diff(ctrl.ax.get_xlim())[0] == pytest.approx(44.0 / CS)
    x0 = ctrl.ax.get_xlim()
    drag(ctrl, (30.0, 60.0), (30.0, 70.0), button=2, steps=1)  # pan by 10 columns
    # event positions are whole display pixels (~0.4 column here)
    assert ctrl.ax.get_xlim()[0] == pytest.approx(x0[0] - 10.0, abs=1.0)
    key(ctrl, "z")
    assert ctrl.ax.get_xlim() == pytest.approx(ctrl.full_limits[0])


def test_legend_on_screen_and_toggles():
    ctrl = _make(auto=_auto())
    text = ctrl.legend_artist.get_text()
    for word in ("accept", "skip", "reset", "slice", "window / level"):
        assert word in text
    assert ctrl.legend_artist.get_visible()
    key(ctrl, "h")
    assert not ctrl.legend_artist.get_visible()


def test_clear_restarts_prompts_and_surface_point_by_key():
    ctrl = _make(auto=_auto())
    key(ctrl, "c")
    assert ctrl.current_points() is None and ctrl.active == "plateau"
    click(ctrl, 30.0, 60.0)
    click(ctrl, 30.0, 64.0)
    key(ctrl, "3")
    click(ctrl, 30.0, 20.0)  # level surface point -> direction (0, 1)
    lm = ctrl.current_landmarks()
    assert lm.plateau_direction_source == "points"
    assert lm.plateau_dir_rc == pytest.approx((0.0, 1.0))
    assert ctrl.title_artist.get_text().startswith("MME 1.0 mm")


def test_points_roundtrip_through_manualpoints():
    # the session's points measure the same through measure_from_points (what a replay does)
    ctrl = _make(auto=_auto())
    drag(ctrl, (26.0, 72.0), (25.123456, 75.987654))
    key(ctrl, "a")
    res = ctrl.result
    assert res.points.meniscus_rc == (25.123, 75.988)
    replay = ManualPoints.from_dict(res.points.to_dict())
    lm, mme = measure_from_points(
        replay, row_spacing_mm=RS, col_spacing_mm=CS, outer_col_sign=1, detected=_auto()
    )
    assert lm == res.landmarks
    assert mme == pytest.approx((75.988 - 60.0) * CS)


def test_window_retries_a_refused_display_connection_only():
    """The X server may refuse one of several quick connections (matplotlib's display
    check, then Tk); the window retries those, and only those."""
    import pytest

    from kneemeasure.interactive.window import _retry_connect

    calls = []

    def refused_twice():
        calls.append(1)
        if len(calls) < 3:
            raise ImportError("Cannot load backend 'TkAgg' ... as 'headless' is currently running")
        return "window"

    assert _retry_connect(refused_twice, wait_s=0.0) == "window" and len(calls) == 3

    def broken():
        calls.append(2)
        raise ImportError("No module named '_tkinter'")

    calls.clear()
    with pytest.raises(ImportError, match="_tkinter"):
        _retry_connect(broken, wait_s=0.0)
    assert calls == [2]  # not a refusal: no retry

    def always_refused():
        raise RuntimeError("couldn't connect to display \":99\"")

    with pytest.raises(RuntimeError, match="couldn't connect"):
        _retry_connect(always_refused, attempts=3, wait_s=0.0)
