"""Tibial geometry on an isotropic slice: eminence, plateau line, medial cortex, margin.

All coordinates here are ``(row, col)`` in millimetres on the isotropic grid
(``mm = iso_px * step_mm``) unless a name ends in ``_px``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kneemeasure.detect.joint import BonePair
from kneemeasure.errors import DetectionError

__all__ = [
    "Line",
    "TibiaGeometry",
    "cartilage_margin",
    "fit_cortex_line",
    "fit_line_robust",
    "intersect_lines",
    "surface_chord",
    "tibial_geometry",
    "trace_margin",
]


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
    1. Eminence: the highest tibial point in the middle 40 % of the joint width (a
       thin spike more than 6 mm above the peak of the mask opened with a 4 mm bar,
       i.e. notch tissue joined to the spines, is skipped).
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
    ce = mid_lo + int(np.argmin(np.where(valid, seg, np.inf)))
    eminence = np.array([top[ce], ce], float)
    # A thin upward spike (dark cruciate ligaments in the notch joined to the spines on
    # fat-suppressed images) is not the eminence: when the tibia opened with a 4 mm wide
    # bar peaks more than 6 mm lower, its peak is used.
    from scipy import ndimage as ndi

    bar = np.ones((1, max(3, int(round(4.0 / step)) | 1)), bool)
    top_e = _top_profile(ndi.binary_opening(tib, structure=bar))[mid_lo : mid_hi + 1]
    if (top_e >= 0).any():
        ce_e = mid_lo + int(np.argmin(np.where(top_e >= 0, top_e, np.inf)))
        if (top_e[ce_e - mid_lo] - top[ce]) * step > 6.0:
            ce = ce_e
            eminence = np.array([top_e[ce_e - mid_lo], ce], float)
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


def fit_cortex_line(points_rc: np.ndarray, *, outward: np.ndarray) -> Line:
    """Robust line through outer-cortex points ordered from the rim downward.

    Parameters
    ----------
    points_rc : ndarray, shape (N, 2)
        Cortex surface points (mm), shallowest first. N >= 4.
    outward : ndarray, shape (2,)
        Unit vector pointing out of the bone (along the plateau).

    Returns
    -------
    Line

    Notes
    -----
    A marginal osteophyte bulges the cortex outward next to the rim, which tilts a plain
    fit and moves the margin out. The deeper half fixes a first line; shallower points
    that lie more than 0.25 mm outside it are dropped before the final robust fit. A
    deep half that leans outward with depth (more than 5 deg; noise, since the
    metaphysis narrows below the rim) trims nothing: all points are fitted.
    """
    pts = np.asarray(points_rc, float)
    half = len(pts) // 2
    deep = fit_line_robust(pts[half:], inlier_tol=0.4)
    down = deep.direction if deep.direction @ (pts[-1] - pts[0]) >= 0 else -deep.direction
    if down @ np.asarray(outward, float) > np.sin(np.deg2rad(5.0)):
        # The metaphysis narrows (or runs straight) below the rim; a deep half that
        # leans outward with depth is noise on a few points, not a reference for
        # trimming a bulge: fit all points.
        return fit_line_robust(pts, inlier_tol=0.4)
    nrm = np.array([-deep.direction[1], deep.direction[0]])
    if nrm @ outward < 0:
        nrm = -nrm
    off = (pts - deep.point) @ nrm
    keep = np.ones(len(pts), bool)
    keep[:half] = off[:half] < 0.25
    return fit_line_robust(pts[keep], inlier_tol=0.4)


# --------------------------------------------------------------------------- sub-pixel refinement


def sample_mm(image: np.ndarray, r_mm: np.ndarray, c_mm: np.ndarray, *, row_spacing_mm: float,
              col_spacing_mm: float) -> np.ndarray:
    """Bilinear samples of ``image`` at physical positions ``(r_mm, c_mm)`` (any shape)."""
    from scipy import ndimage as ndi

    return ndi.map_coordinates(image, [np.asarray(r_mm) / row_spacing_mm,
                                       np.asarray(c_mm) / col_spacing_mm], order=1,
                               mode="nearest")


def mean_profiles(image: np.ndarray, bases_mm: np.ndarray, *, along: np.ndarray,
                  across: np.ndarray, t_mm: np.ndarray, row_spacing_mm: float,
                  col_spacing_mm: float, offsets_mm: tuple[float, ...] = (-0.4, 0.0, 0.4),
                  sigma: float = 1.0) -> np.ndarray:
    """Smoothed intensity profiles from several base points, each averaged across.

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
    bases_mm : ndarray, shape (K, 2)
        Start points (row, col) in mm.
    along, across : ndarray, shape (2,), keyword-only
        Unit directions (row, col) of the profile and of the averaging offsets.
    t_mm : ndarray, shape (N,), keyword-only
        Positions along the profile (mm).
    row_spacing_mm, col_spacing_mm : float, keyword-only
    offsets_mm : tuple of float, keyword-only
        Profiles averaged per base, offset across (mm).
    sigma : float, keyword-only
        Gaussian smoothing along the profile, in samples.

    Returns
    -------
    ndarray, shape (K, N)
        The same values as one :func:`sample_mm` call per profile, from one call.
    """
    bases = np.asarray(bases_mm, float).reshape(-1, 2)
    offs = np.asarray(offsets_mm, float)
    b = bases[:, None, :] + offs[None, :, None] * np.asarray(across, float)  # (K, M, 2)
    r = b[:, :, 0, None] + t_mm * along[0]
    c = b[:, :, 1, None] + t_mm * along[1]
    samples = sample_mm(image, r, c, row_spacing_mm=row_spacing_mm,
                        col_spacing_mm=col_spacing_mm)  # (K, M, N)
    acc = samples[:, 0]
    for k in range(1, len(offs)):
        acc = acc + samples[:, k]
    from scipy import ndimage as ndi

    return ndi.gaussian_filter1d(acc / float(len(offs)), sigma, axis=-1)


def cortex_outer_edge(
    profile: np.ndarray, x_mm: np.ndarray, *, search: tuple[float, float], out_mm: float = 2.5
) -> tuple[float, float] | None:
    """Outer surface of a dark cortex line on a profile running from bone outward.

    Parameters
    ----------
    profile : ndarray, shape (N,)
        Smoothed intensities at ``x_mm`` (increasing outward).
    x_mm : ndarray, shape (N,)
        Positions (mm), evenly spaced.
    search : (float, float)
        Window (mm) in which the cortex minimum lies.
    out_mm : float
        Length (mm) beyond the minimum in which the outside level (the maximum) is taken.

    Returns
    -------
    (edge_mm, contrast) or None
        The half-way crossing between the cortex minimum and the outside maximum, walking
        outward from the minimum; ``contrast`` = outside maximum minus minimum.
    """
    from kneemeasure.detect.meniscus import subpixel_crossing

    dx = float(x_mm[1] - x_mm[0])
    w = np.nonzero((x_mm >= search[0]) & (x_mm <= search[1]))[0]
    if w.size < 3:
        return None
    i0 = int(w[np.argmin(profile[w])])
    j1 = min(len(profile), i0 + int(round(out_mm / dx)) + 1)
    if j1 - i0 < 3:
        return None
    p_min = float(profile[i0])
    p_out = float(profile[i0:j1].max())
    p_in = float(np.median(profile[: max(3, int(w[0]))]))
    if (p_out - p_min > 1e-6 and p_in - p_min > 0.25 * (p_out - p_min)
            and p_out - p_min > 0.3 * (p_in - p_min)):
        # a dark cortex line: its outer half-way crossing
        x = subpixel_crossing(profile, level=0.5 * (p_min + p_out), start=i0, direction=1)
        if x is None:
            return None
        return float(x_mm[0] + x * dx), p_out - p_min
    # no cortex line (bone next to a darker or brighter neighbour): a step edge
    k = max(3, int(round(1.0 / dx)))
    p_far = float(np.median(profile[min(len(profile) - k, int(w[-1])):]))
    if abs(p_far - p_in) <= 1e-6:
        return None
    x = subpixel_crossing(profile, level=0.5 * (p_in + p_far), start=int(w[0]), direction=1)
    if x is None or x > w[-1]:
        return None
    return float(x_mm[0] + x * dx), abs(p_far - p_in)


@dataclass
class RefinedMargin:
    """Sub-pixel tibial margin (mm, ``(row, col)`` of the original image times spacing)."""

    plateau: Line
    cortex: Line | None
    margin_rc: np.ndarray
    notes: list[str]
    cortex_contrast: float = 0.0


def refine_margin(
    image: np.ndarray,
    geo: TibiaGeometry,
    *,
    row_spacing_mm: float,
    col_spacing_mm: float,
    outer_col_sign: int,
) -> RefinedMargin:
    """Refine the plateau line, the outer cortex line and their intersection on the image.

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
        Original slice, normalised and lightly smoothed.
    geo : TibiaGeometry
        Coarse geometry from the bone masks (mm).
    row_spacing_mm, col_spacing_mm : float, keyword-only
    outer_col_sign : {+1, -1}, keyword-only

    Returns
    -------
    RefinedMargin

    Notes
    -----
    Profiles are sampled in the frame of the coarse plateau (``d`` outward, ``n`` up).
    The plateau surface is the outer half-way crossing of the dark subchondral cortex on
    vertical profiles (averaged over 1 mm along the plateau); the outer metaphyseal
    cortex likewise on profiles along ``d`` 5.5–13 mm below the plateau (averaged over
    1 mm along the cortex). Robust lines through both sets of edges meet at the margin.
    Contrast-agnostic: only "the cortex is darker than both of its neighbours" is used.
    """
    kw = dict(row_spacing_mm=row_spacing_mm, col_spacing_mm=col_spacing_mm)
    d = geo.plateau.direction / np.linalg.norm(geo.plateau.direction)
    n = up_normal_of(d)
    m0 = np.asarray(geo.margin_rc, float)
    emin = np.asarray(geo.eminence_rc, float)
    span = float((m0 - emin) @ d)
    notes: list[str] = []
    # --- plateau surface: vertical profiles
    t = np.arange(-4.0, 4.0 + 1e-9, 0.05)
    pts = []
    for s in np.arange(-0.62 * span, -0.12 * span, 0.5):
        acc = 0.0
        for o in (-0.4, 0.0, 0.4):
            base = m0 + (s + o) * d
            acc = acc + sample_mm(image, base[0] + t * n[0], base[1] + t * n[1], **kw)
        prof = acc / 3.0
        e = cortex_outer_edge(prof, t, search=(-3.0, 1.5))
        if e is not None:
            pts.append(m0 + s * d + e[0] * n)
    if len(pts) >= 4:
        plateau = fit_line_robust(np.array(pts), inlier_tol=0.4)
        dd = plateau.direction
        if dd @ d < 0:
            dd = -dd
        plateau.direction = dd
        if abs(dd @ d) < np.cos(np.deg2rad(12)):
            notes.append("refined plateau line disagrees with the mask; mask line kept")
            plateau = geo.plateau
    else:
        notes.append("plateau surface edges too weak; mask line kept")
        plateau = geo.plateau
    d = plateau.direction
    n = up_normal_of(d)
    # coarse margin projected on the refined plateau line
    m1 = plateau.point + ((m0 - plateau.point) @ d) * d
    # --- outer cortex: profiles along d below the rim
    u = np.arange(-6.0, 6.0 + 1e-9, 0.05)
    cpts, contr = [], []

    def on_cortex(depth: float) -> np.ndarray:
        base = m1 - depth * n
        if geo.cortex is None:
            return base
        try:
            return np.array(intersect_lines(base, d, geo.cortex.point, geo.cortex.direction))
        except ValueError:
            return base

    for depth in np.arange(5.5, 13.01, 0.5):
        acc = 0.0
        for o in (-0.4, 0.0, 0.4):
            base = on_cortex(depth + o)
            acc = acc + sample_mm(image, base[0] + u * d[0], base[1] + u * d[1], **kw)
        e = cortex_outer_edge(acc / 3.0, u, search=(-3.0, 2.0))
        if e is not None:
            cpts.append(on_cortex(depth) + e[0] * d)
            contr.append(e[1])
    cortex = None
    margin = m1
    cc = 0.0
    if len(cpts) >= 6:
        cortex = fit_line_robust(np.array(cpts), inlier_tol=0.5)
        cdir = cortex.direction
        if cdir @ n > 0:
            cdir = -cdir
        cortex.direction = cdir
        cc = float(np.median(contr))
        if abs(cdir @ d) > np.sin(np.deg2rad(40)) or cortex.n_inliers < 0.5 * len(cpts):
            notes.append("refined cortex line implausible; coarse margin kept")
            cortex = None
        else:
            try:
                margin = np.array(intersect_lines(plateau.point, d, cortex.point, cortex.direction))
            except ValueError:
                cortex = None
            if cortex is not None and np.linalg.norm(margin - m1) > 5.0:
                notes.append("refined margin far from the mask margin; coarse margin kept")
                margin = m1
                cortex = None
    else:
        notes.append("outer cortex edges too weak; coarse margin kept")
    return RefinedMargin(plateau, cortex, np.asarray(margin, float), notes, cc)


# --------------------------------------------------------------------------- local tracing


def bone_surface_edge(
    profile: np.ndarray, x_mm: np.ndarray, *, marrow: float, dark: float, start_mm: float,
    max_cortex_mm: float = 1.6, step_edge: bool = False,
) -> tuple[float, float | None, float] | None:
    """Marrow edge and outer cortex surface on a profile running from inside the bone outward.

    Parameters
    ----------
    profile : ndarray, shape (N,)
        Smoothed intensities at ``x_mm`` (increasing outward).
    x_mm : ndarray, shape (N,)
        Evenly spaced positions (mm).
    marrow, dark : float
        Marrow level and cortex (darkest) level of this slice; only ``marrow > dark`` (the
        cortex is darker than marrow, true on every contrast) is assumed.
    start_mm : float
        A position inside the marrow where the walk outward starts.
    max_cortex_mm : float
        Longest cortex (dark run next to the marrow) considered (mm).
    step_edge : bool
        Accept a plain step (no dark cortex line; the outside clearly brighter than the
        cortex level) and return its half-way crossing as the surface.

    Returns
    -------
    (marrow_edge_mm, surface_mm or None, rise) or None
        ``marrow_edge_mm``: half-way crossing between marrow and cortex levels walking
        outward; ``surface_mm``: the half-way crossing back up from the cortex minimum to
        the tissue outside, when such a rise exists within ``max_cortex_mm`` (``None``
        when the cortex merges with another dark structure, e.g. a ligament); ``rise``:
        that rise relative to ``marrow - dark``. ``None`` when no marrow edge is found.
    """
    from kneemeasure.detect.meniscus import subpixel_crossing

    dx = float(x_mm[1] - x_mm[0])
    i0 = int(np.clip(round((start_mm - x_mm[0]) / dx), 0, len(x_mm) - 1))
    span = marrow - dark
    if span <= 1e-6:
        return None
    # thin cortices (1-2 px) do not reach the cortex level after partial volume
    level = dark + 0.65 * span
    # start on marrow: the first sample above the half level within 3 mm of the start
    above = np.nonzero(profile[i0 : i0 + int(round(3.0 / dx)) + 1] > level)[0]
    if above.size == 0:
        return None
    xm = subpixel_crossing(profile, level=level, start=i0 + int(above[0]), direction=1)
    if xm is None:
        return None
    edge = float(x_mm[0] + xm * dx)
    j0 = int(np.ceil(xm))
    j1 = min(len(profile), j0 + int(round(max_cortex_mm / dx)) + 1)
    if j1 - j0 < 3:
        return edge, None, 0.0
    seg = profile[j0:j1]
    k = int(np.argmin(seg))
    p_min = float(seg[k])
    jm = j0 + k
    j2 = min(len(profile), jm + int(round(1.5 / dx)) + 1)
    p_out = float(profile[jm:j2].max())
    rise = (p_out - p_min) / span
    # the cortex must be a thin line: a rise back up soon after the minimum
    if rise < 0.3 or (jm - xm) * dx > 1.0:
        if step_edge and p_min - dark > 0.3 * span:
            # no dark cortex line: a step from marrow to a brighter-than-cortex tissue
            xs = subpixel_crossing(profile, level=0.5 * (marrow + p_min), start=jm,
                                   direction=-1)
            if xs is not None:
                e2 = float(x_mm[0] + xs * dx)
                return e2, e2, float(rise)
        return edge, None, float(rise)
    xs = subpixel_crossing(profile, level=0.5 * (p_min + p_out), start=jm, direction=1)
    if xs is None or (xs - xm) * dx > max_cortex_mm:
        return edge, None, float(rise)
    return edge, float(x_mm[0] + xs * dx), float(rise)


def _steep_surface(
    profile: np.ndarray, x_mm: np.ndarray, found: tuple[float, float | None, float], *,
    marrow: float, dark: float, max_gap_mm: float = 1.0, reach_mm: float = 4.5,
) -> tuple[float, float | None, float]:
    """Move a marrow edge found in a greyish subchondral zone up to the steep drop above it.

    Parameters
    ----------
    profile : ndarray, shape (N,)
        Smoothed intensities at ``x_mm`` (increasing up, out of the tibia).
    x_mm : ndarray, shape (N,)
        Evenly spaced positions (mm).
    found : (edge_mm, surface_mm or None, rise)
        Result of :func:`bone_surface_edge`.
    marrow, dark : float
        Marrow and cortex levels of the slice. Only edges with dim marrow (below
        ``marrow - 0.2 (marrow - dark)``) 0.3–1.5 mm under them are moved.
    max_gap_mm : float
        When the first clearly dark sample (below ``dark + 0.3 span``) lies within this
        distance above the edge, the cortex line's outer surface found before is kept.
    reach_mm : float
        How far above the edge the dark joint band is looked for.

    Returns
    -------
    (edge_mm, surface_mm or None, rise)
        Unchanged (bright marrow under the edge, no dark band within reach, or a dip
        and rise on the way up, i.e. cortex then bright cartilage), or the half-way
        crossing, walking down from the dark band, between the band and the brightest
        sample from 0.5 mm under the edge up to the band.

    Notes
    -----
    Young or oedematous subchondral marrow can be darker than the deep marrow (a
    physeal scar runs through it), so the fixed marrow/cortex level is crossed a few
    mm below the real surface; the real surface is the steep drop into the dark band
    of cortex and cartilage above it.
    """
    from kneemeasure.detect.meniscus import subpixel_crossing

    span = marrow - dark
    edge = found[0]
    dx = float(x_mm[1] - x_mm[0])
    i_e = int(np.clip(round((edge - x_mm[0]) / dx), 0, len(x_mm) - 1))
    sub = profile[(x_mm >= edge - 1.5) & (x_mm <= edge - 0.3)]
    if sub.size == 0 or float(np.median(sub)) > marrow - 0.2 * span:
        # bright marrow right under the edge: a real marrow/cortex step
        return found
    i_r = min(len(x_mm), i_e + int(round(reach_mm / dx)) + 1)
    low = np.nonzero(profile[i_e:i_r] < dark + 0.3 * span)[0]
    if low.size == 0:
        return found
    i_d = i_e + int(low[0])
    seg = profile[i_e : i_d + 1]
    if float((seg - np.minimum.accumulate(seg)).max()) > 0.1 * span:
        # a dip and a rise on the way up (cortex, then bright cartilage): the dark
        # sample further up is a meniscus or the joint, not this bone's surface
        return found
    i_m = i_d + int(np.argmin(profile[i_d : min(len(x_mm), i_d + int(round(1.0 / dx)) + 1)]))
    i_b = max(0, i_e - int(round(0.5 / dx)))
    p_top = float(profile[i_b:i_d].max())
    p_min = float(profile[i_m])
    if p_top - p_min < 0.3 * span:
        return found
    x = subpixel_crossing(profile, level=0.5 * (p_top + p_min), start=i_m, direction=-1)
    if x is None:
        return found
    new = float(x_mm[0] + x * dx)
    if new <= edge:
        return found
    if found[1] is not None and low[0] * dx <= max_gap_mm and found[1] > new:
        return new, found[1], found[2]
    return new, None, found[2]


def surface_chord(
    u_mm: np.ndarray, v_mm: np.ndarray, *, p0: np.ndarray, direction: np.ndarray,
    inlier_tol: float = 1.0, min_span_mm: float = 8.0,
) -> Line | None:
    """Chord of a curved plateau surface: robust parabola through it, ends joined.

    Parameters
    ----------
    u_mm, v_mm : ndarray, shape (N,)
        Surface points in the frame of a first plateau line: ``u`` along ``direction``,
        ``v`` along its up-normal (mm).
    p0 : ndarray, shape (2,)
        Origin of that frame, ``(row, col)`` in mm.
    direction : ndarray, shape (2,)
        Unit ``(row, col)`` vector of the first line (outward).
    inlier_tol : float, keyword-only
        Largest residual (mm) from the parabola for a point to count.
    min_span_mm : float, keyword-only
        Shortest ``u`` range for a parabola; shorter runs give ``None``.

    Returns
    -------
    Line or None
        Through the parabola at the middle of the range, along the chord between its
        values at both ends of the inlier range (pointing along ``direction``);
        ``rms_mm`` is the parabola's inlier residual. ``None`` when fewer than 8 points
        or a too short range.

    Notes
    -----
    Real plateaus are dished (a few mm deep over the compartment); a straight
    consensus line keeps only one arc of the dish, which on a young knee tilts it by
    10-20 degrees. The chord of a parabola follows the whole compartment while single
    stray points (residual above ``inlier_tol`` after three refits) are ignored.
    """
    u = np.asarray(u_mm, float)
    v = np.asarray(v_mm, float)
    if len(u) < 8 or float(np.ptp(u)) < min_span_mm:
        return None
    keep = np.ones(len(u), bool)
    for _ in range(3):
        coef = np.polyfit(u[keep], v[keep], 2)
        res = np.abs(v - np.polyval(coef, u))
        new = res <= inlier_tol
        if new.sum() < 8:
            # too few inliers: keep the best three quarters instead
            new = res <= np.percentile(res, 75)
        if np.array_equal(new, keep):
            break
        keep = new
    coef = np.polyfit(u[keep], v[keep], 2)
    ui = u[keep]
    if float(np.ptp(ui)) < min_span_mm:
        return None
    lo, hi = float(ui.min()), float(ui.max())
    slope = (np.polyval(coef, hi) - np.polyval(coef, lo)) / (hi - lo)
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    n = up_normal_of(d)
    dd = d + slope * n
    dd /= np.linalg.norm(dd)
    um = 0.5 * (lo + hi)
    point = np.asarray(p0, float) + um * d + float(np.polyval(coef, um)) * n
    rms = float(np.sqrt(np.mean((v[keep] - np.polyval(coef, u[keep])) ** 2)))
    return Line(point, dd, rms, int(keep.sum()))


def _margin_from_cortex(
    cpts: Sequence[np.ndarray] | np.ndarray,
    rim_line: Line,
    rim_pt: np.ndarray,
    *,
    outward: np.ndarray,
    up: np.ndarray,
    max_jump_mm: float,
    rim_name: str,
    notes: list[str],
) -> tuple[Line | None, np.ndarray]:
    """Tibial margin = the plateau line next to the rim meets the outer cortex line.

    Parameters
    ----------
    cpts : sequence of (row_mm, col_mm)
        Outer cortex points below the rim; fewer than 6 -> the rim is the margin.
    rim_line : Line
        The plateau surface next to the rim (mm).
    rim_pt : ndarray, shape (2,)
        The rim point (mm), used when the cortex is missing or implausible.
    outward, up : ndarray, shape (2,)
        Unit outward plateau direction and the up-normal (toward the femur).
    max_jump_mm : float
        An intersection farther than this from the rim is not trusted.
    rim_name : str
        How the rim was found, for the notes.
    notes : list of str
        Appended to (why the rim was used instead of the intersection).

    Returns
    -------
    cortex : Line or None
        The outer cortex line (pointing down), ``None`` when not used.
    margin : ndarray, shape (2,)
        The margin (mm).
    """
    if len(cpts) < 6:
        notes.append(f"outer cortex not traced; rim of the {rim_name} used")
        return None, rim_pt
    fitted = fit_cortex_line(np.asarray(cpts), outward=outward)
    cdir = fitted.direction if fitted.direction @ up <= 0 else -fitted.direction
    cortex = Line(fitted.point, cdir, fitted.rms_mm, fitted.n_inliers)
    steep = abs(cdir @ outward) > np.sin(np.deg2rad(20))
    if (abs(cdir @ outward) > np.sin(np.deg2rad(40)) or cortex.n_inliers < 0.5 * len(cpts)
            or (steep and cortex.n_inliers < 0.75 * len(cpts))):
        # (a steep line through a minority of scattered points is noise, not a flare)
        notes.append(f"outer cortex line implausible; rim of the {rim_name} used")
        return None, rim_pt
    try:
        margin = np.array(intersect_lines(rim_line.point, rim_line.direction,
                                          cortex.point, cortex.direction))
    except ValueError:
        return None, rim_pt
    if np.linalg.norm(margin - rim_pt) > max_jump_mm:
        short = "traced rim" if rim_name == "traced plateau" else "cartilage rim"
        notes.append(f"cortex/plateau intersection far from the {short}; rim used")
        return None, rim_pt
    return cortex, margin


def trace_margin(
    image: np.ndarray,
    geo: TibiaGeometry,
    bp: BonePair,
    *,
    row_spacing_mm: float,
    col_spacing_mm: float,
    outer_col_sign: int,
    cortex_depth_mm: tuple[float, float] = (4.0, 10.0),
) -> RefinedMargin:
    """Tibial margin from local edges: plateau surface and outer cortex, fitted and intersected.

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
        Original slice, normalised to about [0, 1] and lightly smoothed.
    geo : TibiaGeometry
        Coarse geometry from the bone masks (mm); gives the eminence, a first plateau
        direction and the approximate rim.
    bp : BonePair
        The bone masks (for the marrow level only).
    row_spacing_mm, col_spacing_mm : float, keyword-only
    outer_col_sign : {+1, -1}, keyword-only
    cortex_depth_mm : (float, float), keyword-only
        Depths below the rim (mm) over which the outer cortex line is fitted. The
        lateral metaphysis curves inward sooner than the medial one, so use a shallower
        range there (e.g. 2.5–7 mm).

    Returns
    -------
    RefinedMargin
        ``margin_rc`` in mm of the original image; ``plateau.direction`` points outward.

    Notes
    -----
    1. Marrow level: median of the tibia mask 3–15 mm below the plateau on this side;
       cortex level: 2nd percentile around the rim. Only "cortex darker than marrow" is
       used, so both contrast families work.
    2. Plateau surface: profiles along the up-normal, every 0.5 mm from the eminence to
       4 mm beyond the coarse rim (each the mean of three profiles 0.4 mm apart),
       walking up out of the marrow; the surface is the outer edge of the cortex line,
       or the marrow edge plus the median cortex thickness where the cortex merges with
       a dark neighbour. Where the marrow just under that edge is dim (young or
       oedematous subchondral marrow, a physeal scar), the edge moves up to the steep
       drop into the joint band (:func:`_steep_surface`). A column belongs to the
       plateau when marrow (upper quartile) lies 1.5–4 mm below its surface; points more
       than 1.2 mm off the median surface within 2.5 mm are dropped; the rim is the last
       column of the run from the inside (gaps of two profiles, or of up to 3 mm of
       dropped points, are bridged when the surface resumes within 1.5 mm).
    3. Plateau direction: chord of a robust parabola through the surface from 25 % of
       the eminence–rim span (at most 25 mm inside the rim) to 1.5 mm inside the rim
       (:func:`surface_chord`; a straight line where too few points).
    4. Outer cortex: profiles along the plateau direction ``cortex_depth_mm`` below the plateau,
       walking out of the marrow from 6 mm inside the rim; robust line through the
       outer cortex surfaces. Outward bumps (osteophytes) are outliers of that line.
    5. Margin: intersection of both lines.
    """

    kw = dict(row_spacing_mm=row_spacing_mm, col_spacing_mm=col_spacing_mm)
    step = bp.step_mm
    notes: list[str] = []
    d = geo.plateau.direction / np.linalg.norm(geo.plateau.direction)
    n = up_normal_of(d)
    emin = np.asarray(geo.eminence_rc, float)
    m0 = np.asarray(geo.margin_rc, float)
    corner = np.asarray(geo.corner_rc, float)
    # rim prior: the coarse corner projected on the coarse plateau line
    p0 = geo.plateau.point
    u_rim0 = float((corner - p0) @ d)
    u_emin = float((emin - p0) @ d)
    # --- levels
    tib = bp.tibia
    rr, cc = np.nonzero(tib)
    pts_mm = np.column_stack([rr, cc]) * step
    rel = pts_mm - p0
    uu, vv = rel @ d, -(rel @ n)
    sel = (vv > 3.0) & (vv < 15.0) & (uu > u_emin) & (uu < u_rim0)
    if sel.sum() < 20:
        sel = (vv > 3.0) & (vv < 15.0)
    if sel.sum() < 20:
        raise DetectionError("tibial marrow not found below the plateau; give landmarks with "
                             "--points or --interactive")
    marrow = float(np.median(sample_mm(image, pts_mm[sel, 0], pts_mm[sel, 1], **kw)))
    box_u = np.arange(u_rim0 - 8.0, u_rim0 + 4.0, 0.25)
    box_v = np.arange(-6.0, 6.0, 0.25)
    bu, bv = np.meshgrid(box_u, box_v)
    br = p0[0] + bu * d[0] - bv * n[0]
    bc = p0[1] + bu * d[1] - bv * n[1]
    dark = float(np.percentile(sample_mm(image, br, bc, **kw), 2))
    if marrow - dark < 0.03:
        raise DetectionError("tibial marrow and cortex not distinguishable; give landmarks with "
                             "--points or --interactive")
    span = marrow - dark

    def profiles(bases: np.ndarray, along: np.ndarray, across: np.ndarray, t: np.ndarray):
        return mean_profiles(image, bases, along=along, across=across, t_mm=t, **kw)

    # --- plateau surface, walking up (along n) out of the marrow
    t = np.arange(-5.0, 6.0 + 1e-9, 0.05)
    u_list = np.arange(u_emin + 2.0, u_rim0 + 4.0, 0.5)
    surf = []
    all_prof = profiles(p0 + u_list[:, None] * d, n, d, t)
    for u, prof in zip(u_list, all_prof, strict=True):
        e = bone_surface_edge(prof, t, marrow=marrow, dark=dark, start_mm=-4.0)
        if e is not None:
            # the steep drop into the joint band, not a level crossing in greyish
            # subchondral marrow (physeal scar) below it
            e = _steep_surface(prof, t, e, marrow=marrow, dark=dark)
        if e is None:
            surf.append((u, np.nan, np.nan, False))
            continue
        edge, outer, _ = e
        # marrow below the surface? (upper quartile: subchondral marrow may be greyish)
        below = prof[(t > edge - 4.0) & (t < edge - 1.5)]
        ok = below.size > 0 and abs(float(np.percentile(below, 75)) - marrow) < 0.3 * span
        surf.append((u, edge, np.nan if outer is None else outer, ok))
    s_arr = np.array(surf, float).reshape(-1, 4)
    ok = s_arr[:, 3] > 0.5
    if ok.sum() < 6:
        raise DetectionError("tibial plateau surface not traced; give landmarks with --points "
                             "or --interactive")
    # cortex thickness where its outer edge is visible (plateau)
    vis = ok & np.isfinite(s_arr[:, 2])
    thick = float(np.median(s_arr[vis, 2] - s_arr[vis, 1])) if vis.sum() >= 3 else 0.5
    thick = float(np.clip(thick, 0.2, 1.5))
    surface_v = np.where(np.isfinite(s_arr[:, 2]), s_arr[:, 2], s_arr[:, 1] + thick)
    # consensus: a point more than 1.2 mm off the median of the surface within 2.5 mm
    # (a physeal scar or vessel that stopped the walk below the surface) is dropped
    idx_ok = np.nonzero(ok)[0]
    dropped = np.zeros(len(ok), bool)
    for i in idx_ok:
        near_i = idx_ok[np.abs(s_arr[idx_ok, 0] - s_arr[i, 0]) <= 2.5]
        if near_i.size >= 5 and abs(surface_v[i] - np.median(surface_v[near_i])) > 1.2:
            dropped[i] = True
    ok &= ~dropped
    # the run of plateau columns from the inside (start at the middle of the side)
    i_mid = int(np.argmin(np.abs(s_arr[:, 0] - 0.5 * (u_emin + u_rim0))))
    if not ok[i_mid]:
        cand = np.nonzero(ok)[0]
        i_mid = int(cand[np.argmin(np.abs(cand - i_mid))])
    i_end = i_mid
    skipped = np.zeros(len(ok), bool)
    while i_end + 1 < len(ok):
        if ok[i_end + 1] and abs(surface_v[i_end + 1] - surface_v[i_end]) < 1.5:
            i_end += 1
            continue
        # two stray profiles, or up to 3 mm of profiles dropped by the consensus, do
        # not end the plateau when the surface resumes at the same height
        j = i_end + 1
        while j < len(ok) and not ok[j] and (
                j - i_end <= 2 or (dropped[j] and s_arr[j, 0] - s_arr[i_end, 0] <= 3.0)):
            j += 1
        if j < len(ok) and ok[j] and abs(surface_v[j] - surface_v[i_end]) < 1.5:
            skipped[i_end + 1 : j] = True
            i_end = j
        else:
            break
    ok = ok & ~skipped
    u_rim = float(s_arr[i_end, 0])
    spanu = u_rim - u_emin
    # plateau direction: the chord of the compartment's surface (real plateaus are
    # curved; a consensus fit would pick one arc), the eminence slope excluded
    # (at most 25 mm inside the rim: a misplaced eminence must not add its slope)
    u_lo = max(u_emin + 0.25 * spanu, u_rim - 25.0)
    fit = ok & (s_arr[:, 0] >= u_lo) & (s_arr[:, 0] <= u_rim - 1.5)
    fit &= np.arange(len(ok)) <= i_end
    if fit.sum() < 4:
        fit = ok & (np.arange(len(ok)) <= i_end)
    xy = np.column_stack([p0[0] + s_arr[:, 0] * d[0] + surface_v * n[0],
                          p0[1] + s_arr[:, 0] * d[1] + surface_v * n[1]])
    plateau = surface_chord(s_arr[fit, 0], surface_v[fit], p0=p0, direction=d)
    if plateau is None:
        plateau = fit_line_robust(xy[fit], inlier_tol=1.0)
    dd = plateau.direction
    if dd @ d < 0:
        dd = -dd
    if abs(dd @ d) < np.cos(np.deg2rad(25)):
        notes.append("traced plateau line disagrees with the mask; mask direction kept")
        dd = d
        plateau = Line(plateau.point, d.copy(), plateau.rms_mm, plateau.n_inliers)
    plateau.direction = dd
    # the surface next to the rim (the margin lies on it)
    near = ok & (s_arr[:, 0] >= u_rim - 6.0) & (s_arr[:, 0] <= u_rim - 1.0)
    near &= np.arange(len(ok)) <= i_end
    if near.sum() >= 4:
        rim_line = fit_line_robust(xy[near], inlier_tol=0.4)
        if rim_line.direction @ dd < 0:
            rim_line.direction = -rim_line.direction
        if abs(rim_line.direction @ dd) < np.cos(np.deg2rad(30)):
            rim_line = Line(plateau.point, dd.copy(), plateau.rms_mm, plateau.n_inliers)
    else:
        rim_line = Line(plateau.point, dd.copy(), plateau.rms_mm, plateau.n_inliers)
    d = dd
    n = up_normal_of(d)
    rdir = rim_line.direction
    rim_pt = rim_line.point + ((xy[i_end] - rim_line.point) @ rdir) * rdir
    # --- outer cortex, walking out (along d) of the marrow below the plateau
    uc = np.arange(-8.0, 6.0 + 1e-9, 0.05)
    cpts, rises, edges_m = [], [], []
    depths = np.arange(cortex_depth_mm[0], cortex_depth_mm[1] + 0.01, 0.5)
    for depth, prof in zip(depths, profiles(rim_pt - depths[:, None] * n, d, n, uc), strict=True):
        e = bone_surface_edge(prof, uc, marrow=marrow, dark=dark, start_mm=-6.0,
                              step_edge=True)
        if e is None:
            continue
        edge, outer, rise = e
        edges_m.append((depth, edge, outer))
    if len(edges_m) >= 6:
        arr = np.array([(a, b, np.nan if c is None else c) for a, b, c in edges_m], float)
        visc = np.isfinite(arr[:, 2])
        tc = float(np.median(arr[visc, 2] - arr[visc, 1])) if visc.sum() >= 3 else thick
        tc = float(np.clip(tc, 0.2, 1.5))
        outer = np.where(visc, arr[:, 2], arr[:, 1] + tc)
        cpts = np.column_stack([rim_pt[0] - arr[:, 0] * n[0] + outer * d[0],
                                rim_pt[1] - arr[:, 0] * n[1] + outer * d[1]])
        rises = visc
    cc = float(np.mean(rises)) if len(cpts) >= 6 else 0.0
    cortex, margin = _margin_from_cortex(
        cpts, rim_line, rim_pt, outward=d, up=n, max_jump_mm=6.0, rim_name="traced plateau",
        notes=notes,
    )
    del m0
    return RefinedMargin(plateau, cortex, np.asarray(margin, float), notes, cc)


# --------------------------------------------------------------------------- dark marrow


def _local_noise(image: np.ndarray, center_mm: np.ndarray, *, row_spacing_mm: float,
                 col_spacing_mm: float, half_mm: float = 15.0) -> float:
    """Robust noise SD of ``image`` within ``half_mm`` of ``center_mm`` (row, col in mm).

    From the differences of pixels two columns apart (MAD / sqrt 2): edges are a small
    fraction of the window, so they barely move the median.
    """
    r0 = int(round(center_mm[0] / row_spacing_mm))
    c0 = int(round(center_mm[1] / col_spacing_mm))
    hr = int(round(half_mm / row_spacing_mm))
    hc = int(round(half_mm / col_spacing_mm))
    win = image[max(r0 - hr, 0) : r0 + hr + 1, max(c0 - hc, 0) : c0 + hc + 1]
    if win.shape[0] < 3 or win.shape[1] < 5:
        return 0.0
    d = (win[:, 2:] - win[:, :-2]).ravel()
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0))


def _step_edge(
    profile: np.ndarray, x_mm: np.ndarray, *, search: tuple[float, float], reach_mm: float,
    min_step: float = 0.1,
) -> float | None:
    """Bone surface as a plain step from dark bone up to brighter tissue outside.

    Parameters
    ----------
    profile : ndarray, shape (N,)
        Smoothed intensities at ``x_mm`` (increasing outward, normalised to ~[0, 1]).
    x_mm : ndarray, shape (N,)
        Evenly spaced positions (mm); samples at or below ``search[0]`` are bone.
    search : (float, float)
        Window (mm) in which the step must lie.
    reach_mm : float
        The outside level is the maximum up to this position (mm).
    min_step : float
        Smallest rise from the bone level to the outside level.

    Returns
    -------
    float or None
        Position (mm) of the first steep rise walking outward from the bone: the
        first local maximum of the slope that reaches half the steepest slope in the
        window (sub-sample by a parabola through the slope), so that of two steps
        (bone to fat, fat to a brighter capsule) the first is taken. ``None`` when
        the rise is below ``min_step`` or no such slope lies inside ``search``.
    """
    dx = float(x_mm[1] - x_mm[0])
    bone = float(np.median(profile[x_mm <= search[0]]))
    i0 = int(np.searchsorted(x_mm, search[0]))
    i1 = int(np.searchsorted(x_mm, reach_mm, side="right"))
    if i1 - i0 < 5:
        return None
    if float(profile[i0:i1].max()) - bone < min_step:
        return None
    g = np.gradient(profile, dx)
    j1 = int(np.searchsorted(x_mm, search[1], side="right"))
    gw = g[i0:i1]
    g_max = float(gw.max())
    if g_max <= 0:
        return None
    for k in range(i0 + 1, min(j1, len(g) - 1)):
        if g[k] >= 0.5 * g_max and g[k] >= g[k - 1] and g[k] >= g[k + 1]:
            # the rise after this slope peak must itself be a clear step
            after = float(profile[k : min(len(profile), k + int(round(1.0 / dx)) + 1)].max())
            if after - bone < 0.5 * min_step:
                continue
            den = g[k - 1] - 2.0 * g[k] + g[k + 1]
            off = 0.5 * (g[k - 1] - g[k + 1]) / den if abs(den) > 1e-12 else 0.0
            return float(x_mm[k] + float(np.clip(off, -0.5, 0.5)) * dx)
    return None


def _straight_step_cortex(
    steps: Sequence[tuple[float, float]], *, depth_range: tuple[float, float],
    notes: list[str], deep_from_mm: float = 5.0, tol_mm: float = 0.5,
) -> list[tuple[float, float]] | None:
    """Step edges below the rim that trace a straight cortex, osteophyte bulge removed.

    Parameters
    ----------
    steps : sequence of (depth_mm, u_mm)
        Plain dark-to-bright step edges (:func:`_step_edge`) at depths below the rim,
        ``u`` outward along the plateau from the rim (mm).
    depth_range : (float, float)
        Depths (mm) that were sampled, every 0.5 mm.
    notes : list of str
        Appended to (why the steps were not used, or that a bulge was dropped).
    deep_from_mm : float
        Depth (mm) below which a marginal osteophyte no longer bulges the cortex.
    tol_mm : float
        Largest distance (mm) of a step edge from the deep line to count as on it.

    Returns
    -------
    list of (depth_mm, u_mm) or None
        The deep edges and the shallow edges on the deep line's continuation, or
        ``None`` when the steps do not run straight and continuously down the
        metaphysis.

    Notes
    -----
    The surface of a marginal osteophyte is the same kind of step as the cortex
    (both dark bone against brighter tissue), so a step is trusted only where it
    continues straight down the metaphysis: at least 60 % of the depths from
    ``deep_from_mm`` down show a step, at least 3 mm of depth, and a line through
    them (within 20 deg of the plateau normal) holds 80 % of them within ``tol_mm``.
    Shallower edges more than ``tol_mm`` outside that line (a spur bulging out of
    the rim and tapering) are dropped; the margin then lies where the plateau meets
    the cortex line, not on the spur.
    """
    arr = np.asarray(steps, float).reshape(-1, 2)
    lo = max(deep_from_mm, depth_range[0])
    n_expected = int(np.floor((depth_range[1] - lo) / 0.5 + 1e-6)) + 1
    deep = arr[arr[:, 0] >= lo - 1e-6]
    if n_expected < 6 or len(deep) < max(6, 0.6 * n_expected):
        notes.append("cortex steps do not continue down the metaphysis; not used")
        return None
    # (depth, u) -> a line u = a + b depth, via the robust fit in that plane
    line = fit_line_robust(deep[:, [0, 1]], inlier_tol=tol_mm)
    t = line.direction if line.direction[0] >= 0 else -line.direction
    if abs(t[1]) > np.sin(np.deg2rad(20.0)) or line.n_inliers < 0.8 * len(deep):
        notes.append("cortex steps below the rim not straight; not used")
        return None
    slope = t[1] / t[0]
    u_line = line.point[1] + slope * (arr[:, 0] - line.point[0])
    off = arr[:, 1] - u_line
    keep = np.where(arr[:, 0] >= lo - 1e-6, np.abs(off) <= tol_mm, off <= tol_mm)
    if (arr[:, 0] < lo - 1e-6).any() and (off[arr[:, 0] < lo - 1e-6] > tol_mm).any():
        notes.append("outward bulge at the rim (osteophyte?) excluded from the cortex step")
    notes.append("outer cortex from a dark-to-bright step (no cortex line)")
    return [(float(a), float(b)) for a, b in arr[keep]]


def split_cortex_columns(
    depth_u_mm: np.ndarray, *, min_gap_mm: float = 2.0, min_points: int = 5,
    max_rms_mm: float = 0.4, min_overlap_mm: float = 1.5, max_tilt_deg: float = 20.0,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Cortex points that form two parallel columns a few mm apart (cortex and a ligament).

    Parameters
    ----------
    depth_u_mm : ndarray, shape (N, 2)
        Outer cortex points as (depth below the rim, u outward along the plateau), mm.
    min_gap_mm : float, keyword-only
        Smallest gap (mm) in ``u`` between the two columns.
    min_points : int, keyword-only
        Smallest number of points in each column.
    max_rms_mm : float, keyword-only
        Largest RMS residual (mm) of ``u`` about a straight line over depth, per column.
    min_overlap_mm : float, keyword-only
        Smallest overlap (mm) of the two columns' depth ranges: the columns run side by
        side (a shallow spur over a deep cortex is not a split).
    max_tilt_deg : float, keyword-only
        Largest angle (deg) of each column from the plateau normal, and between them.

    Returns
    -------
    (inner, outer) : pair of ndarray of bool, shape (N,), or None
        Masks of the inner and the outer column; ``None`` when the points do not split
        that way.

    Notes
    -----
    On fat-suppressed images the dark cortex line and the dark MCL a few mm outside it
    can be about equally dark; the darkest sample of each profile below the rim then
    picks one or the other by noise, depth by depth, and no single line holds a
    majority of the points. The largest gap of the sorted ``u`` separates the columns.
    """
    a = np.asarray(depth_u_mm, float).reshape(-1, 2)
    if len(a) < 2 * min_points:
        return None
    us = np.sort(a[:, 1])
    k = int(np.argmax(np.diff(us)))
    if us[k + 1] - us[k] < min_gap_mm:
        return None
    cut = 0.5 * (us[k] + us[k + 1])
    inner = a[:, 1] < cut
    outer = ~inner
    slopes = []
    for m in (inner, outer):
        if m.sum() < min_points or np.ptp(a[m, 0]) < 1e-6:
            return None
        coef = np.polyfit(a[m, 0], a[m, 1], 1)
        rms = float(np.sqrt(np.mean((a[m, 1] - np.polyval(coef, a[m, 0])) ** 2)))
        if rms > max_rms_mm or abs(np.degrees(np.arctan(coef[0]))) > max_tilt_deg:
            return None
        slopes.append(float(np.degrees(np.arctan(coef[0]))))
    if abs(slopes[0] - slopes[1]) > max_tilt_deg:
        return None
    overlap = (min(a[inner, 0].max(), a[outer, 0].max())
               - max(a[inner, 0].min(), a[outer, 0].min()))
    if overlap < min_overlap_mm:
        return None
    return inner, outer


def cartilage_margin(
    image: np.ndarray,
    geo: TibiaGeometry,
    *,
    row_spacing_mm: float,
    col_spacing_mm: float,
    cortex_depth_mm: tuple[float, float] = (2.0, 10.0),
) -> RefinedMargin:
    """Tibial margin on dark-marrow images from the bright cartilage/fluid above the bone.

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
        Original slice, normalised to about [0, 1] and lightly smoothed.
    geo : TibiaGeometry
        Coarse geometry from the bone masks (mm): eminence and plateau direction.
    row_spacing_mm, col_spacing_mm : float, keyword-only
    cortex_depth_mm : (float, float), keyword-only
        Depths below the rim (mm) over which the outer cortex line is fitted.

    Returns
    -------
    RefinedMargin
        ``margin_rc`` in mm of the original image; ``plateau.direction`` points outward.

    Raises
    ------
    DetectionError
        When no bright band sits on the plateau.

    Notes
    -----
    On fat-suppressed PD and DESS, marrow, cortex, fat and muscle differ by a few
    per cent; the bright tibial cartilage (and fluid) is the reliable cue.

    1. Plateau surface: on profiles along the up-normal (every 0.5 mm from the eminence
       outward), the half-way crossing from the brightest sample of the joint band down to
       the dark bone below it. The run of surface points from the middle of the
       compartment outward ends where the surface drops or jumps by more than 1 mm or the
       band fades (the rim).
    2. Plateau line: robust fit of the surface from 35 % of the eminence–rim span to 1 mm
       inside the rim; a second line through the last 6 mm gives the surface at the rim.
    3. Outer cortex: profiles along the plateau direction ``cortex_depth_mm`` below the
       rim; the darkest sample within 5 mm inside to 2 mm outside the rim (the cortex
       line, darker than the marrow) and the half-way rise from it to the tissue outside.
       Robust line; margin = its intersection with the rim line (the rim point itself
       when the cortex cannot be fitted). On noisy images (local noise SD above 0.06 of
       the range) the profiles average a band up to twice as tall (±1.6 mm) and are
       smoothed up to twice as much (0.5 mm), so the crossings do not scatter.
    """
    from scipy import ndimage as ndi

    from kneemeasure.detect.meniscus import subpixel_crossing

    kw = dict(row_spacing_mm=row_spacing_mm, col_spacing_mm=col_spacing_mm)
    notes: list[str] = []
    d = geo.plateau.direction / np.linalg.norm(geo.plateau.direction)
    n = up_normal_of(d)
    p0 = np.asarray(geo.plateau.point, float)
    u_emin = float((np.asarray(geo.eminence_rc, float) - p0) @ d)
    u_rim0 = float((np.asarray(geo.corner_rc, float) - p0) @ d)

    def prof(base: np.ndarray, along: np.ndarray, across: np.ndarray, t: np.ndarray):
        acc = 0.0
        for o in (-0.4, 0.0, 0.4):
            b = base + o * across
            acc = acc + sample_mm(image, b[0] + t * along[0], b[1] + t * along[1], **kw)
        return ndi.gaussian_filter1d(acc / 3.0, 2.0)

    dt = 0.05
    u_list = np.arange(u_emin + 2.0, max(u_rim0, u_emin + 20.0) + 12.0, 0.5)

    def scan(p0: np.ndarray, d: np.ndarray, n: np.ndarray, half: float, pct: float) -> list:
        """Lower edge of the lowest bright band on profiles along ``n`` (v in mm)."""
        t = np.arange(-half - 2.0, half + 4.0 + 1e-9, dt)
        profs = [prof(p0 + u * d, n, d, t) for u in u_list]
        below = t <= -half + 1.0
        win = np.nonzero((t >= -half) & (t <= half + 1.0))[0]
        c_glob = float(np.percentile([pp[win].max() - np.median(pp[below]) for pp in profs],
                                     pct))
        rows = []
        for u, p in zip(u_list, profs, strict=True):
            # walk up out of the dark bone into the first bright band (the tibial
            # cartilage, or fluid): not the femoral cartilage above a meniscus
            bone = float(np.median(p[below]))
            lvl0 = bone + 0.35 * c_glob
            i = int(win[0])
            while i > 0 and p[i] > lvl0:  # start below the band
                i -= 1
            hit = np.nonzero(p[i : win[-1] + 1] > lvl0)[0]
            if hit.size == 0:
                rows.append((u, np.nan, 0.0))
                continue
            j = i + int(hit[0])
            k = j + int(np.argmax(p[j : j + int(2.0 / dt) + 1]))
            contrast = float(p[k]) - bone
            x = subpixel_crossing(p, level=bone + 0.5 * contrast, start=k, direction=-1)
            rows.append((u, np.nan if x is None else t[0] + x * dt, contrast))
        return rows

    # a first, wide pass corrects a plateau direction that the masks got wrong
    wide = np.array(scan(p0, d, n, 8.0, 75.0), float)
    okw = np.isfinite(wide[:, 1])
    if okw.sum() >= 8:
        okw &= wide[:, 2] > 0.5 * np.percentile(wide[okw, 2], 75)
    if okw.sum() >= 8:
        pts = np.column_stack([p0[0] + wide[okw, 0] * d[0] + wide[okw, 1] * n[0],
                               p0[1] + wide[okw, 0] * d[1] + wide[okw, 1] * n[1]])
        ln = fit_line_robust(pts, inlier_tol=1.5)
        d1 = ln.direction if ln.direction @ d >= 0 else -ln.direction
        # only a clearly wrong mask direction is replaced (4-35 deg off)
        if (np.cos(np.deg2rad(35)) <= abs(d1 @ d) <= np.cos(np.deg2rad(4))
                and ln.n_inliers >= 0.5 * okw.sum()):
            u_emin = float((np.asarray(geo.eminence_rc, float) - ln.point) @ d1)
            u_rim0 = float((np.asarray(geo.corner_rc, float) - ln.point) @ d1)
            p0, d = ln.point, d1
            n = up_normal_of(d)
            u_list = np.arange(u_emin + 2.0, max(u_rim0, u_emin + 20.0) + 12.0, 0.5)
    rows = scan(p0, d, n, 4.0, 50.0)
    arr = np.array(rows, float)
    good = np.isfinite(arr[:, 1])
    if good.sum() < 8:
        raise DetectionError("no bright cartilage band on the tibial plateau; give landmarks "
                             "with --points or --interactive")
    c_ref = float(np.median(arr[good, 2]))
    ok = good & (arr[:, 2] > 0.4 * c_ref)
    i_mid = int(np.argmin(np.abs(arr[:, 0] - 0.5 * (u_emin + min(u_rim0, u_emin + 40.0)))))
    cand = np.nonzero(ok)[0]
    if cand.size < 8:
        raise DetectionError("tibial cartilage surface not traced; give landmarks with "
                             "--points or --interactive")
    i_mid = int(cand[np.argmin(np.abs(cand - i_mid))])
    i_end = i_mid
    back = int(round(2.0 / 0.5))  # u_list step 0.5 mm
    skipped = np.zeros(len(ok), bool)
    while i_end + 1 < len(ok):
        nxt = i_end + 1
        if not (ok[nxt] and abs(arr[nxt, 1] - arr[i_end, 1]) < 1.0):
            # up to two noisy profiles (a spike in the dark bone taken for the band)
            # do not end the plateau when the surface resumes at the same height
            nxt = next((j for j in range(i_end + 2, min(len(ok), i_end + 4))
                        if ok[j] and abs(arr[j, 1] - arr[i_end, 1]) < 1.0), -1)
            if nxt < 0:
                break
        # a surface sloping steadily down beyond the rim (fluid wrapping an extruded
        # meniscus and the bone's outer side) is not the plateau: more than 1.2 mm of
        # drop within 2 mm ends it
        j0 = max(i_mid, nxt - back)
        prev = arr[j0 : i_end + 1, 1][ok[j0 : i_end + 1] & ~skipped[j0 : i_end + 1]]
        if prev.size and arr[nxt, 1] < prev.max() - 1.2:
            notes.append("cartilage surface drops steeply beyond the rim; rim set there")
            break
        skipped[i_end + 1 : nxt] = True
        i_end = nxt
    ok = ok & ~skipped
    u_rim = float(arr[i_end, 0])
    xy = np.column_stack([p0[0] + arr[:, 0] * d[0] + arr[:, 1] * n[0],
                          p0[1] + arr[:, 0] * d[1] + arr[:, 1] * n[1]])
    idx = np.arange(len(ok))
    spanu = u_rim - u_emin
    fit = ok & (idx <= i_end) & (arr[:, 0] >= u_emin + 0.35 * spanu) & (arr[:, 0] <= u_rim - 1.0)
    if fit.sum() < 4:
        fit = ok & (idx <= i_end)
    if fit.sum() < 2:
        raise DetectionError("cartilage surface of the plateau too short to fit a line")
    plateau = fit_line_robust(xy[fit], inlier_tol=1.0)
    dd = plateau.direction if plateau.direction @ d >= 0 else -plateau.direction
    if abs(dd @ d) < np.cos(np.deg2rad(25)):
        notes.append("cartilage plateau line disagrees with the mask; mask direction kept")
        dd = d
    plateau = Line(plateau.point, dd, plateau.rms_mm, plateau.n_inliers)
    near = ok & (idx <= i_end) & (arr[:, 0] >= u_rim - 6.0) & (arr[:, 0] <= u_rim - 0.5)
    rim_line = Line(plateau.point, dd.copy(), plateau.rms_mm, plateau.n_inliers)
    if near.sum() >= 4:
        rl = fit_line_robust(xy[near], inlier_tol=0.4)
        rdir = rl.direction if rl.direction @ dd >= 0 else -rl.direction
        if abs(rdir @ dd) >= np.cos(np.deg2rad(30)):
            rim_line = Line(rl.point, rdir, rl.rms_mm, rl.n_inliers)
    n2 = up_normal_of(dd)
    rd = rim_line.direction
    rim_pt = rim_line.point + ((xy[i_end] - rim_line.point) @ rd) * rd
    # outer cortex below the rim: the dark cortex line between the (dark-grey) marrow and
    # the soft tissue; its outer half-way crossing is the bone surface
    uc = np.arange(-8.0, 5.0 + 1e-9, 0.05)
    # noisy images (fat-suppressed at low SNR): average over a taller band and smooth
    # more along the profile, up to twice the usual, so the crossings do not scatter
    scale = float(np.clip(_local_noise(image, rim_pt, **kw) / 0.06, 1.0, 2.0))
    offsets = np.linspace(-0.8 * scale, 0.8 * scale, 2 * int(round(2.0 * scale)) + 1)
    cpts = []
    steps: list[tuple[float, float]] = []  # (depth, u) of plain dark-to-bright steps
    for depth in np.arange(cortex_depth_mm[0], cortex_depth_mm[1] + 0.01, 0.5):
        base = rim_pt - depth * n2
        acc = 0.0
        for o in offsets:
            b = base + o * n2
            acc = acc + sample_mm(image, b[0] + uc * dd[0], b[1] + uc * dd[1], **kw)
        p = ndi.gaussian_filter1d(acc / len(offsets), 0.25 * scale / 0.05)
        bone = float(np.median(p[uc <= -5.0]))
        w = np.nonzero((uc >= -5.0) & (uc <= 2.0))[0]
        i_min = int(w[np.argmin(p[w])])
        p_min = float(p[i_min])
        j_end = min(len(p), i_min + int(1.5 / 0.05) + 1)
        p_out = float(p[i_min:j_end].max())
        if bone - p_min < 0.02 or p_out - p_min < 0.04:
            # no cortex line darker than the marrow (DESS: marrow as dark as the
            # cortex; coarse columns blur it): keep the plain step, if any, for
            # a straightness check over the whole depth range below
            e = _step_edge(p, uc, search=(-5.0, 2.0), reach_mm=3.0)
            if e is not None:
                steps.append((float(depth), e))
            continue
        x = subpixel_crossing(p, level=0.5 * (p_min + p_out), start=i_min, direction=1)
        if x is not None:
            cpts.append(base + (uc[0] + x * 0.05) * dd)
    max_jump = 4.0
    if len(cpts) < 6 and steps:
        spts = _straight_step_cortex(steps, depth_range=cortex_depth_mm, notes=notes)
        if spts is not None:
            cpts = [rim_pt - dep * n2 + u * dd for dep, u in spts]
            # a step is a weaker cue than a cortex line: its margin must agree with
            # the end of the cartilage (a spur's surface taken for the cortex would
            # move the margin out beyond the cartilage)
            max_jump = 2.0
    margin_notes: list[str] = []
    cortex, margin = _margin_from_cortex(
        cpts, rim_line, rim_pt, outward=dd, up=n2, max_jump_mm=max_jump,
        rim_name="cartilage surface", notes=margin_notes,
    )
    if cortex is None and len(cpts) >= 6:
        # the cortex line and a ligament just outside it about equally dark: the
        # points split into two parallel columns and no line is fitted; the cortex is
        # the inner column (the rim alone may lie on a spur)
        arr_c = np.asarray(cpts, float)
        split = split_cortex_columns(np.column_stack([(rim_pt - arr_c) @ n2,
                                                      (arr_c - rim_pt) @ dd]))
        if split is not None:
            inner, outer = split
            gap = float(np.median((arr_c[outer] - rim_pt) @ dd)
                        - np.median((arr_c[inner] - rim_pt) @ dd))
            inner_notes: list[str] = []
            c_in, m_in = _margin_from_cortex(
                list(arr_c[inner]), rim_line, rim_pt, outward=dd, up=n2,
                max_jump_mm=max_jump, rim_name="cartilage surface", notes=inner_notes,
            )
            if c_in is not None:
                cortex, margin = c_in, m_in
                margin_notes = [f"cortex points split into two parallel columns {gap:.1f} mm "
                                "apart (cortex and a ligament?); inner column taken as the "
                                "cortex"]
            else:
                margin_notes.append(f"cortex points split into two parallel columns "
                                    f"{gap:.1f} mm apart; tibial margin ambiguous")
    notes.extend(margin_notes)
    return RefinedMargin(plateau, cortex, np.asarray(margin, float), notes, 0.0)
