"""Tibial geometry on an isotropic slice: eminence, plateau line, medial cortex, margin.

All coordinates here are ``(row, col)`` in millimetres on the isotropic grid
(``mm = iso_px * step_mm``) unless a name ends in ``_px``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kneemeasure.detect.joint import BonePair
from kneemeasure.errors import DetectionError

__all__ = ["Line", "TibiaGeometry", "fit_line_robust", "intersect_lines", "tibial_geometry"]


@dataclass
class Line:
    """A 2D line through ``point`` along unit ``direction``, both ``(row, col)`` in mm.

    ``rms_mm`` is the RMS perpendicular residual of the inliers, ``n_inliers`` their count.
    """

    point: np.ndarray
    direction: np.ndarray
    rms_mm: float
    n_inliers: int


def fit_line_robust(points_rc: np.ndarray, *, inlier_tol: float = 0.75) -> Line:
    """Robust line fit: best-consensus pair of points, then total least squares on inliers.

    Parameters
    ----------
    points_rc : ndarray, shape (N, 2)
        ``(row, col)`` points (any consistent unit, usually mm). N >= 2.
    inlier_tol : float, keyword-only
        Largest perpendicular distance (same unit) for a point to count as an inlier.

    Returns
    -------
    Line
        ``rms_mm`` is the RMS perpendicular residual of the inliers.

    Notes
    -----
    Every pair of (up to 80 evenly spaced) points proposes a line; the one with the most
    inliers (ties: smaller summed residual) wins, and a total-least-squares fit over its
    inliers (refined twice) gives the result. Outliers on one side, such as an
    osteophyte on a cortex, do not tilt the line.
    """
    pts = np.asarray(points_rc, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 2:
        raise ValueError("fit_line_robust needs an (N>=2, 2) array of (row, col) points")
    sub = pts[np.unique(np.linspace(0, len(pts) - 1, min(len(pts), 80)).round().astype(int))]
    i, j = np.triu_indices(len(sub), k=1)
    d = sub[j] - sub[i]
    norm = np.linalg.norm(d, axis=1)
    ok = norm > 1e-9
    i, j, d, norm = i[ok], j[ok], d[ok], norm[ok]
    keep = np.ones(len(pts), bool)
    if len(d):
        nrm = np.column_stack([-d[:, 1], d[:, 0]]) / norm[:, None]
        res = np.abs(np.einsum("kpc,kc->kp", pts[None, :, :] - sub[i][:, None, :], nrm))
        inl = res <= inlier_tol
        count = inl.sum(axis=1)
        cost = np.where(inl, res, inlier_tol).sum(axis=1)
        best = np.lexsort((cost, -count))[0]
        keep = inl[best]
    for _ in range(3):
        sel = pts[keep] if keep.sum() >= 2 else pts
        c = sel.mean(axis=0)
        _, _, vt = np.linalg.svd(sel - c, full_matrices=False)
        dd = vt[0]
        normal = np.array([-dd[1], dd[0]])
        new_keep = np.abs((pts - c) @ normal) <= inlier_tol
        if new_keep.sum() < 2 or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    sel = pts[keep] if keep.sum() >= 2 else pts
    c = sel.mean(axis=0)
    _, _, vt = np.linalg.svd(sel - c, full_matrices=False)
    dd = vt[0]
    normal = np.array([-dd[1], dd[0]])
    rms = float(np.sqrt(np.mean(((sel - c) @ normal) ** 2)))
    return Line(c, dd / np.linalg.norm(dd), rms, int(len(sel)))


def intersect_lines(
    p1: np.ndarray, d1: np.ndarray, p2: np.ndarray, d2: np.ndarray
) -> tuple[float, float]:
    """Intersection of the lines ``p1 + s d1`` and ``p2 + t d2`` (``(row, col)`` pairs).

    Raises
    ------
    ValueError
        When the lines are (nearly) parallel.
    """
    p1, d1, p2, d2 = (np.asarray(a, dtype=float) for a in (p1, d1, p2, d2))
    a = np.column_stack([d1, -d2])
    if abs(np.linalg.det(a)) < 1e-9 * np.linalg.norm(d1) * np.linalg.norm(d2):
        raise ValueError("lines are parallel; no intersection")
    s, _ = np.linalg.solve(a, p2 - p1)
    q = p1 + s * d1
    return float(q[0]), float(q[1])


@dataclass
class TibiaGeometry:
    """Tibial landmarks on the iso grid (mm).

    Attributes
    ----------
    eminence_rc : ndarray (2,)
        Highest point of the tibia between the compartments.
    plateau : Line
        Fitted outer-compartment plateau surface, ``direction`` pointing outward.
    cortex : Line or None
        Fitted outer metaphyseal cortex below the rim (``None`` when it could not be fitted).
    margin_rc : ndarray (2,)
        Tibial margin: plateau line meets cortex line.
    corner_rc : ndarray (2,)
        Outermost bone pixel at plateau level (includes any osteophyte).
    eminence_height_mm : float
        Height of the eminence above the outer plateau line.
    notes : list of str
    """

    eminence_rc: np.ndarray
    plateau: Line
    cortex: Line | None
    margin_rc: np.ndarray
    corner_rc: np.ndarray
    eminence_height_mm: float
    notes: list[str]


def up_normal_of(direction_rc: np.ndarray) -> np.ndarray:
    """Unit normal of a ``(row, col)`` direction that points up (toward decreasing row)."""
    n = np.array([direction_rc[1], -direction_rc[0]], float)
    if n[0] > 0 or (n[0] == 0 and n[1] < 0):
        n = -n
    return n / np.linalg.norm(n)


def _top_profile(mask: np.ndarray) -> np.ndarray:
    has = mask.any(axis=0)
    return np.where(has, np.argmax(mask, axis=0), -1).astype(float)


def tibial_geometry(bp: BonePair, *, outer_col_sign: int) -> TibiaGeometry:
    """Eminence, plateau line, cortex line and margin of the tibia in ``bp``.

    Parameters
    ----------
    bp : BonePair
    outer_col_sign : {+1, -1}, keyword-only
        Direction (in columns) of the measured compartment's outer edge.

    Returns
    -------
    TibiaGeometry

    Notes
    -----
    1. Eminence: the highest tibial point in the middle 40 % of the joint width.
    2. Plateau: a robust line through the tibial top between 35 % and 85 % of the way
       from the eminence to the outermost tibial column at plateau level.
    3. Cortex: a robust line through the outermost tibial column of each row from 3 to
       15 mm below the plateau at the rim; outward protrusions (osteophytes) are trimmed.
    4. Margin: intersection of the two lines (not the outermost bone pixel).
    """
    step = bp.step_mm
    tib = bp.tibia
    top = _top_profile(tib)
    c0, c1 = int(bp.cols.min()), int(bp.cols.max())
    mid_lo = int(round(c0 + 0.3 * (c1 - c0)))
    mid_hi = int(round(c0 + 0.7 * (c1 - c0)))
    seg = top[mid_lo : mid_hi + 1]
    valid = seg >= 0
    if not valid.any():
        raise DetectionError(
            "tibial eminence not found on this slice; give landmarks with --points or "
            "--interactive, or choose another --slice"
        )
    seg = np.where(valid, seg, np.inf)
    ce = mid_lo + int(np.argmin(seg))
    eminence = np.array([top[ce], ce], float)
    # Outermost tibial column near plateau level (first 6 mm below the eminence region top).
    cols_with = np.nonzero(top >= 0)[0]
    side_cols = cols_with[(cols_with - ce) * outer_col_sign > 0]
    if side_cols.size < int(10 / step):
        raise DetectionError(
            "tibial plateau on the measured side not found; give landmarks with --points or "
            "--interactive, or check the medial side (--laterality)"
        )
    # Plateau level near the rim: median top over the outer half of that side.
    half = side_cols[np.abs(side_cols - ce) > 0.5 * np.abs(side_cols - ce).max()]
    level = float(np.median(top[half]))
    band = tib[int(max(level - 3 / step, 0)) : int(level + 6 / step) + 1]
    band_cols = np.nonzero(band.any(axis=0))[0]
    c_out = band_cols.max() if outer_col_sign > 0 else band_cols.min()
    span = c_out - ce
    lo = ce + 0.35 * span
    hi = ce + 0.85 * span
    pc = np.arange(int(np.ceil(min(lo, hi))), int(np.floor(max(lo, hi))) + 1)
    pc = pc[top[pc] >= 0]
    if pc.size < 4:
        raise DetectionError(
            "too few plateau surface points on the measured side; give landmarks with "
            "--points or --interactive"
        )
    pts = np.column_stack([top[pc], pc]) * step
    plateau = fit_line_robust(pts)
    d = plateau.direction.copy()
    if d[1] * outer_col_sign < 0:
        d = -d
    plateau.direction = d
    corner_row = top[c_out] if top[c_out] >= 0 else level
    corner = np.array([corner_row, c_out], float) * step
    notes: list[str] = []
    # Medial metaphyseal cortex: outermost tibia column per row, 3..15 mm below the rim.
    # Start below the fitted plateau line at the rim (not the corner pixel, which a spur or
    # a merged dark meniscus can lift), so the rim itself does not enter the fit.
    if abs(d[1]) > 1e-6:
        rim_row = (plateau.point[0] + d[0] / d[1] * (c_out * step - plateau.point[1])) / step
    else:
        rim_row = corner_row
    r_start = int(round(rim_row + 4 / step))
    r_end = int(round(rim_row + 16 / step))
    rows, cols = [], []
    for r in range(r_start, min(r_end, tib.shape[0] - 1) + 1):
        nz = np.nonzero(tib[r])[0]
        if nz.size:
            rows.append(r)
            cols.append(nz.max() if outer_col_sign > 0 else nz.min())
    cortex: Line | None = None
    margin = corner.copy()
    if len(rows) >= int(4 / step):
        cpts = np.column_stack([rows, cols]).astype(float) * step
        cortex = fit_line_robust(cpts)
        cd = cortex.direction
        if cd[0] < 0:
            cortex.direction = -cd
        # Reject implausible cortex lines (more than 45 deg from vertical).
        if abs(cortex.direction[0]) < np.cos(np.deg2rad(45)):
            notes.append("medial cortex line implausible; margin = outermost bone at rim")
            cortex = None
        else:
            try:
                margin = np.array(intersect_lines(plateau.point, d, cortex.point, cortex.direction))
            except ValueError:
                cortex = None
                notes.append("cortex parallel to plateau; margin = outermost bone at rim")
            if cortex is not None and np.linalg.norm(margin - corner) > 8.0:
                notes.append("cortex/plateau intersection far from the rim; using rim corner")
                margin = corner.copy()
                cortex = None
    else:
        notes.append("medial cortex too short to fit; margin = outermost bone at rim")
    # Eminence height above the plateau line (mm, positive = above).
    rel = eminence * step - plateau.point
    up_normal = up_normal_of(d)
    height = float(rel @ up_normal)
    return TibiaGeometry(eminence * step, plateau, cortex, margin, corner, height, notes)
