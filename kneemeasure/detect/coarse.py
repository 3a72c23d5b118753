"""Coarse whole-series knee analysis on a 1 mm grid, shared by slice choice and laterality.

One pass over the series: every coronal slice is resampled to ``step_mm`` pixels
(block mean, then linear interpolation), the marrow polarity is decided once for the
series, and on each slice the femur and the tibia are segmented (bone-like threshold,
dark cortex lines cut, morphological opening). From the pair come the joint extent, the
medial plateau line, the eminence height and a meniscal-body check. The result
(:class:`CoarseKnee`) is computed once and handed to
:func:`~kneemeasure.detect.slice_select.select_reference_slice` and
:func:`~kneemeasure.detect.laterality.infer_fibula_side`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_multiotsu, threshold_otsu

from kneemeasure.detect.grid import COARSE_STEP_MM, coarse_shape, downsample_volume
from kneemeasure.detect.joint import fill_rows, joint_side_cuts
from kneemeasure.detect.morph import binary_opening_disk
from kneemeasure.detect.morph import disk as _disk

# notch trace weights: marrow-below penalty and per-pixel row jump (ridge term in 0..2)
_W_BELOW = 1.0
_W_JUMP = 0.02

__all__ = ["CoarseKnee", "CoarseSlice", "analyse_knee", "downsample_volume", "plane_subset"]


@dataclass
class CoarseSlice:
    """What the coarse pass found on one slice (all rows/cols on the ``step_mm`` grid).

    Attributes
    ----------
    ok : bool
        A femur above a tibia was found.
    femur, tibia : ndarray of bool, shape (M, N) or None
        Bone masks.
    joint_cols : ndarray of int
        Columns where the femur lies 0.5–15 mm above the tibia.
    joint_width_mm : float
        Extent of ``joint_cols`` (5th to 95th percentile) in mm.
    centre_col : float
        Middle of the joint (between the compartments).
    plateau_row : float
        Median tibial top row over the joint columns (the joint level).
    medial_line : (float, float) or None
        Medial plateau line ``row = a + b * col`` (None when not fitted).
    eminence_mm : float
        Height of the highest tibial point between the compartments above the medial
        plateau line (mm); NaN when not measured.
    meniscus_dark_mm2 : float
        Area of meniscus-dark pixels in the medial joint periphery (mm²).
    """

    ok: bool = False
    femur: np.ndarray | None = None
    tibia: np.ndarray | None = None
    joint_cols: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    joint_width_mm: float = 0.0
    centre_col: float = float("nan")
    plateau_row: float = float("nan")
    medial_line: tuple[float, float] | None = None
    eminence_mm: float = float("nan")
    meniscus_dark_mm2: float = 0.0


@dataclass
class CoarseKnee:
    """Result of :func:`analyse_knee`.

    Attributes
    ----------
    iso : ndarray, shape (n_slices, M, N), float32
        The series on the ``step_mm`` grid, scaled to [0, 1] (series-wide percentiles).
    step_mm : float
    polarity : int
        +1 when marrow is bright (T1/PD), -1 when dark (fat-suppressed PD, DESS).
    slices : list of CoarseSlice
        One per slice (``ok=False`` where nothing was found or the slice was skipped).
    medial_col_sign : int or None
        Medial direction used for the eminence/meniscus measures (None: not measured).
    row_spacing_mm, col_spacing_mm : float
        Spacing of the original slices.
    planes : list of int or None
        The planes the pass analysed on a thin-plane series (None: every plane).
    searched : frozenset of int
        Slices whose bones were searched (found or not): a later pass with this one
        as ``previous`` does not search them again.
    """

    iso: np.ndarray
    step_mm: float
    polarity: int
    slices: list[CoarseSlice]
    medial_col_sign: int | None
    row_spacing_mm: float
    col_spacing_mm: float
    planes: list[int] | None = None
    searched: frozenset[int] = frozenset()




def _normalise_volume(iso: np.ndarray) -> np.ndarray:
    sample = iso[:, ::2, ::2]
    lo, hi = np.percentile(sample, [1.0, 99.5])
    if hi - lo <= 1e-6 * max(abs(hi), 1.0):
        return np.zeros_like(iso)
    return np.clip((iso - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def _polarity(norm: np.ndarray) -> int:
    """+1 when most tissue is bright (T1/PD: marrow and fat), -1 when dark (fat-suppressed)."""
    n = norm.shape[0]
    mid = norm[max(0, n // 2 - 2) : n // 2 + 3, ::2, ::2]
    tissue = mid[mid > 0.08]
    if tissue.size == 0:
        return 1
    return 1 if float(np.median(tissue)) > 0.42 else -1


def _body_mask(norm: np.ndarray) -> np.ndarray:
    return fill_rows(ndi.binary_opening(norm > 0.06, structure=_disk(1)))


def _pair(lab: np.ndarray, n: int) -> tuple[float, int, int]:
    """Best (femur, tibia) label pair on a 1 mm grid: wide overlap, thin gap."""
    if n < 2:
        return 0.0, 0, 0
    h = lab.shape[0]
    areas = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    objs = ndi.find_objects(lab)
    keep = []
    for k in range(1, n + 1):
        if areas[k - 1] < 250:
            continue
        sl_ = objs[k - 1]
        if sl_[0].stop - sl_[0].start < 15:
            continue
        m = lab[sl_] == k
        border = 0
        if sl_[1].start == 0:
            border += int(m[:, 0].sum())
        if sl_[1].stop == lab.shape[1]:
            border += int(m[:, -1].sum())
        if border < 0.3 * h:
            keep.append(k)
    if len(keep) < 2:
        return 0.0, 0, 0
    tops, bots = {}, {}
    for k in keep:
        m = lab == k
        has = m.any(axis=0)
        tops[k] = np.where(has, np.argmax(m, axis=0), -1)
        bots[k] = np.where(has, h - 1 - np.argmax(m[::-1], axis=0), -1)
    best = (0.0, 0, 0)
    for f in keep:
        for t in keep:
            if f == t:
                continue
            both = (bots[f] >= 0) & (tops[t] >= 0)
            gap = tops[t] - bots[f]
            ok = both & (gap > 0.5) & (gap < 15.0)
            width = float(ok.sum())
            if width < 20.0:
                continue
            med_gap = float(np.median(gap[ok]))
            score = width * (1.0 if 1.5 <= med_gap <= 10.0 else 0.5)
            score *= float(np.sqrt(min(1.0, min(areas[f - 1], areas[t - 1]) / 1500.0)))
            if score > best[0]:
                best = (score, f, t)
    return best


def _bone_pair(norm: np.ndarray, polarity: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Femur and tibia masks on one 1 mm slice (``norm`` in [0, 1])."""
    sm = ndi.gaussian_filter(norm, 0.5)
    body = _body_mask(sm)
    if body.sum() < 400:
        return None
    closed = ndi.grey_closing(sm, footprint=_disk(2))
    resid = sm - ndi.gaussian_filter(sm, 1.0)
    rb = resid[body]
    noise = 1.4826 * float(np.median(np.abs(rb - np.median(rb))))
    depth = closed - sm
    valley = (depth > 0.3 * closed) & (depth > 3.0 * noise)
    if polarity < 0:
        # fat-suppressed: marrow and fat are both dark and a smooth bias field moves them
        # across any global threshold; divide by the local tissue level (15 mm) first
        bw = body.astype(np.float32)
        level = ndi.gaussian_filter(sm * bw, 15.0) / np.maximum(ndi.gaussian_filter(bw, 15.0), 1e-3)
        rel = np.where(body, sm / np.maximum(level, 1e-3), 0.0)
        b = 1.0 - np.clip(rel / max(float(np.percentile(rel[body], 99.0)), 1e-3), 0.0, 1.0)
    else:
        b = sm
    vals = b[body][:: max(1, int(body.sum()) // 20000)]
    thresholds = [threshold_otsu(vals)]
    try:
        thresholds.append(float(threshold_multiotsu(vals, classes=3, nbins=64)[1]))
    except ValueError:
        pass
    cut = joint_side_cuts(sm, body, 1.0) if polarity < 0 else None
    best = (0.0, None, None)
    for thr in thresholds:
        mask = (b > thr) & body & ~valley
        if cut is not None:
            mask &= ~cut
        for r in (1, 2, 3):
            opened = binary_opening_disk(mask, r)
            lab, n = ndi.label(opened)
            score, f, t = _pair(lab, n)
            if f:
                if score > best[0]:
                    best = (score, lab == f, lab == t)
                break
    if best[1] is None:
        return None
    return best[1], best[2]


def _ridge(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Dark-line strength: the larger Hessian eigenvalue (>= 0), scale-normalised."""
    hrr = ndi.gaussian_filter(img, sigma_px, order=(2, 0))
    hcc = ndi.gaussian_filter(img, sigma_px, order=(0, 2))
    hrc = ndi.gaussian_filter(img, sigma_px, order=(1, 1))
    lam = 0.5 * (hrr + hcc) + np.sqrt(0.25 * (hrr - hcc) ** 2 + hrc**2)
    return np.maximum(lam, 0.0) * sigma_px**2


def _joint_bands(sm: np.ndarray, body: np.ndarray, step: float) -> tuple | None:
    """The two bright cartilage/fluid bands of the joint (dark-marrow contrasts).

    Returns ``(lab, left, right)``: the label image and the labels of the band on the
    lower-column side and on the higher-column side, or None.
    """
    vals = sm[body]
    if vals.size < 100:
        return None
    otsu = threshold_otsu(vals)
    thr = max(otsu, 0.5 * float(np.percentile(vals, 99.5)))
    found = _bands_at(sm, body, step, thr)
    if found is None and thr > otsu:
        # a small very bright region (fluid, unsuppressed fat at the edge of the field)
        # sets the 99.5th percentile and the grey cartilage falls below half of it
        found = _bands_at(sm, body, step, 0.5 * (otsu + thr))
    return found


def _bands_at(sm: np.ndarray, body: np.ndarray, step: float, thr: float) -> tuple | None:
    """:func:`_joint_bands` at one brightness threshold."""
    bright = (sm > thr) & body
    lab, n = ndi.label(bright)
    cands = []
    for k, sl_ in enumerate(ndi.find_objects(lab), start=1):
        if sl_ is None:
            continue
        h = (sl_[0].stop - sl_[0].start) * step
        w = (sl_[1].stop - sl_[1].start) * step
        if w < 8.0 or h > 35.0 or w < 0.8 * h:
            continue
        m = lab[sl_] == k
        per_row = m.sum(axis=1)
        core = sl_[0].start + int(np.argmax(per_row))
        if per_row.max() * step < 6.0:
            continue
        cands.append((k, sl_[1].start, sl_[1].stop, core, int(m.sum())))
    best = None
    for a in cands:
        for b in cands:
            if a[1] >= b[1]:
                continue
            gap = (b[1] - a[2]) * step
            if not 2.0 <= gap <= 40.0 or abs(a[3] - b[3]) * step > 12.0:
                continue
            score = min(a[4], b[4])
            if best is None or score > best[0]:
                best = (score, a, b)
    if best is None:
        return None
    return lab, best[1], best[2]


def _tibial_cartilage_floor(
    sm: np.ndarray, lab: np.ndarray, labels: tuple[int, int], bot: np.ndarray, step: float,
    *, reach_mm: float = 10.0,
) -> np.ndarray:
    """Move the band's lower edge down to the top of the tibial marrow.

    The bright-band threshold keeps the femoral cartilage and fluid but can miss the
    dimmer tibial cartilage below them (seen on real DESS), which puts the tibial
    surface millimetres too high. Per band column, start ``reach_mm`` below the band
    in the marrow and climb while the (vertically smoothed) signal stays marrow-dark;
    the first brighter row is the tibial cartilage, and the marrow starts below it.
    Columns where the start is not marrow-dark keep their edge; edges only move down.
    """
    h = sm.shape[0]
    out = bot.copy()
    band = np.isin(lab, labels)
    cols = np.nonzero(bot >= 0)[0]
    if cols.size < 3 or not band.any():
        return out
    reach = max(2, int(round(reach_mm / step)))
    vs = ndi.gaussian_filter1d(sm, max(0.5, 0.7 / step), axis=0)
    # marrow: 6-14 mm below the band edge; band: the bright band itself
    deep = [vs[min(bot[c] + int(6 / step), h - 1) : min(bot[c] + int(14 / step), h), c]
            for c in cols]
    deep = np.concatenate(deep)
    if deep.size < 10:
        return out
    marrow = float(np.percentile(deep, 40))
    level = float(np.median(sm[band]))
    if level - marrow <= 0.05:
        return out
    thr = marrow + 0.3 * (level - marrow)
    for c in cols:
        r = min(int(bot[c]) + reach, h - 1)
        if vs[r, c] >= thr:
            continue
        while r > bot[c] and vs[r - 1, c] < thr:
            r -= 1
        out[c] = r
    return out


def _trace_notch(cost: np.ndarray, r_start: int, r_end: int, max_jump: int) -> np.ndarray:
    """Cheapest row path over the columns of ``cost`` from ``r_start`` to ``r_end``."""
    h, w = cost.shape
    big = 1e9
    acc = np.full((h, w), big)
    back = np.zeros((h, w), int)
    acc[r_start, 0] = cost[r_start, 0]
    for c in range(1, w):
        prev = acc[:, c - 1]
        best = np.full(h, big)
        arg = np.zeros(h, int)
        for d in range(-max_jump, max_jump + 1):
            shifted = np.full(h, big)
            if d >= 0:
                shifted[d:] = prev[: h - d] + _W_JUMP * abs(d)
            else:
                shifted[:d] = prev[-d:] + _W_JUMP * abs(d)
            better = shifted < best
            best[better] = shifted[better]
            arg[better] = (np.arange(h) - d)[better]
        acc[:, c] = best + cost[:, c]
        back[:, c] = arg
    path = np.zeros(w, int)
    path[-1] = r_end
    for c in range(w - 1, 0, -1):
        path[c - 1] = back[path[c], c]
    return path


def _dark_marrow_pair(norm: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Femur and tibia masks for fat-suppressed contrasts, anchored on the joint bands.

    Dark marrow and suppressed fat look alike there; the bright cartilage/fluid bands
    of the two compartments are the anchor instead. Under each band the tibial surface
    is the band's lower edge, the femoral surface its upper edge; between the bands
    (the intercondylar notch) the tibial surface is the dark cortex line, traced as the
    cheapest path over a dark-ridge map from one band's inner end to the other's
    (rows from 14 mm above to 3 mm below the bands). The masks are the 20 mm of bone
    below / above these surfaces over the joint's columns.
    """
    sm = ndi.gaussian_filter(norm, 0.5)
    body = _body_mask(sm)
    if body.sum() < 400:
        return None
    found = _joint_bands(sm, body, step)
    if found is None:
        return None
    lab, a, b = found
    h, w = sm.shape
    top = np.full(w, -1)
    bot = np.full(w, -1)
    for k, core in ((a[0], a[3]), (b[0], b[3])):
        m = lab == k
        lo, hi = max(core - int(15 / step), 0), min(core + int(15 / step), h)
        m[:lo] = False
        m[hi:] = False
        has = m.any(axis=0)
        top[has] = np.argmax(m, axis=0)[has]
        bot[has] = (h - 1 - np.argmax(m[::-1], axis=0))[has] + 1
    bot = _tibial_cartilage_floor(sm, lab, (a[0], b[0]), bot, step)
    c0, c1 = a[2] - 1, b[1]
    while c0 > a[1] and bot[c0] < 0:
        c0 -= 1
    while c1 < b[2] - 1 and bot[c1] < 0:
        c1 += 1
    r0, r1 = int(bot[c0]), int(bot[c1])
    if r0 < 0 or r1 < 0 or max(r0, r1) >= h:  # a band reaching the bottom edge: no joint
        return None
    lo = max(min(r0, r1) - int(round(14.0 / step)), 0)
    hi = min(max(r0, r1) + int(round(3.0 / step)) + 1, h)
    ridge = _ridge(norm[lo:hi, c0 : c1 + 1], 1.0 / step)
    scale = float(np.percentile(ridge, 95)) + 1e-6
    cost = -np.clip(ridge / scale, 0.0, 2.0)
    # the tibial surface has marrow below it: penalise rows whose next 1.5-4.5 mm are
    # brighter than the marrow under the bands (the notch contents, fat on DESS)
    k0, k1 = max(1, int(round(1.5 / step))), max(2, int(round(4.5 / step)))
    under = []
    for c, r in ((c0, r0), (c1, r1)):
        under.append(sm[r + k0 : r + k1 + int(round(6 / step)), max(c - 3, 0) : c + 4].ravel())
    under = np.concatenate(under)
    if under.size >= 10:
        marrow = float(np.median(under))
        spread = 1.4826 * float(np.median(np.abs(under - marrow))) + 0.02
        pad = np.pad(sm[:, c0 : c1 + 1], ((0, k1 + 1), (0, 0)), mode="edge")
        csum = np.cumsum(np.vstack([np.zeros((1, pad.shape[1])), pad]), axis=0)
        rows = np.arange(lo, hi)
        below = (csum[rows + k1] - csum[rows + k0]) / (k1 - k0)
        cost = cost + _W_BELOW * np.clip((below - marrow) / (2.0 * spread), 0.0, 2.0)
    path = _trace_notch(cost, r0 - lo, r1 - lo, max(1, int(round(3.0 / step)))) + lo
    surf = bot.copy()
    surf[c0 : c1 + 1] = path
    surf[c0 + 1 : c1] = path[1:-1]
    cols = np.arange(a[1], b[2])
    cols = cols[surf[cols] >= 0]
    depth = int(round(20.0 / step))
    rr = np.arange(h)[:, None]
    tib = np.zeros((h, w), bool)
    tib[:, cols] = (rr >= surf[cols][None, :]) & (rr < surf[cols][None, :] + depth)
    fcols = np.nonzero(top >= 0)[0]
    fem = np.zeros((h, w), bool)
    fem[:, fcols] = (rr < top[fcols][None, :]) & (rr >= top[fcols][None, :] - depth)
    return fem & body, tib & body


def _fit_line(cols: np.ndarray, rows: np.ndarray) -> tuple[float, float] | None:
    """Robust ``row = a + b * col`` (least squares, then refit on residuals < 1.5 mm)."""
    if cols.size < 4:
        return None
    b, a = np.polyfit(cols, rows, 1)
    res = np.abs(rows - (a + b * cols))
    keep = res < max(1.5, float(np.median(res)) * 2.0)
    if keep.sum() >= 4:
        b, a = np.polyfit(cols[keep], rows[keep], 1)
    return float(a), float(b)


def _measure_slice(
    norm: np.ndarray, femur: np.ndarray, tibia: np.ndarray, medial: int | None, step: float
) -> CoarseSlice:
    h, w = tibia.shape
    fhas, thas = femur.any(axis=0), tibia.any(axis=0)
    top = np.where(thas, np.argmax(tibia, axis=0), -1)
    bot = np.where(fhas, h - 1 - np.argmax(femur[::-1], axis=0), -1)
    gap = (top - bot) * step
    jc = np.nonzero(fhas & thas & (gap > 0.5) & (gap < 15.0))[0]
    cs = CoarseSlice(ok=True, femur=femur, tibia=tibia, joint_cols=jc)
    if jc.size < 10:
        cs.ok = False
        return cs
    c_lo, c_hi = np.percentile(jc, [3, 97])
    cs.joint_width_mm = float(c_hi - c_lo) * step
    c0 = 0.5 * (c_lo + c_hi)
    half = 0.5 * (c_hi - c_lo)
    cs.centre_col = float(c0)
    cs.plateau_row = float(np.median(top[jc]))
    if medial is None or half < 10:
        return cs
    # medial plateau line from the tibial top 35-85 % of the way out
    off = (jc - c0) * medial
    sel = jc[(off >= 0.35 * half) & (off <= 0.85 * half)]
    line = _fit_line(sel.astype(float), top[sel].astype(float))
    if line is not None and abs(line[1]) > 0.35 and sel.size >= 4:
        # the window reached up the spine's flank (a joint found narrower than it
        # is): the plateau level is then the median tibial top, taken as horizontal
        line = (float(np.median(top[sel])), 0.0)
    if line is None or abs(line[1]) > 0.35:
        return cs
    cs.medial_line = line
    a, b = line
    notch = np.arange(int(np.ceil(c0 - 0.25 * half)), int(np.floor(c0 + 0.25 * half)) + 1)
    notch = notch[(notch >= 0) & (notch < w)]
    notch = notch[top[notch] >= 0]
    if notch.size:
        heights = (a + b * notch - top[notch]) * step
        cs.eminence_mm = float(np.max(heights))
    # meniscus: dark pixels in the joint gap at the medial periphery (outer 40 % of the
    # compartment) and up to 8 mm beyond the last joint column, plateau level -8..+1 mm
    outer = jc[off >= 0.6 * half]
    if outer.size:
        c_out = outer.max() if medial > 0 else outer.min()
        c_in = outer.min() if medial > 0 else outer.max()
        lo_c, hi_c = sorted((int(c_in), int(c_out + medial * 8 / step)))
        lo_c, hi_c = max(lo_c, 0), min(hi_c, w - 1)
        cols = np.arange(lo_c, hi_c + 1)
        plate = a + b * cols
        rr = np.arange(h)[:, None]
        box = (rr >= plate[None, :] - 8 / step) & (rr <= plate[None, :] + 1 / step)
        sub = norm[:, lo_c : hi_c + 1]
        dark = (sub < 0.2) & box & ~femur[:, lo_c : hi_c + 1] & ~tibia[:, lo_c : hi_c + 1]
        dark = ndi.binary_opening(dark, structure=np.ones((2, 2), bool))
        cs.meniscus_dark_mm2 = float(dark.sum()) * step * step
    return cs


def analyse_knee(
    volume: np.ndarray,
    *,
    row_spacing_mm: float,
    col_spacing_mm: float,
    medial_col_sign: int | None = None,
    indices: list[int] | None = None,
    step_mm: float = COARSE_STEP_MM,
    previous: CoarseKnee | None = None,
    slice_spacing_mm: float | None = None,
    plane_step_mm: float = 2.0,
    map_slices: Callable[[Callable[..., Any], list[tuple]], list[Any]] | None = None,
    downsampled: np.ndarray | None = None,
) -> CoarseKnee:
    """Segment the femur/tibia on every (or the given) slice of a coronal series at 1 mm.

    Parameters
    ----------
    volume : ndarray, shape (n_slices, rows, cols)
        Coronal slices ordered along the slice normal.
    row_spacing_mm, col_spacing_mm : float, keyword-only
        Pixel Spacing (0028,0030) [0] and [1] (mm).
    medial_col_sign : {+1, -1, None}, keyword-only
        Medial direction in columns; needed for the eminence and meniscus measures
        (None: bones only).
    indices : list of int, optional, keyword-only
        Analyse only these slices (the others stay ``ok=False``).
    step_mm : float, keyword-only
        Grid of the coarse pass (mm).
    previous : CoarseKnee, optional, keyword-only
        A result for the same volume: its resampled volume and bone masks are reused.
    slice_spacing_mm : float, optional, keyword-only
        Distance between slice centres (mm). When it is below ``0.75 * plane_step_mm``
        (thin planes, e.g. a reformatted 3D sagittal series) only every k-th plane is
        analysed, ``k = round(plane_step_mm / slice_spacing_mm)``, always including
        the middle plane; the others stay ``ok=False`` and ``planes`` lists the analysed.
    plane_step_mm : float, keyword-only
        Target distance between analysed planes for thin-plane series (mm).
    map_slices : callable, optional, keyword-only
        ``map_slices(fn, args)`` returns ``[fn(*a) for a in args]``, in order; the
        per-slice bone segmentation goes through it, so a caller can spread it over
        processes (:func:`kneemeasure.parallel.map_ordered`). Default: in-process.
    downsampled : ndarray, shape (n_slices, M, N), optional, keyword-only
        ``downsample_volume(volume, ..., step_mm=step_mm)`` when already computed
        (``kneemeasure measure`` resamples each slice as it decodes it); used only
        when its shape is that of the resampled volume.

    Returns
    -------
    CoarseKnee
    """
    vol = np.asarray(volume)
    if vol.ndim == 2:
        vol = vol[None]
    n = vol.shape[0]
    planes = plane_subset(n, slice_spacing_mm=slice_spacing_mm, plane_step_mm=plane_step_mm)
    if previous is not None and previous.planes is not None:
        planes = previous.planes
    todo = list(range(n)) if indices is None else sorted(set(int(i) for i in indices))
    if planes is not None:
        keep = set(planes)
        todo = [i for i in todo if i in keep]
    if previous is not None and previous.step_mm == step_mm:
        norm, polarity = previous.iso, previous.polarity
    elif planes is None:
        want = (n, *coarse_shape(vol.shape[1], vol.shape[2], row_spacing_mm=row_spacing_mm,
                                 col_spacing_mm=col_spacing_mm, step_mm=step_mm))  # fmt: skip
        if downsampled is not None and downsampled.shape == want:
            iso = downsampled
        else:
            iso = downsample_volume(vol, row_spacing_mm=row_spacing_mm,
                                    col_spacing_mm=col_spacing_mm, step_mm=step_mm)
        norm = _normalise_volume(iso)
        polarity = _polarity(norm)
    else:  # thin planes: resample only the analysed ones
        sub = _normalise_volume(downsample_volume(vol[planes], row_spacing_mm=row_spacing_mm,
                                                  col_spacing_mm=col_spacing_mm, step_mm=step_mm))
        polarity = _polarity(sub)
        norm = np.zeros((n,) + sub.shape[1:], np.float32)
        norm[planes] = sub
    slices = [CoarseSlice() for _ in range(n)]
    pairs = {}
    same_grid = previous is not None and previous.step_mm == step_mm
    for i in todo:
        prev = previous.slices[i] if previous is not None else None
        if prev is not None and prev.femur is not None:
            pairs[i] = (prev.femur, prev.tibia)
        elif same_grid and i in previous.searched:
            pairs[i] = None  # searched before and not found: the same search again
    need = [i for i in todo if i not in pairs]
    if polarity > 0:
        found = (map_slices or _map)(_bone_pair, [(norm[i], polarity) for i in need])
    else:
        found = (map_slices or _map)(_dark_marrow_pair, [(norm[i], step_mm) for i in need])
    pairs.update(zip(need, found, strict=True))
    for i in todo:
        pair = pairs[i]
        if pair is None:
            continue
        slices[i] = _measure_slice(norm[i], pair[0], pair[1], medial_col_sign, step_mm)
    return CoarseKnee(norm, step_mm, polarity, slices, medial_col_sign, row_spacing_mm,
                      col_spacing_mm, planes, frozenset(pairs))


def _map(fn: Callable[..., Any], args: list[tuple]) -> list[Any]:
    return [fn(*a) for a in args]


def plane_subset(
    n_planes: int, *, slice_spacing_mm: float | None, plane_step_mm: float = 2.0
) -> list[int] | None:
    """Planes analysed by the coarse pass of a thin-plane series (None: all of them).

    Parameters
    ----------
    n_planes : int
    slice_spacing_mm : float or None, keyword-only
        Distance between plane centres (mm); None or <= 0 analyses all planes.
    plane_step_mm : float, keyword-only
        Target distance between analysed planes (mm).

    Returns
    -------
    list of int or None
        Every k-th plane, ``k = round(plane_step_mm / slice_spacing_mm)``, aligned so
        that the middle plane ``n_planes // 2`` is included; None when ``k`` is 1.
    """
    if not slice_spacing_mm or not np.isfinite(slice_spacing_mm) or slice_spacing_mm <= 0:
        return None
    if slice_spacing_mm >= 0.75 * plane_step_mm:
        return None
    k = max(1, int(round(plane_step_mm / slice_spacing_mm)))
    if k == 1:
        return None
    return list(range((n_planes // 2) % k, n_planes, k))
