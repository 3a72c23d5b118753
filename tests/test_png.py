"""The annotated PNGs (Pillow renderer) and the shared construction geometry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kneemeasure.models import Landmarks, Measurement
from kneemeasure.report import png as P
from kneemeasure.report.construction import construction_segments, zoom_box_px

REPO = Path(__file__).resolve().parents[1]
YELLOW, MAGENTA = (0xFF, 0xE1, 0x4D), (0xFF, 0x4D, 0xF5)
GREEN, RED, ORANGE = (0x2F, 0xBF, 0x4A), (0xE8, 0x20, 0x2A), (0xFF, 0x9F, 0x1A)


def _image(rows: int = 160, cols: int = 200) -> np.ndarray:
    # noise: no whole row or column saturates to white, so the image region is findable
    return np.random.default_rng(0).uniform(100.0, 1000.0, (rows, cols)).astype(np.float32)


def _measurement(**kw) -> Measurement:
    """Margin at (80, 100), meniscal edge at (76, 90), plateau toward -col, 0.5 mm pixels."""
    base = dict(
        source="synthetic",
        modality="MR",
        laterality="L",
        laterality_source="header",
        instance_number=3,
        extrusion_mm=5.0,
        extruded=True,
        status="ok",
        confidence=0.9,
        row_spacing_mm=0.5,
        col_spacing_mm=0.5,
        spacing_source="PixelSpacing",
        medial_image_side="image-left",
        kneemeasure_version="test",
        landmarks=Landmarks(
            plateau_rc=(80.0, 100.0),
            meniscus_rc=(76.0, 90.0),
            meniscus_inner_rc=(78.0, 120.0),
            plateau_dir_rc=(0.0, -1.0),
            confidence=0.9,
        ),
    )
    base.update(kw)
    return Measurement(**base)


def _rgb(path: Path) -> np.ndarray:
    im = Image.open(path)
    assert im.mode == "RGB"
    return np.asarray(im).astype(int)


def _near(a: np.ndarray, colour: tuple[int, int, int], tol: int = 40) -> np.ndarray:
    return np.abs(a - np.array(colour)).sum(axis=-1) < tol


def _image_box(a: np.ndarray, x0: int, x1: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the drawn image in canvas columns [x0, x1), by pixels."""
    sub = a[:, x0:x1]
    nonwhite = (sub < 250).any(axis=-1)
    cols = np.nonzero(nonwhite[60:].mean(axis=0) > 0.3)[0]
    rows = np.nonzero(nonwhite[:, cols.min() : cols.max() + 1].mean(axis=1) > 0.5)[0]
    return x0 + cols.min(), rows.min(), x0 + cols.max() + 1, rows.max() + 1


# ---------------------------------------------------------------- geometry


def test_construction_segments_mr_hand_computed():
    seg = construction_segments(_measurement())
    # perpendicular to the plateau (rows), ±12 mm = ±24 px
    np.testing.assert_allclose(seg["tibial margin line"], [[56, 100], [104, 100]])
    np.testing.assert_allclose(seg["meniscus line"], [[52, 90], [100, 90]])
    # 15 mm inward (+col), 6 mm outward (-col)
    np.testing.assert_allclose(seg["plateau direction"], [[80, 130], [80, 88]])
    # from the margin to the foot of the meniscal edge, 6 mm (12 px) toward the femur (-row)
    np.testing.assert_allclose(seg["arrow"], [[68, 100], [68, 90]])
    np.testing.assert_allclose(seg["meniscal apex"], [78, 120])


def test_construction_segments_us_and_anisotropic():
    m = _measurement(modality="US")
    seg = construction_segments(m)
    np.testing.assert_allclose(seg["reference line"], [[80, 150], [80, 50]])
    np.testing.assert_allclose(seg["arrow"], [[80, 90], [76, 90]])
    assert "meniscus line" not in seg
    # anisotropic pixels: 12 mm along rows is 8 px at 1.5 mm
    seg = construction_segments(_measurement(), row_spacing_mm=1.5, col_spacing_mm=0.3125)
    np.testing.assert_allclose(seg["tibial margin line"], [[72, 100], [88, 100]])
    assert zoom_box_px(_measurement(landmarks=None)) is None
    assert construction_segments(_measurement(landmarks=None)) == {}


def test_nice_ticks():
    assert P._nice_ticks(0, 10, 5) == [0, 2, 4, 6, 8, 10]
    assert P._nice_ticks(-2.9, 14.7, 9) == list(range(-2, 15, 2))
    assert P._nice_ticks(4.5, 15.5, 9, integer=True) == [6, 8, 10, 12, 14]
    assert P._nice_ticks(1.8, 3.3, 9, integer=True) == [2, 3]
    np.testing.assert_allclose(P._nice_ticks(3.02, 3.08, 5), [3.02, 3.04, 3.06, 3.08])
    assert P._tick_label(0.2 - 0.2, 0.2) == "0" and P._tick_label(2.5, 2.5) == "2.5"


# ---------------------------------------------------------------- measurement PNG


@pytest.mark.parametrize(
    ("status", "extruded", "colour"),
    [("ok", False, GREEN), ("ok", True, RED), ("review", True, ORANGE)],
)
def test_zoom_panel_markers_and_flag_colour(tmp_path, status, extruded, colour):
    m = _measurement(status=status, extruded=extruded, extrusion_mm=5.0 if extruded else 1.0)
    path = P.render_measurement_png(_image(), m, tmp_path / "sub" / "m.png", source_label="s")
    a = _rgb(path)
    assert a.shape == (638, 1144, 3)
    left, top, right, bottom = _image_box(a, 572, 1144)
    # ±20 mm = ±40 px around the midpoint (78, 95): a square view
    assert abs((right - left) - (bottom - top)) <= 2
    scale = (right - left) / 80.0

    def canvas(rc):
        return left + (rc[1] - (95 - 40)) * scale - 0.5, top + (rc[0] - (78 - 40)) * scale - 0.5

    # meniscal edge: magenta x centred on the point
    x, y = canvas((76, 90))
    assert _near(a[round(y), round(x)], MAGENTA, 60)
    # tibial margin: hollow yellow circle of 5 pt (radius ~3.8 px) around the point
    x, y = canvas((80, 100))
    ring = [a[round(y + 3.8 * dy), round(x + 3.8 * dx)] for dx, dy in ((1, 0), (-1, 0), (0, 1))]
    assert sum(bool(_near(p, YELLOW, 80)) for p in ring) >= 2
    # the title band above the zoom is in the flag colour, and only that one
    band = a[top - 30 : top, left:right]
    assert _near(band, colour, 30).sum() > 30
    for other in {GREEN, RED, ORANGE} - {colour}:
        assert _near(band, other, 30).sum() == 0


def test_anisotropic_pixels_keep_physical_aspect(tmp_path):
    m = _measurement(row_spacing_mm=1.5, col_spacing_mm=0.3125, landmarks=None)
    a = _rgb(P.render_measurement_png(_image(60, 200), m, tmp_path / "a.png"))
    left, top, right, bottom = _image_box(a, 0, 572)
    ratio = (right - left) / (bottom - top)
    assert ratio == pytest.approx((200 * 0.3125) / (60 * 1.5), rel=0.02)


def test_profile_panel_only_with_a_profile(tmp_path):
    m = _measurement(slice_profile=[{"instance_number": 3, "extrusion_mm": 2.0, "status": "ok"}])
    assert Image.open(P.render_measurement_png(_image(), m, tmp_path / "one.png")).size == (
        1144,
        638,
    )
    profile = [
        {"instance_number": i, "extrusion_mm": e, "status": s}
        for i, e, s in ((1, 1.0, "ok"), (2, 1.5, "ok"), (3, 2.0, "ok"), (4, 6.0, "review"),
                        (5, 4.0, "ok"), (6, None, "error"))
    ]  # fmt: skip
    m = _measurement(
        slice_profile=profile, extrusion_mm=2.0, max_extrusion_mm=4.0, max_extrusion_instance=5
    )
    a = _rgb(P.render_measurement_png(_image(), m, tmp_path / "p.png"))
    assert a.shape == (638, 1716, 3)
    ax = P._profile_axes(m, P._profile_data(m), P._panel_boxes(1716, 638, True)[2])
    # dashed red threshold line across the axes at 3 mm: red with gaps
    _, y_thr = ax.canvas(1.0, 3.0)
    line = _near(a[round(y_thr), ax.x0 : ax.x0 + ax.w], RED, 60)
    assert 0.4 * ax.w < line.sum() < 0.9 * ax.w
    # hollow black square (7 pt, half side ~5.3 px) on the reference slice (3, 2.0 mm)
    x, y = ax.canvas(3.0, 2.0)
    edge = [a[round(y), round(x + 5.3)], a[round(y), round(x - 5.3)], a[round(y - 5.3), round(x)]]
    assert all(p.sum() < 200 for p in edge)
    assert a[round(y), round(x)].sum() > 200  # hollow: the blue dot shows inside
    # the max as a red triangle, the review point as an orange ring
    x, y = ax.canvas(5.0, 4.0)
    assert _near(a[round(y) + 1, round(x)], RED, 60)
    x, y = ax.canvas(4.0, 6.0)
    assert _near(a[round(y), round(x) - 5 : round(x) + 6], ORANGE, 120).any()


# ---------------------------------------------------------------- error PNG, import


def test_error_png(tmp_path):
    path = P.render_error_png(_image(), "x.dcm: no plateau found; give --points " * 4,
                              tmp_path / "e" / "err.png", title="not measured")  # fmt: skip
    a = _rgb(path)
    assert a.shape == (640, 600, 3)
    assert _near(a[:50], RED, 40).sum() > 30
    assert _near(a[500:], (160, 0, 0), 60).sum() > 500  # the dark red message box
    assert P.render_error_png(None, "m", tmp_path / "n.png") is None
    assert P.render_error_png(np.zeros((0, 0)), "m", tmp_path / "n.png") is None
    assert P.render_error_png(np.zeros((2, 3, 4)), "m", tmp_path / "n.png") is None
    assert not (tmp_path / "n.png").exists()


def test_import_does_not_load_matplotlib():
    code = (
        "import sys; import kneemeasure.report.png as p; p.warm_up(); "
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr


def test_without_matplotlib_fonts_falls_back_to_pillow_font(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "_font_dir", lambda: None)
    P._font.cache_clear()
    try:
        path = P.render_measurement_png(_image(), _measurement(), tmp_path / "f.png")
        assert Image.open(path).size == (1144, 638)
        assert P.render_error_png(_image(), "m", tmp_path / "e.png") is not None
    finally:
        P._font.cache_clear()
