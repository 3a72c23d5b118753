"""The geometry of the drawn construction, shared by every renderer.

One pure function computes the named segments and points that the annotated
PNG (Pillow, :mod:`kneemeasure.report.png`) and the interactive window
(matplotlib, :mod:`kneemeasure.interactive.draw`) draw, so both show exactly the
same construction. Everything is in image pixels ``(row, col)``; perpendicularity
and distances are computed in mm so anisotropic pixels come out right.
"""

from __future__ import annotations

import numpy as np

from kneemeasure.measure import foot_on_line_px, perpendicular_line_px, unit
from kneemeasure.models import Measurement

#: Half-length (mm) of the two lines perpendicular to the plateau (MR).
PERPENDICULAR_HALF_MM = 12.0
#: Half-length (mm) of the ultrasound reference line along the tibial cortex.
US_REFERENCE_HALF_MM = 25.0
#: How far (mm) above the margin, toward the femur, the MR arrow is drawn.
ARROW_OFFSET_MM = 6.0
#: Extent (mm) of the plateau-direction line: inward from the margin, and outward.
PLATEAU_DIR_INWARD_MM = 15.0
PLATEAU_DIR_OUTWARD_MM = 6.0
#: Half-size (mm) of the zoomed view around the compartment (MR, US).
ZOOM_HALF_MM = {"MR": 20.0, "US": 10.0}

#: How each element of :func:`construction_segments` is drawn, shared by the
#: renderers. ``lw`` is relative to the caller's line width; marker sizes ``ms``
#: and edge widths ``mew`` are in points (matplotlib's units); an arrow's colour
#: (``None``) is the flag colour of the row.
STYLES: dict[str, dict] = {
    "reference line": {"kind": "line", "ls": "-", "colour": "#33c3ff", "lw": 1.0},
    "tibial margin line": {"kind": "line", "ls": "-", "colour": "#33c3ff", "lw": 1.0},
    "meniscus line": {"kind": "line", "ls": "--", "colour": "#33c3ff", "lw": 1.0},
    "plateau direction": {"kind": "line", "ls": ":", "colour": "#ffe14d", "lw": 0.8},
    "arrow": {"kind": "arrow", "colour": None, "lw": 1.0},
    "tibial margin": {"kind": "marker", "marker": "o", "colour": "#ffe14d", "ms": 5, "mew": 1.5},
    "meniscal edge": {"kind": "marker", "marker": "x", "colour": "#ff4df5", "ms": 7, "mew": 1.8},
    "meniscal apex": {"kind": "marker", "marker": "+", "colour": "#ff4df5", "ms": 7, "mew": 1.2},
}


def _spacing(m: Measurement, row_mm: float | None, col_mm: float | None) -> tuple[float, float]:
    """The given pixel spacing, else the row's (1.0 when it has none)."""
    return (row_mm if row_mm is not None else (m.row_spacing_mm or 1.0),
            col_mm if col_mm is not None else (m.col_spacing_mm or 1.0))  # fmt: skip


def side_labels(m: Measurement) -> tuple[str, str] | None:
    """The labels of the image's left and right edges (MEDIAL / LATERAL), or None
    when the medial side is not known."""
    if m.medial_image_side not in ("image-left", "image-right"):
        return None
    if m.medial_image_side == "image-left":
        return "MEDIAL", "LATERAL"
    return "LATERAL", "MEDIAL"


def construction_segments(
    m: Measurement,
    *,
    row_spacing_mm: float | None = None,
    col_spacing_mm: float | None = None,
) -> dict[str, np.ndarray]:
    """Named segments and points of the measurement construction, in image pixels.

    Parameters
    ----------
    m : Measurement
        The row; ``m.landmarks`` holds the points. ``m.modality == "US"`` selects
        the ultrasound construction.
    row_spacing_mm, col_spacing_mm : float, optional
        Pixel spacing (mm); default ``m.row_spacing_mm`` / ``m.col_spacing_mm``
        (1.0 when absent).

    Returns
    -------
    dict of str to ndarray
        Empty when ``m.landmarks`` is None. Segments are arrays of shape (2, 2)
        (two ``(row, col)`` end points), points arrays of shape (2,). Keys (in
        drawing order), named as the legend names them:

        - MR: ``"tibial margin line"`` and ``"meniscus line"`` (perpendicular to
          the plateau through the margin / the meniscal edge, ±12 mm),
          ``"plateau direction"`` (through the margin, 15 mm inward, 6 mm outward),
          ``"arrow"`` (between the two lines, parallel to the plateau, 6 mm
          toward the femur);
        - US: ``"reference line"`` (±25 mm along the plateau direction through
          the margin), ``"arrow"`` (from the foot of the perpendicular on the
          reference line to the meniscal point);
        - both: ``"tibial margin"``, ``"meniscal edge"`` and, when known,
          ``"meniscal apex"`` (points).
    """
    lm = m.landmarks
    if lm is None:
        return {}
    row_mm, col_mm = _spacing(m, row_spacing_mm, col_spacing_mm)
    p = np.asarray(lm.plateau_rc, float)
    q = np.asarray(lm.meniscus_rc, float)
    u = unit(lm.plateau_dir_rc)
    u_px = np.array([u[0] / row_mm, u[1] / col_mm])  # 1 mm along the plateau, in pixels
    foot = foot_on_line_px(q, p, line_dir_rc=u, row_spacing_mm=row_mm, col_spacing_mm=col_mm)
    out: dict[str, np.ndarray] = {}
    if m.modality == "US":
        span = US_REFERENCE_HALF_MM * u_px
        out["reference line"] = np.array([p - span, p + span])
        out["arrow"] = np.array([foot, q])
    else:
        for name, point in (("tibial margin line", p), ("meniscus line", q)):
            a, b = perpendicular_line_px(
                point,
                plateau_dir_rc=u,
                half_length_mm=PERPENDICULAR_HALF_MM,
                row_spacing_mm=row_mm,
                col_spacing_mm=col_mm,
            )
            out[name] = np.array([a, b])
        out["plateau direction"] = np.array(
            [p - PLATEAU_DIR_INWARD_MM * u_px, p + PLATEAU_DIR_OUTWARD_MM * u_px]
        )
        up = np.array([-u[1], u[0]])
        if up[0] > 0:  # point toward the femur (smaller row)
            up = -up
        off = ARROW_OFFSET_MM * np.array([up[0] / row_mm, up[1] / col_mm])
        out["arrow"] = np.array([p + off, foot + off])
    out["tibial margin"] = p
    out["meniscal edge"] = q
    if lm.meniscus_inner_rc is not None:
        out["meniscal apex"] = np.asarray(lm.meniscus_inner_rc, float)
    return out


def zoom_box_px(
    m: Measurement,
    *,
    row_spacing_mm: float | None = None,
    col_spacing_mm: float | None = None,
) -> tuple[float, float, float, float] | None:
    """The zoomed view: ±20 mm (US: ±10 mm) around the plateau–meniscus midpoint.

    Returns
    -------
    (row_min, row_max, col_min, col_max) : tuple of float, or None
        In image pixels (pixel centres at integers); None without landmarks.
    """
    lm = m.landmarks
    if lm is None:
        return None
    row_mm, col_mm = _spacing(m, row_spacing_mm, col_spacing_mm)
    c = (np.asarray(lm.plateau_rc, float) + np.asarray(lm.meniscus_rc, float)) / 2
    half = ZOOM_HALF_MM["US" if m.modality == "US" else "MR"]
    half_r, half_c = half / row_mm, half / col_mm
    return (
        float(c[0] - half_r),
        float(c[0] + half_r),
        float(c[1] - half_c),
        float(c[1] + half_c),
    )
