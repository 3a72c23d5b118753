"""Landmarks of the longitudinal (coronal) ultrasound view of the medial joint line.

The image is a B-mode frame cropped to its calibrated region: rows are depth
(skin at the top), columns run along the probe. Expected anatomy: the femoral
and tibial cortices as bright lines roughly parallel to the skin with acoustic
shadow beneath, separated by the joint gap in which the meniscus is a
hyperechoic triangle, base toward the skin.

Everything is computed on an isotropic working grid of :data:`WORK_MM` mm
(bilinear resampling), so non-square pixels need no special care; the results
are mapped back to pixels of the input image.

Points are ``(row, col)`` pixels of the input image; directions are unit
vectors in physical ``(row_mm, col_mm)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from kneemeasure.errors import DetectionError, UsageError

#: Working grid step (mm).
WORK_MM = 0.1
#: Half-width (mm) of the window of the parabola fitted around the meniscal peak.
PEAK_HALF_WINDOW_MM = 2.5

Point = tuple[float, float]


@dataclass
class UsLandmarks:
    """Detected landmarks on one ultrasound frame (pixels of the input image).

    Attributes
    ----------
    tibial_margin_rc : (float, float)
        Where the tibial cortex turns into the joint gap (on the fitted cortex line).
    femoral_margin_rc : (float, float)
        Where the femoral cortex turns into the joint gap.
    reference_point_rc : (float, float)
        A point on the reference line (the tibial margin).
    reference_dir_rc : (float, float)
        Unit direction of the reference line, physical ``(row_mm, col_mm)``.
    meniscus_rc : (float, float)
        Most superficial point of the meniscal body.
    tibia_side : str
        ``"image-left"`` or ``"image-right"``.
    proximal_source : str
        ``"anatomy"`` or ``"user"``.
    confidence : float
        In [0, 1].
    notes : list of str
    reference : str
        ``"tibial"`` or ``"femorotibial"``.
    tibial_cortex_rc : ndarray, shape (n, 2)
        Cortex surface points used for the tibial line fit (for plotting).
    femoral_cortex_rc : ndarray, shape (m, 2)
        Femoral cortex surface points (for plotting).
    meniscus_edge_rc : ndarray, shape (k, 2)
        Superficial edge of the meniscus (for plotting).
    """

    tibial_margin_rc: Point
    femoral_margin_rc: Point
    reference_point_rc: Point
    reference_dir_rc: Point
    meniscus_rc: Point
    tibia_side: str
    proximal_source: str
    confidence: float
    notes: list[str] = field(default_factory=list)
    reference: str = "tibial"
    tibial_cortex_rc: np.ndarray = field(default_factory=lambda: np.empty((0, 2)), repr=False)
    femoral_cortex_rc: np.ndarray = field(default_factory=lambda: np.empty((0, 2)), repr=False)
    meniscus_edge_rc: np.ndarray = field(default_factory=lambda: np.empty((0, 2)), repr=False)


def _px(mm: float) -> float:
    return mm / WORK_MM


def _resample(image: np.ndarray, rs: float, cs: float) -> np.ndarray:
    rows, cols = image.shape
    n_r = int(math.floor((rows - 1) * rs / WORK_MM)) + 1
    n_c = int(math.floor((cols - 1) * cs / WORK_MM)) + 1
    rr = np.arange(n_r) * (WORK_MM / rs)
    cc = np.arange(n_c) * (WORK_MM / cs)
    return ndimage.map_coordinates(
        image.astype(np.float32), np.meshgrid(rr, cc, indexing="ij"), order=1, mode="nearest"
    )


def _window_mean_below(img: np.ndarray, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``img[r+start : r+stop, c]`` for every (r, c) and the sample count."""
    rows = img.shape[0]
    cum = np.vstack([np.zeros((1, img.shape[1])), np.cumsum(img, axis=0)])
    r = np.arange(rows)
    a = np.clip(r + start, 0, rows)
    b = np.clip(r + stop, 0, rows)
    n = (b - a).astype(float)
    s = cum[b] - cum[a]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s / np.maximum(n, 1)[:, None]
    return mean, n


def _crossing_up(profile: np.ndarray, start: int, level: float, stop: int) -> float | None:
    """Walk up from ``start``; the sub-pixel index where the profile falls below ``level``."""
    r = start
    while r > stop:
        if profile[r - 1] < level <= profile[r]:
            f = (profile[r] - level) / (profile[r] - profile[r - 1])
            return r - f
        r -= 1
    return None


def _robust_polyfit(x: np.ndarray, y: np.ndarray, deg: int) -> tuple[np.ndarray, float, np.ndarray]:
    keep = np.ones(x.size, dtype=bool)
    coef = np.polyfit(x, y, deg)
    for _ in range(4):
        res = y - np.polyval(coef, x)
        mad = np.median(np.abs(res[keep] - np.median(res[keep]))) * 1.4826
        new = np.abs(res) <= max(3.0 * mad, 0.15)
        if new.sum() < deg + 3 or np.array_equal(new, keep):
            keep = new if new.sum() >= deg + 3 else keep
            break
        keep = new
        coef = np.polyfit(x[keep], y[keep], deg)
    res = y[keep] - np.polyval(coef, x[keep])
    return coef, float(np.sqrt(np.mean(res**2))), keep


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of runs of True (stop exclusive)."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True))


def detect_us_landmarks(
    image: np.ndarray,
    *,
    row_spacing_mm: float,
    col_spacing_mm: float,
    proximal: str | None = None,
    reference: str = "tibial",
) -> UsLandmarks:
    """Detect the cortices, the tibial margin and the meniscal edge on a B-mode frame.

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
        Grayscale frame cropped to the calibrated region, skin at row 0.
    row_spacing_mm, col_spacing_mm : float
        Physical size of a row step and a column step (mm).
    proximal : {"image-left", "image-right"} or None
        Side of the femur; ``None`` detects it from the anatomy (the femoral
        condyle is convex, the tibial cortex straight).
    reference : {"tibial", "femorotibial"}
        Reference line: the tibial cortex line extended across the gap, or the
        line through the femoral and tibial margins.

    Returns
    -------
    UsLandmarks

    Raises
    ------
    DetectionError
        When no two bone cortices with a joint gap and a meniscus between them are found.

    Notes
    -----
    1. Resample to an isotropic 0.1 mm grid and normalise (1st..99th percentile).
    2. Cortex: per column, the row maximising brightness minus the mean of the
       1..8 mm below it (bone casts a shadow). Columns with a strong score are bone.
    3. Joint gap: the widest interior run (1.5..20 mm) of non-bone columns
       flanked by >= 4 mm of bone on both sides.
    4. Cortex surface per column: half-way crossing above the cortex ridge.
       A robust line (and parabola) is fitted to each side over 0.8..12 mm from
       the gap; the more convex side is the femur.
    5. Margins: the innermost column whose surface lies on its side's fit.
    6. Meniscus: the bright (Otsu) connected region reaching into the gap below
       the reference line; its superficial edge by half-way crossing per column;
       the most superficial point from a parabola fitted to the edge's signed
       distance around its maximum.
    """
    if reference not in ("tibial", "femorotibial"):
        raise UsageError(f"--us-reference {reference!r} is not one of tibial, femorotibial")
    if proximal not in (None, "image-left", "image-right"):
        raise UsageError(f"--proximal {proximal!r} is not one of image-left, image-right")
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise DetectionError(f"expected a 2D grayscale frame, got shape {image.shape}")
    for name, v in (("row_spacing_mm", row_spacing_mm), ("col_spacing_mm", col_spacing_mm)):
        if not (math.isfinite(v) and v > 0):
            raise UsageError(f"invalid {name}={v!r}: must be a positive number of mm")
    rs, cs = float(row_spacing_mm), float(col_spacing_mm)
    if image.shape[0] * rs < 10 or image.shape[1] * cs < 15:
        raise DetectionError(
            f"image region {image.shape[0] * rs:.1f} x {image.shape[1] * cs:.1f} mm is too "
            "small for a joint-line view (need >= 10 mm depth and 15 mm width)"
        )
    notes: list[str] = []
    raw = _resample(image, rs, cs)
    lo, hi = np.percentile(raw, [1, 99])
    if not hi > lo:
        raise DetectionError("the image region is (nearly) constant: no anatomy to detect")
    work = (raw - lo) / (hi - lo)
    n_r, n_c = work.shape

    # -- 2. cortex score per column ------------------------------------------------------
    gs = ndimage.gaussian_filter(work, (_px(0.3), _px(0.6)))
    below, count = _window_mean_below(gs, int(_px(1.0)), int(_px(8.0)))
    score = gs - below
    skin = int(_px(2.0))
    score[:skin] = -np.inf
    score[count < _px(3.0)] = -np.inf
    surf = np.argmax(score, axis=0)
    smax = score[surf, np.arange(n_c)]
    smax = np.where(np.isfinite(smax), smax, 0.0)
    top = np.percentile(smax, 90)
    if not top > 0.15:
        raise DetectionError("no bone cortex with acoustic shadow found (not a joint-line view?)")
    bone = smax > max(0.65 * top, 0.15)
    k = max(1, int(_px(1.0)))
    bone = ndimage.binary_closing(bone, np.ones(k), border_value=0) | bone
    bone = ndimage.binary_opening(bone, np.ones(k))

    # -- 3. the joint gap -------------------------------------------------------------------
    runs = _runs(bone)
    best = None
    for i in range(len(runs) - 1):
        left, right = runs[i], runs[i + 1]
        width = (right[0] - left[1]) * WORK_MM
        if not (1.5 <= width <= 20.0):
            continue
        if (left[1] - left[0]) * WORK_MM < 4.0 or (right[1] - right[0]) * WORK_MM < 4.0:
            continue
        if best is None or width > best[2]:
            best = (left, right, width)
    if best is None:
        raise DetectionError(
            "no joint gap between two bone cortices found (need a 1.5-20 mm gap with "
            ">= 4 mm of cortex on both sides)"
        )
    left_run, right_run, gap_mm = best

    # -- 4. cortex surface by half-way crossing ------------------------------------------
    gl = ndimage.gaussian_filter(work, (_px(0.1), _px(0.5)))

    def surface(cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out_c, out_r = [], []
        for c in cols:
            r0 = int(surf[c])
            a, b = max(0, r0 - int(_px(0.6))), min(n_r, r0 + int(_px(0.6)) + 1)
            rp = a + int(np.argmax(gl[a:b, c]))
            above = gl[max(0, rp - int(_px(2.0))) : max(0, rp - int(_px(0.8))), c]
            if above.size < 3:
                continue
            level = 0.5 * (gl[rp, c] + float(np.median(above)))
            e = _crossing_up(gl[:, c], rp, level, max(0, rp - int(_px(1.5))))
            if e is not None:
                out_c.append(c)
                out_r.append(e)
        return np.asarray(out_c, dtype=float), np.asarray(out_r, dtype=float)

    sides = {}
    for name, run, toward in (("left", left_run, -1), ("right", right_run, +1)):
        edge = run[1] - 1 if toward < 0 else run[0]  # column next to the gap
        far = edge + toward * int(_px(12.0))
        lo_c, hi_c = sorted((edge, far))
        cols = np.arange(max(lo_c, run[0]), min(hi_c, run[1] - 1) + 1)
        c_all, r_all = surface(cols)
        dist = np.abs(c_all - edge) * WORK_MM  # mm from the gap
        use = dist >= 0.8
        if use.sum() < _px(2.0):
            raise DetectionError(f"too little {name} cortex next to the joint gap for a line fit")
        x = dist[use]
        line, rms, keep = _robust_polyfit(x, r_all[use] * WORK_MM, 1)
        quad, quad_rms, quad_keep = _robust_polyfit(x, r_all[use] * WORK_MM, 2)
        sides[name] = {
            "edge": edge,
            "toward": toward,
            "cols": c_all,
            "rows": r_all,
            "dist": dist,
            "line": line,
            "quad": quad,
            "rms": rms,
            "inliers": float(keep.mean()),
            "quad_rms": quad_rms,
            "quad_inliers": float(quad_keep.mean()),
            "score": float(np.median(smax[cols])),
        }

    # -- femur / tibia ---------------------------------------------------------------------
    curv = {k_: s["quad"][0] for k_, s in sides.items()}  # d2z/dx2 /2, z depth (mm)
    if proximal is None:
        femur_name = "left" if curv["left"] > curv["right"] else "right"
        diff = abs(curv["left"] - curv["right"])
        side_conf = float(np.clip(diff / 0.008, 0.0, 1.0))
        proximal_source = "anatomy"
        if side_conf < 0.5:
            notes.append(
                "femur/tibia side uncertain from cortex curvature; pass --proximal to set it"
            )
    else:
        femur_name = "left" if proximal == "image-left" else "right"
        side_conf = 1.0
        proximal_source = "user"
    tibia_name = "right" if femur_name == "left" else "left"
    tib, fem = sides[tibia_name], sides[femur_name]
    tibia_side = "image-left" if tibia_name == "left" else "image-right"

    def side_point(s: dict, coef: np.ndarray, tol_mm: float = 0.4) -> tuple[float, float]:
        """Innermost column whose surface is on the fit; the point on the fit there."""
        order = np.argsort(s["dist"])
        for i in order:
            d = s["dist"][i]
            if abs(s["rows"][i] * WORK_MM - np.polyval(coef, d)) <= tol_mm:
                return float(np.polyval(coef, d) / WORK_MM), float(s["cols"][i])
        d = 0.8
        return float(np.polyval(coef, d) / WORK_MM), float(s["edge"] + s["toward"] * _px(d))

    tm_w = side_point(tib, tib["line"])
    fm_w = side_point(fem, fem["quad"])
    # tibial line direction in working pixels (= physical, isotropic grid), toward the tibia
    slope = tib["line"][0]  # d(row_mm)/d(dist_mm); dist grows away from the gap
    tdir = np.array([slope, float(tib["toward"])])
    tdir /= np.hypot(*tdir)
    if reference == "tibial":
        rdir = tdir
    else:
        rdir = np.array([tm_w[0] - fm_w[0], tm_w[1] - fm_w[1]])
        if np.hypot(*rdir) * WORK_MM < 1.0:
            raise DetectionError("femoral and tibial margins coincide: no femorotibial line")
        rdir /= np.hypot(*rdir)
    normal = np.array([-rdir[1], rdir[0]])
    if normal[0] > 0:  # positive toward the skin (smaller row)
        normal = -normal

    def height(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        return (r - tm_w[0]) * normal[0] * WORK_MM + (c - tm_w[1]) * normal[1] * WORK_MM

    # -- 6. meniscus --------------------------------------------------------------------
    c_lo = int(max(0, min(tm_w[1], fm_w[1]) - _px(3.0)))
    c_hi = int(min(n_c - 1, max(tm_w[1], fm_w[1]) + _px(3.0)))
    rr, cc = np.mgrid[0:n_r, c_lo : c_hi + 1]
    h = height(rr.astype(float), cc.astype(float))
    roi = (h <= 11.0) & (h >= -5.0) & (rr >= skin)
    # exclude cortex and shadow in bone columns of the ROI
    for s in (tib, fem):
        for c, r in zip(s["cols"], s["rows"], strict=True):
            if c_lo <= c <= c_hi:
                roi[int(max(0, r - _px(0.2))) :, int(c) - c_lo] = False
    # ... and everything below the bone surfaces extrapolated to the margins (rounded corners)
    for s, coef in ((tib, tib["line"]), (fem, fem["quad"])):
        margin_c = tm_w[1] if s is tib else fm_w[1]
        for j in range(c_hi - c_lo + 1):
            c = j + c_lo
            if (c - margin_c) * s["toward"] >= -_px(0.3):
                d = (c - s["edge"]) * s["toward"] * WORK_MM
                r_cut = np.polyval(coef, max(d, 0.0)) / WORK_MM - _px(0.3)
                roi[int(max(0, r_cut)) :, j] = False
    gm = ndimage.gaussian_filter(work, _px(0.25))[:, c_lo : c_hi + 1]
    vals = gm[roi]
    if vals.size < 100:
        raise DetectionError("joint gap region too small to search for the meniscus")
    thr = _otsu(vals)
    bright = ndimage.binary_fill_holes(roi & (gm > thr))
    disk = np.hypot(*np.mgrid[-3:4, -3:4]) <= 3.0
    bright = ndimage.binary_opening(bright, disk)  # drops speckle and thin cortex rims
    lab, n_lab = ndimage.label(bright)
    gap_lo, gap_hi = sorted((tm_w[1], fm_w[1]))
    mid_lo = gap_lo + 0.25 * (gap_hi - gap_lo)
    mid_hi = gap_hi - 0.25 * (gap_hi - gap_lo)
    seed = (h <= -0.5) & (h >= -2.5) & (cc >= mid_lo) & (cc <= mid_hi)
    if n_lab == 0 or not (lab[seed] > 0).any():
        raise DetectionError("no hyperechoic meniscus found in the joint gap")
    counts = np.bincount(lab[seed], minlength=n_lab + 1)
    counts[0] = 0
    comp = lab == int(np.argmax(counts))
    comp_cols = np.flatnonzero(comp.any(axis=0))
    if (comp_cols.size * WORK_MM) > gap_mm + 6.5:
        notes.append("bright region at the gap is wider than a meniscus (merged with MCL?)")
    inside = float(np.median(gm[comp]))
    top_rows = np.argmax(comp, axis=0)
    band = np.zeros_like(comp)
    for j in comp_cols:
        t = top_rows[j]
        band[max(0, t - int(_px(1.5))) : max(0, t - int(_px(0.5))), j] = True
    band &= roi & ~comp
    if band.sum() < 10:
        raise DetectionError("no tissue above the meniscus to locate its superficial edge")
    above = float(np.median(gm[band]))
    level = 0.5 * (inside + above)
    g2 = ndimage.gaussian_filter(work, (_px(0.1), _px(0.4)))[:, c_lo : c_hi + 1]
    edge_c, edge_r = [], []
    for j in comp_cols:
        t = int(top_rows[j])
        run = comp[t : t + int(_px(1.0)), j]
        if not run.all():  # a thin bright rim over shadow is cortex, not meniscus
            continue
        start = min(n_r - 1, t + int(_px(0.5)))
        if g2[start, j] < level:
            start = t
        e = _crossing_up(g2[:, j], start, level, max(0, t - int(_px(1.5))))
        if e is not None:
            edge_c.append(j + c_lo)
            edge_r.append(e)
    if len(edge_c) < 5:
        raise DetectionError("the superficial edge of the meniscus could not be traced")
    edge_c = np.asarray(edge_c, float)
    edge_r = np.asarray(edge_r, float)
    hv = height(edge_r, edge_c)
    hs = ndimage.median_filter(hv, size=5, mode="nearest")
    # the peak lies over the gap or the tibial margin, not over the femoral corner:
    # search from a quarter of the gap off the femoral margin to 2 mm past the tibial margin
    toward_tib = 1.0 if tm_w[1] > fm_w[1] else -1.0
    pos = (edge_c - fm_w[1]) * toward_tib  # columns from the femoral margin toward the tibia
    gap_px = abs(tm_w[1] - fm_w[1])
    allowed = (pos >= 0.25 * gap_px) & (pos <= gap_px + _px(2.0))
    if not allowed.any():
        raise DetectionError("no meniscal edge over the joint gap")
    jmax = int(np.flatnonzero(allowed)[np.argmax(hs[allowed])])
    win = np.abs(edge_c - edge_c[jmax]) * WORK_MM <= PEAK_HALF_WINDOW_MM
    xw = (edge_c[win] - edge_c[jmax]) * WORK_MM
    peak_h = float(hs[jmax])
    peak_c = float(edge_c[jmax])
    if win.sum() >= 7:
        q, q_rms, _ = _robust_polyfit(xw, hv[win], 2)
        if q[0] < 0:
            xv = -q[1] / (2 * q[0])
            if abs(xv) <= PEAK_HALF_WINDOW_MM:
                peak_h = float(np.polyval(q, xv))
                peak_c = float(edge_c[jmax] + xv / WORK_MM)
            else:
                peak_h = float(np.max(np.polyval(q, xw)))
        else:
            peak_h = float(np.polyval(q, 0.0))
    # point with that height at column peak_c: on the line foot + normal * height
    along = np.array([-normal[1], normal[0]])
    # foot on the reference line at column peak_c
    if abs(along[1]) < 1e-6:
        raise DetectionError("reference line is parallel to the beam: not a joint-line view")
    t_al = (peak_c - tm_w[1]) / along[1]
    foot = np.array(tm_w) + t_al * along
    men_w = foot + normal * (peak_h / WORK_MM)
    # move along the line so the point sits at column peak_c exactly (the height is unchanged)
    men_w = men_w + along * ((peak_c - men_w[1]) / along[1])

    # femoral margin height over the tibial line (mm): the two cortices meet at the joint line
    fem_above_tibial_mm = float(
        ((fm_w[0] - tm_w[0]) * tdir[1] - (fm_w[1] - tm_w[1]) * tdir[0]) * WORK_MM
    )
    # -- confidence ----------------------------------------------------------------------
    parts = {
        "cortex": float(np.clip((min(tib["score"], fem["score"]) - 0.15) / 0.25, 0, 1)),
        "tibial_fit": float(np.clip(1.0 - (tib["rms"] - 0.08) / 0.3, 0, 1)),
        "inliers": float(np.clip((tib["inliers"] - 0.5) / 0.3, 0, 1)),
        "femoral_fit": float(np.clip(1.0 - (fem["quad_rms"] - 0.1) / 0.3, 0, 1))
        * float(np.clip((fem["quad_inliers"] - 0.5) / 0.3, 0, 1)),
        "margins": 1.0 if abs(fem_above_tibial_mm) <= 4.0 else 0.2,
        "side": 0.3 + 0.7 * side_conf,
        "meniscus": float(np.clip((inside - above) / 0.25, 0, 1)),
        "gap": 1.0 if 2.0 <= gap_mm <= 12.0 else 0.4,
        "extent": 1.0 if comp_cols.size * WORK_MM <= gap_mm + 6.5 else 0.3,
        "range": 1.0 if -3.0 <= peak_h <= 10.0 else 0.3,
    }
    vals_p = np.array(list(parts.values()))
    confidence = float(np.clip(np.exp(np.mean(np.log(np.maximum(vals_p, 1e-3)))), 0, 1))
    confidence = float(min(confidence, vals_p.min() + 0.4))
    for key, v in parts.items():
        if v < 0.5:
            notes.append(f"low {key} score {v:.2f}")

    def back(p: np.ndarray | Point) -> Point:
        return (float(p[0] * WORK_MM / rs), float(p[1] * WORK_MM / cs))

    def back_arr(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.column_stack([r * WORK_MM / rs, c * WORK_MM / cs])

    return UsLandmarks(
        tibial_margin_rc=back(tm_w),
        femoral_margin_rc=back(fm_w),
        reference_point_rc=back(tm_w),
        reference_dir_rc=(float(rdir[0]), float(rdir[1])),
        meniscus_rc=back(men_w),
        tibia_side=tibia_side,
        proximal_source=proximal_source,
        confidence=confidence,
        notes=notes,
        reference=reference,
        tibial_cortex_rc=back_arr(tib["rows"], tib["cols"]),
        femoral_cortex_rc=back_arr(fem["rows"], fem["cols"]),
        meniscus_edge_rc=back_arr(edge_r, edge_c),
    )


def _otsu(values: np.ndarray) -> float:
    hist, edges = np.histogram(values, bins=128)
    centers = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(centers[int(np.argmax(between))])
