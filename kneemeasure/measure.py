"""Geometry of the extrusion construction, in millimetres.

All points are ``(row, col)`` pixel coordinates of the stored image; all
directions are unit vectors in *physical* ``(row_mm, col_mm)`` space, so
anisotropic pixels (e.g. 0.3125 x 1.5 mm) are handled exactly: a pixel
displacement ``(dr, dc)`` is the physical displacement
``(dr * row_spacing_mm, dc * col_spacing_mm)``.

MRI (Kanagawa construction): a reference line through the tibial margin,
perpendicular to the plateau, and a parallel line through the outermost edge of
the meniscal body. MME is the distance between the two lines, i.e. the
projection of ``meniscus - margin`` onto the outward plateau direction,
positive when the meniscus lies outside the margin.

Ultrasound: the same construction turned by 90 degrees; MME is the signed
perpendicular distance from the meniscus point to the tibial reference line,
positive toward the skin (see :func:`signed_distance_to_line`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kneemeasure.errors import KneeMeasureError

Point = tuple[float, float]


def _check_spacing(row_spacing_mm: float, col_spacing_mm: float) -> None:
    for name, value in (("row_spacing_mm", row_spacing_mm), ("col_spacing_mm", col_spacing_mm)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise KneeMeasureError(
                f"invalid pixel spacing {name}={value!r}: must be a positive number of mm "
                "(check Pixel Spacing (0028,0030) or pass --spacing-mm ROW COL)"
            )


def to_mm(delta_rc: Point, *, row_spacing_mm: float, col_spacing_mm: float) -> np.ndarray:
    """Convert a pixel displacement ``(d_row, d_col)`` to physical ``(row_mm, col_mm)``."""
    return np.array([delta_rc[0] * row_spacing_mm, delta_rc[1] * col_spacing_mm], dtype=float)


def to_px(delta_mm: np.ndarray, *, row_spacing_mm: float, col_spacing_mm: float) -> np.ndarray:
    """Convert a physical displacement ``(row_mm, col_mm)`` to pixels ``(d_row, d_col)``."""
    return np.array([delta_mm[0] / row_spacing_mm, delta_mm[1] / col_spacing_mm], dtype=float)


def unit(vector: np.ndarray | Point) -> np.ndarray:
    """Return ``vector`` normalised to length 1 (raises on a zero vector)."""
    v = np.asarray(vector, dtype=float)
    norm = float(np.hypot(v[0], v[1]))
    if not math.isfinite(norm) or norm == 0.0:
        raise KneeMeasureError(f"degenerate direction {tuple(v)}: two points coincide")
    return v / norm


def plateau_direction_from_points(
    p1_rc: Point,
    p2_rc: Point,
    *,
    row_spacing_mm: float,
    col_spacing_mm: float,
    outer_col_sign: int,
) -> np.ndarray:
    """Unit plateau direction through two points on the plateau surface.

    Parameters
    ----------
    p1_rc, p2_rc : (float, float)
        Two points on the plateau surface, ``(row, col)`` pixels.
    row_spacing_mm, col_spacing_mm : float
        Pixel spacing (mm).
    outer_col_sign : {+1, -1}
        +1 when the outer edge of the measured compartment is toward increasing column.

    Returns
    -------
    ndarray, shape (2,)
        Unit vector in physical ``(row_mm, col_mm)``, oriented outward.
    """
    _check_spacing(row_spacing_mm, col_spacing_mm)
    d = to_mm(
        (p2_rc[0] - p1_rc[0], p2_rc[1] - p1_rc[1]),
        row_spacing_mm=row_spacing_mm,
        col_spacing_mm=col_spacing_mm,
    )
    u = unit(d)
    if u[1] * outer_col_sign < 0:
        u = -u
    return u


def extrusion_mm(
    plateau_rc: Point,
    meniscus_rc: Point,
    *,
    plateau_dir_rc: Point | np.ndarray,
    row_spacing_mm: float,
    col_spacing_mm: float,
) -> float:
    """Signed meniscal extrusion (Kanagawa construction).

    Parameters
    ----------
    plateau_rc : (float, float)
        Tibial margin (row, col), pixels.
    meniscus_rc : (float, float)
        Outermost point of the meniscal body (row, col), pixels.
    plateau_dir_rc : (float, float)
        Outward plateau direction, unit vector in physical ``(row_mm, col_mm)``.
    row_spacing_mm, col_spacing_mm : float
        Pixel spacing (mm).

    Returns
    -------
    float
        Distance (mm) between the line through the margin perpendicular to the
        plateau and the parallel line through the meniscus point, positive
        when the meniscus lies outside the margin.

    Examples
    --------
    >>> extrusion_mm((10, 10), (12, 16), plateau_dir_rc=(0.0, 1.0),
    ...              row_spacing_mm=0.5, col_spacing_mm=0.5)
    3.0
    """
    _check_spacing(row_spacing_mm, col_spacing_mm)
    u = unit(plateau_dir_rc)
    d = to_mm(
        (meniscus_rc[0] - plateau_rc[0], meniscus_rc[1] - plateau_rc[1]),
        row_spacing_mm=row_spacing_mm,
        col_spacing_mm=col_spacing_mm,
    )
    return float(d @ u)


def signed_distance_to_line(
    point_rc: Point,
    line_point_rc: Point,
    *,
    line_dir_rc: Point | np.ndarray,
    positive_rc: Point | np.ndarray,
    row_spacing_mm: float,
    col_spacing_mm: float,
) -> float:
    """Signed perpendicular distance (mm) from a point to a line.

    Parameters
    ----------
    point_rc : (float, float)
        The point, pixels.
    line_point_rc : (float, float)
        A point on the line, pixels.
    line_dir_rc : (float, float)
        Line direction in physical ``(row_mm, col_mm)`` (need not be unit).
    positive_rc : (float, float)
        A physical direction that counts as positive (e.g. toward the skin,
        ``(-1, 0)`` for "up" in an ultrasound image); only its side matters.
    row_spacing_mm, col_spacing_mm : float
        Pixel spacing (mm).

    Returns
    -------
    float
        Perpendicular distance in mm, positive on the ``positive_rc`` side.
    """
    _check_spacing(row_spacing_mm, col_spacing_mm)
    u = unit(line_dir_rc)
    n = np.array([-u[1], u[0]])
    if n @ np.asarray(positive_rc, dtype=float) < 0:
        n = -n
    d = to_mm(
        (point_rc[0] - line_point_rc[0], point_rc[1] - line_point_rc[1]),
        row_spacing_mm=row_spacing_mm,
        col_spacing_mm=col_spacing_mm,
    )
    return float(d @ n)


@dataclass(frozen=True)
class ExtrusionResult:
    """The numbers of one construction."""

    extrusion_mm: float
    meniscal_width_mm: float | None
    relative_extrusion_pct: float | None
    extruded: bool
    threshold_mm: float


def measure_construction(
    plateau_rc: Point,
    meniscus_rc: Point,
    *,
    plateau_dir_rc: Point | np.ndarray,
    row_spacing_mm: float,
    col_spacing_mm: float,
    meniscus_inner_rc: Point | None = None,
    threshold_mm: float = 3.0,
) -> ExtrusionResult:
    """MME, meniscal body width and relative extrusion for one slice.

    The width is the extent of the meniscal body along the plateau direction
    (outer edge to inner apex); relative extrusion = MME / width x 100.
    ``extruded`` is ``MME >= threshold_mm`` (inclusive, as in most literature).
    """
    mme = extrusion_mm(
        plateau_rc,
        meniscus_rc,
        plateau_dir_rc=plateau_dir_rc,
        row_spacing_mm=row_spacing_mm,
        col_spacing_mm=col_spacing_mm,
    )
    width = None
    rel = None
    if meniscus_inner_rc is not None:
        width = extrusion_mm(
            meniscus_inner_rc,
            meniscus_rc,
            plateau_dir_rc=plateau_dir_rc,
            row_spacing_mm=row_spacing_mm,
            col_spacing_mm=col_spacing_mm,
        )
        if width > 0:
            rel = 100.0 * mme / width
        else:
            width = None
    return ExtrusionResult(
        extrusion_mm=mme,
        meniscal_width_mm=width,
        relative_extrusion_pct=rel,
        extruded=bool(mme >= threshold_mm),
        threshold_mm=threshold_mm,
    )


def perpendicular_line_px(
    through_rc: Point,
    *,
    plateau_dir_rc: Point | np.ndarray,
    half_length_mm: float,
    row_spacing_mm: float,
    col_spacing_mm: float,
) -> tuple[np.ndarray, np.ndarray]:
    """End points (pixels) of a line through a point, perpendicular to the plateau.

    Perpendicularity is in physical space, so the drawn line is correct on
    anisotropic pixels. Returns two ``(row, col)`` arrays.
    """
    u = unit(plateau_dir_rc)
    n = np.array([-u[1], u[0]]) * half_length_mm
    n_px = to_px(n, row_spacing_mm=row_spacing_mm, col_spacing_mm=col_spacing_mm)
    p = np.asarray(through_rc, dtype=float)
    return p - n_px, p + n_px


def foot_on_line_px(
    point_rc: Point,
    line_point_rc: Point,
    *,
    line_dir_rc: Point | np.ndarray,
    row_spacing_mm: float,
    col_spacing_mm: float,
) -> np.ndarray:
    """Orthogonal projection (pixels) of a point onto a line, computed in mm."""
    u = unit(line_dir_rc)
    d = to_mm(
        (point_rc[0] - line_point_rc[0], point_rc[1] - line_point_rc[1]),
        row_spacing_mm=row_spacing_mm,
        col_spacing_mm=col_spacing_mm,
    )
    foot_mm = (d @ u) * u
    return np.asarray(line_point_rc, dtype=float) + to_px(
        foot_mm, row_spacing_mm=row_spacing_mm, col_spacing_mm=col_spacing_mm
    )
