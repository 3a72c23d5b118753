"""Meniscal body on a coronal slice: the dark wedge at the compartment margin.

The search runs in a frame attached to the tibial margin: ``u`` (mm) along the plateau
line, positive outward, and ``v`` (mm) perpendicular to it, positive toward the femur.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

__all__ = ["MeniscusResult", "subpixel_crossing", "find_meniscus"]


def subpixel_crossing(
    profile: np.ndarray, *, level: float, start: int, direction: int = 1
) -> float | None:
    """First sub-sample position where ``profile`` crosses ``level`` walking from ``start``.

    Parameters
    ----------
    profile : ndarray, shape (N,)
        Samples (already smoothed).
    level : float
        Crossing level, e.g. half-way between the inside and outside levels.
    start : int
        Index to start from.
    direction : {+1, -1}
        Walk toward increasing (+1) or decreasing (-1) index.

    Returns
    -------
    float or None
        Linear-interpolated fractional index of the crossing; ``None`` if none.

    Examples
    --------
    >>> subpixel_crossing(np.array([0., 0., 1., 1.]), level=0.5, start=0)
    1.5
    """
    p = np.asarray(profile, dtype=float)
    i = int(start)
    if not 0 <= i < len(p):
        return None
    seg = p[i:] if direction > 0 else p[i::-1]
    sgn = seg - level
    if sgn[0] == 0:
        return float(i)
    pos = sgn > 0
    change = np.nonzero((pos[1:] != pos[:-1]) | (sgn[1:] == 0))[0]
    if change.size == 0:
        return None
    k = int(change[0])
    s0, s1 = float(sgn[k]), float(sgn[k + 1])
    if s1 == 0:
        return float(i + direction * (k + 1))
    return float(i + direction * (k + s0 / (s0 - s1)))


@dataclass
class MeniscusResult:
    """Meniscus found in the margin frame.

    Attributes
    ----------
    outer_uv, inner_uv : (float, float)
        Outer edge and inner apex ``(u, v)`` in mm.
    edge_contrast : float
        |inside - outside| level at the outer edge, relative to the cartilage-meniscus
        contrast (1 = as strong as the wedge itself).
    wedge_score : float
        In [0, 1]: the dark region is taller at its outer end than at its apex.
    band_height_mm : float
        Joint gap height at the outer edge.
    ligament_stop : bool
        The search stopped at a vertical dark structure (MCL/capsule).
    subpixel : bool
        The outer edge was refined at a half-way crossing.
    """

    outer_uv: tuple[float, float]
    inner_uv: tuple[float, float]
    edge_contrast: float
    wedge_score: float
    band_height_mm: float
    ligament_stop: bool
    subpixel: bool


def _runs(flag: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop_inclusive) of True runs."""
    d = np.diff(np.concatenate([[0], flag.astype(int), [0]]))
    starts = np.nonzero(d == 1)[0]
    stops = np.nonzero(d == -1)[0] - 1
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def find_meniscus(
    patch: np.ndarray,
    femur: np.ndarray,
    tibia: np.ndarray,
    *,
    u_mm: np.ndarray,
    v_mm: np.ndarray,
) -> MeniscusResult | None:
    """Find the meniscal wedge in a margin-frame patch.

    Parameters
    ----------
    patch : ndarray, shape (len(v_mm), len(u_mm))
        Image sampled at ``margin + u * plateau_dir + v * up_normal``; intensities
        already smoothed; no polarity assumption except "meniscus is dark".
    femur, tibia : ndarray of bool, same shape
        Bone masks sampled in the same frame.
    u_mm, v_mm : ndarray
        Sample positions (mm), increasing.

    Returns
    -------
    MeniscusResult or None
        ``None`` when no dark wedge sits between the bones near the margin.
    """
    du = float(u_mm[1] - u_mm[0])
    dv = float(v_mm[1] - v_mm[0])
    nv, nu = patch.shape
    # Femoral surface: lowest femur sample above v = 0; tibial surface: highest tibia sample.
    fem_v = np.full(nu, np.nan)
    tib_v = np.full(nu, np.nan)
    above = v_mm[:, None] > 0.5
    fm = femur & above
    has_f = fm.any(axis=0)
    fem_v[has_f] = v_mm[np.argmax(fm, axis=0)[has_f]]
    tm = tibia & (v_mm[:, None] < 4.0)
    has_t = tm.any(axis=0)
    tib_v[has_t] = v_mm[nv - 1 - np.argmax(tm[::-1], axis=0)[has_t]]
    inner = u_mm < -2.0
    if not np.isfinite(fem_v[inner]).any():
        return None
    # Extrapolate the femoral surface beyond the condyle with its last value.
    idx = np.arange(nu)
    good = np.isfinite(fem_v)
    fem_v = np.interp(idx, idx[good], fem_v[good])
    tib_lo = np.where(np.isfinite(tib_v) & (u_mm < 0), np.maximum(tib_v, 0.0), 0.0)
    gap = fem_v - tib_lo
    if np.median(gap[inner]) < 0.5 or np.median(gap[inner]) > 15:
        return None
    band = (v_mm[:, None] >= tib_lo[None, :] + 0.3) & (v_mm[:, None] <= fem_v[None, :] - 0.3)
    # Intensity levels: cartilage (bright end) and meniscus (dark end) inside the joint.
    win = band & ((u_mm > -12) & (u_mm < 3))[None, :]
    if win.sum() < 20:
        return None
    vals = patch[win]
    dark_lvl, bright_lvl = np.percentile(vals, [10, 85])
    contrast = bright_lvl - dark_lvl
    if contrast <= 1e-6:
        return None
    # Closer to the meniscus level: intermediate soft tissue must not count as dark.
    thr = dark_lvl + 0.3 * contrast
    dark = patch < thr
    n_band = band.sum(axis=0)
    frac = np.where(n_band > 0, (dark & band).sum(axis=0) / np.maximum(n_band, 1), 0.0)
    # Ligament: beyond the bones, dark both above and below the joint band (vertical MCL).
    lig = np.zeros(nu, bool)
    for j in range(nu):
        if u_mm[j] <= 0.5:
            continue
        lo, hi = tib_lo[j], fem_v[j]
        below = (v_mm < lo - 1.0) & (v_mm > lo - 5.0) & ~tibia[:, j]
        over = (v_mm > hi + 1.0) & (v_mm < hi + 5.0) & ~femur[:, j]
        if below.sum() > 5 and over.sum() > 5:
            lig[j] = dark[below, j].mean() > 0.6 and dark[over, j].mean() > 0.6
    present = (frac > 0.3) & (n_band * dv >= 0.6) & (u_mm > -25) & (u_mm < 14)
    runs = _runs(present)
    best, best_w = None, 0.0
    for a, b in runs:
        if u_mm[b] < -6.0 or u_mm[a] > 8.0:
            continue
        w = float(frac[a : b + 1].sum() * du)
        if w > best_w:
            best, best_w = (a, b), w
    if best is None:
        return None
    a, b = best
    stop = False
    lig_in = np.nonzero(lig[a : b + 1])[0]
    if lig_in.size:
        b = a + int(lig_in[0]) - 1
        stop = True
        if b <= a:
            return None
    # Sub-pixel outer edge: half-way crossing of the joint-level profile.
    vmid = 0.5 * (tib_lo + fem_v)
    half_h = 0.25 * gap
    prof = np.array(
        [
            patch[(v_mm >= vmid[j] - half_h[j]) & (v_mm <= vmid[j] + half_h[j]), j].mean()
            if half_h[j] > dv
            else patch[np.argmin(np.abs(v_mm - vmid[j])), j]
            for j in range(nu)
        ]
    )
    prof = ndi.gaussian_filter1d(prof, 0.5 / du)
    k = int(round(2.5 / du))
    inside = float(np.median(prof[max(a, b - k) : b + 1]))
    outside_seg = prof[b + 1 : min(nu, b + 1 + k)]
    u_out = float(u_mm[b] + 0.5 * du)
    subpix = False
    edge_contrast = 0.0
    if outside_seg.size >= 3 and not stop:
        outside = float(np.median(outside_seg))
        edge_contrast = (outside - inside) / contrast
        if edge_contrast > 0.15:
            x = subpixel_crossing(prof, level=0.5 * (inside + outside), start=max(a, b - k // 2))
            if x is not None and abs(x - b) * du <= 3.0:
                u_out = float(u_mm[0] + x * du)
                subpix = True
    # Wedge shape: dark height at the outer end vs the inner end.
    h_dark = (dark & band).sum(axis=0) * dv
    n = max(1, (b - a + 1) // 4)
    outer_h = float(np.mean(h_dark[b - n + 1 : b + 1]))
    inner_h = float(np.mean(h_dark[a : a + n]))
    wedge = float(np.clip((outer_h - inner_h) / max(outer_h, 1e-6), 0.0, 1.0))
    jo = min(b, nu - 1)
    return MeniscusResult(
        outer_uv=(u_out, float(vmid[jo])),
        inner_uv=(float(u_mm[a]), float(vmid[a])),
        edge_contrast=float(edge_contrast),
        wedge_score=wedge,
        band_height_mm=float(gap[jo]),
        ligament_stop=stop,
        subpixel=subpix,
    )


@dataclass
class WedgeResult:
    """Meniscal body found by :func:`find_wedge` (margin frame, mm).

    Attributes
    ----------
    outer_uv, inner_uv : (float, float)
        Outer edge and inner end ``(u, v)``.
    edge_contrast : float
        Rise from the meniscus level to the level just outside its edge, relative to the
        cartilage-meniscus contrast.
    wedge_score : float
        In [0, 1]: the body is taller at its outer part than at its inner end.
    height_mm : float
        Height of the dark body near its outer end.
    ligament_stop : bool
        No rise was found before a tall vertical dark band (MCL merged with the meniscus).
    """

    outer_uv: tuple[float, float]
    inner_uv: tuple[float, float]
    edge_contrast: float
    wedge_score: float
    height_mm: float
    ligament_stop: bool


def find_wedge(
    patch: np.ndarray,
    femur: np.ndarray,
    *,
    u_mm: np.ndarray,
    v_mm: np.ndarray,
) -> WedgeResult | None:
    """Find the meniscal body and its outer edge in a margin-frame patch.

    Parameters
    ----------
    patch : ndarray, shape (len(v_mm), len(u_mm))
        Image sampled at ``margin + u * plateau_dir + v * up_normal`` (``v = 0`` on the
        refined tibial surface, ``u = 0`` at the tibial margin), lightly smoothed.
    femur : ndarray of bool, same shape
        Femur (marrow) mask sampled in the same frame; excluded from the search.
    u_mm, v_mm : ndarray
        Sample positions (mm), increasing and evenly spaced.

    Returns
    -------
    WedgeResult or None
        ``None`` when no dark body sits on the plateau next to the margin.

    Notes
    -----
    1. Levels from the joint window (``u`` in [-15, 0] mm, ``v`` in [0, 8] mm, femur
       excluded): meniscus ``M`` = 10th, cartilage ``C`` = 85th percentile.
    2. Dark components (below ``M + 0.4 (C - M)``, then ``M + 0.25 (C - M)`` for a body
       merged with an intermediate capsule; pixels within 1 mm of the femur excluded)
       are scored by their area at the plateau level (``v`` in [-1.5, 3.5] mm, the
       plateau line extended beyond the margin, ``u`` in [-15, 14] mm), columns of a
       vertical band (dark below ``v = -2.5`` and above ``v = 6.5``: MCL, capsule,
       fat) left out. The largest candidates are traced in turn (step 3) until one
       gives an edge; per column the body's vertical centre gives its mid-line.
    3. Per column, the 30th percentile over the body's vertical extent (columns taller
       than ``max(h + 2.5, 7)`` mm, a ligament, take the neighbours' extent; beyond the
       body the last extent is kept) forms a profile, robust to a bright degenerative
       streak. From the first dark column at or beyond 2.5 mm inside the margin it is
       walked outward to the first rise of 0.2 (C - M) above the body level (30th
       percentile of the body's pixels), starting 2.5 mm inside the margin or at the
       body's middle column when that is further in; the outer edge is the half-way crossing
       between the body level and the maximum within 2.5 mm, found walking back from
       that maximum.
    4. Body level: when an intermediate tissue joined the dark body (T1 effusion fluid
       around an extruded meniscus) its pixels lift the 30th percentile; the 20th
       percentile of the profile from the start to 10 mm beyond the margin is used
       instead when it is lower by more than 0.1 (C - M) and is not a vertical band
       (MCL: dark over most of ``v`` in [-5, -2.5] and [6.5, 11] mm). The shape cues
       then come from the connected part below the rise level.
    5. Degenerative streak: a rise is passed when the profile falls back below the
       rise level within 6 mm and, over the bump, the 5th percentile per column stays
       below the rise level (a dark band runs on beside the streak), or below
       ``M + 0.35 (C - M)`` (thin bands blurred by the pixels) with no vertical band
       in the 2 mm that follow, and the dark run after the bump lies at the body's
       level (its vertical extent overlaps that of the 2 mm before the rise; not a
       band above the joint, such as the MCL over a meniscus ending at the margin).
    """
    du = float(u_mm[1] - u_mm[0])
    dv = float(v_mm[1] - v_mm[0])
    # above the tibial surface inside the margin (the subchondral cortex must not join
    # the body), anywhere beyond it
    fem_zone = femur
    low = np.where(u_mm < 0.0, 0.4, -4.0)
    region = ((v_mm[:, None] >= low[None, :]) & (v_mm[:, None] <= 10.0)
              & (u_mm[None, :] >= -15.0) & (u_mm[None, :] <= 14.0) & ~fem_zone)
    win = region & (u_mm[None, :] <= 0.0) & (v_mm[:, None] >= 0.0) & (v_mm[:, None] <= 8.0)
    win &= u_mm[None, :] >= -15.0
    if win.sum() < 50:
        return None
    lo_lvl, hi_lvl = np.percentile(patch[win], [10, 85])
    contrast = float(hi_lvl - lo_lvl)
    if contrast <= 1e-6:
        return None
    # the femoral cortex hugs the femur mask: it must not become the body
    if fem_zone.any():
        near_fem = ndi.distance_transform_edt(~fem_zone, sampling=(dv, du)) < 1.0
    else:
        near_fem = np.zeros(patch.shape, bool)
    vv = np.broadcast_to(v_mm[:, None], patch.shape)
    # A tight threshold first; a tighter one when the body merges with an
    # intermediate capsule into a vertical band (DESS: capsule near 0.4 of C - M).
    cands = []
    for frac in (0.4, 0.25):
        dark = (patch < lo_lvl + frac * contrast) & region & ~near_fem
        lab, n = ndi.label(dark)
        # A vertical dark band (MCL/capsule; fat on fat-suppressed images) is dark both
        # well below the plateau level and well above the joint in the same column.
        low_band = (v_mm <= -2.5)[:, None] & dark
        high_band = (v_mm >= 6.5)[:, None] & dark
        # the body lies on the plateau level (extended beyond the margin): scored on
        # its lower part, so femoral marrow missing from ``femur`` does not compete
        body_slab = dark & (vv >= -1.5) & (vv <= 3.5)
        for k in range(1, n + 1):
            ck = lab == k
            in_slab = ck & body_slab
            if not in_slab.any():
                continue
            vert = (ck & low_band).any(axis=0) & (ck & high_band).any(axis=0)
            area = float(in_slab[:, ~vert].sum()) * du * dv
            if area >= 2.0:
                cands.append((area, frac, ck, vert, body_slab))
    # largest first at the first threshold, then the tighter threshold's candidates
    cands.sort(key=lambda c: (c[1] != 0.4, -c[0]))
    for _area, _frac, ck, vert, body_slab in cands[:4]:
        res = _trace_body(patch, ck & ~vert[None, :], body_slab, region & ~near_fem,
                          u_mm=u_mm, v_mm=v_mm,
                          lo_lvl=float(lo_lvl), hi_lvl=float(hi_lvl))
        if res is not None:
            return res
    return None


def _vertical_at(dark: np.ndarray, tissue: np.ndarray, v_mm: np.ndarray) -> np.ndarray:
    """Columns where ``dark`` fills most of both ``v`` in [-5, -2.5] and [6.5, 11] mm.

    Parameters
    ----------
    dark, tissue : ndarray of bool, shape (len(v_mm), N)
        Dark pixels and the pixels that count (femur excluded).
    v_mm : ndarray, shape (len(v_mm),)
        Row positions (mm) of the margin-frame patch.

    Returns
    -------
    ndarray of bool, shape (N,)
        A vertical dark band (MCL, capsule) crosses the plateau level in that column.
    """
    vcol = v_mm[:, None]
    lo_b = tissue & (vcol >= -5.0) & (vcol <= -2.5)
    hi_b = tissue & (vcol >= 6.5) & (vcol <= 11.0)
    frac_lo = (dark & lo_b).sum(axis=0) / np.maximum(lo_b.sum(axis=0), 1)
    frac_hi = (dark & hi_b).sum(axis=0) / np.maximum(hi_b.sum(axis=0), 1)
    return (frac_lo > 0.5) & (frac_hi > 0.5)


def _same_level(bot: np.ndarray, top: np.ndarray, *, ref: slice, run: slice) -> bool:
    """Whether the profile extent over ``run`` lies at the level of that over ``ref``.

    Parameters
    ----------
    bot, top : ndarray, shape (N,)
        Lower and upper ``v`` (mm) of the body's vertical extent per column.
    ref, run : slice
        Columns of the body before a rise, and of the dark run after it.

    Returns
    -------
    bool
        At least half of the ``run`` columns overlap the mean ``ref`` extent by half
        of the smaller height (a degenerative streak splits one body at one level; a
        dark band reached above the joint does not overlap it).
    """
    r_bot = float(np.mean(bot[ref]))
    r_top = float(np.mean(top[ref]))
    b, t = bot[run], top[run]
    overlap = np.minimum(t, r_top) - np.maximum(b, r_bot)
    ok = overlap >= 0.5 * np.maximum(np.minimum(t - b, r_top - r_bot), 1e-6)
    return bool(ok.size) and float(ok.mean()) >= 0.5


def _trace_body(
    patch: np.ndarray,
    comp0: np.ndarray,
    body_slab: np.ndarray,
    tissue: np.ndarray,
    *,
    u_mm: np.ndarray,
    v_mm: np.ndarray,
    lo_lvl: float,
    hi_lvl: float,
) -> WedgeResult | None:
    """Walk one candidate dark body outward to its edge (steps 3 of :func:`find_wedge`)."""
    du = float(u_mm[1] - u_mm[0])
    dv = float(v_mm[1] - v_mm[0])
    contrast = hi_lvl - lo_lvl
    vv = np.broadcast_to(v_mm[:, None], patch.shape)
    idx = np.arange(len(u_mm))
    # the body cannot reach far below the plateau level or high above the joint
    comp = comp0 & (vv >= -2.0) & (vv <= 7.5)
    has = comp.any(axis=0)
    bot = np.where(has, np.where(comp, vv, np.inf).min(axis=0), np.nan)
    top = np.where(has, np.where(comp, vv, -np.inf).max(axis=0), np.nan)
    height = top - bot
    body_cols = np.nonzero(has & (comp & body_slab).any(axis=0))[0]
    if body_cols.size < 3:
        return None
    h_ref = float(np.clip(np.median(height[body_cols]), 1.5, 9.0))
    # mid-line: centre of the body per column; tall columns (a ligament) do not count
    centre = 0.5 * (bot + top)
    usable = has & (height <= max(h_ref + 2.5, 7.0))
    if usable.sum() < 3:
        return None
    centre = np.interp(idx, idx[usable], centre[usable])
    # per column, a low percentile over the body's vertical extent (robust to a bright
    # degenerative streak inside the body); beyond the body the last extent is kept
    bot_i = np.interp(idx, idx[usable], bot[usable])
    top_i = np.interp(idx, idx[usable], top[usable])
    vcol = v_mm[:, None]
    sel = (vcol >= bot_i[None, :] - 0.5 * dv) & (vcol <= top_i[None, :] + 0.5 * dv)
    srt = np.sort(np.where(sel, patch, np.inf), axis=0)
    cnt = sel.sum(axis=0)
    sigma_u = max(0.15 / du, 0.5)

    def _col_pct(p: float) -> np.ndarray:
        k = np.clip(np.floor(p * (cnt - 1)).astype(int), 0, None)
        qp = np.where(cnt > 0, srt[k, np.arange(srt.shape[1])], np.nan)
        return ndi.gaussian_filter1d(np.nan_to_num(qp, nan=float(hi_lvl)), sigma_u)

    q = _col_pct(0.3)
    # darkest band per column: stays dark across a bright streak that splits the body
    q_lo = _col_pct(0.05)
    m_lvl = float(np.percentile(patch[comp], 30))
    # start on the body: the first dark column from 2.5 mm inside the margin, or from
    # the middle of the body when that lies further in (a meniscus inside the margin)
    s0 = min(int(np.round(np.median(body_cols))), int(np.argmin(np.abs(u_mm + 2.5))))
    # An intermediate tissue merged with the body (T1 effusion fluid around an extruded
    # meniscus) lifts the level of its pixels: the profile from the start to 8 mm
    # further, and at least to 10 mm beyond the margin, keeps the meniscus level,
    # unless that dark level is a vertical band (MCL).
    merged = False
    run_end = max(s0 + int(round(8.0 / du)), int(np.searchsorted(u_mm, 10.0)))
    run = np.arange(s0, min(len(q), run_end + 1))
    # columns whose profile extent lies in the joint (not one extrapolated into bone)
    run = run[(sel & tissue).sum(axis=0)[run] >= 0.5 * np.maximum(cnt[run], 1)]
    m_run = float(np.percentile(q[run], 20)) if run.size * du >= 1.5 else m_lvl
    if m_lvl - m_run > 0.1 * contrast:
        flat = ~_vertical_at(patch < m_run + 0.15 * contrast, tissue, v_mm)[run]
        if flat.sum() * du >= 1.5:
            m_flat = float(np.percentile(q[run[flat]], 20))
            if m_lvl - m_flat > 0.1 * contrast and m_flat < m_run + 0.1 * contrast:
                m_lvl = m_flat
                merged = True
    rise = m_lvl + 0.2 * contrast
    s_end = min(len(q), s0 + int(round(8.0 / du)))
    dark_from = np.nonzero(q[s0:s_end] < rise)[0]
    if dark_from.size == 0:
        return None
    s0 += int(dark_from[0])
    j = s0
    while j < len(q) and q[j] < rise:
        j += 1
    # A bright intrasubstance streak (degenerated meniscus) lifts the profile inside the
    # body: pass the rise when the body level returns within 6 mm and a dark band runs
    # on through it (the darkest 5 % stay at the body level; or, for thin bands blurred
    # by the pixels, below m + 0.35 (C - M) when what follows is no vertical band).
    # The dark run beyond the bump must be the same body: at its level, not a band
    # above the joint the component climbed onto (MCL beside an unextruded meniscus).
    vert_t = _vertical_at(patch < m_lvl + 0.15 * contrast, tissue, v_mm)
    look = int(round(6.0 / du))
    n_after = int(round(2.0 / du)) + 1
    n_ref = max(1, int(round(2.0 / du)))
    j_first = j
    for _ in range(3):
        if j >= len(q) - 1:
            break
        back = np.nonzero(q[j : min(len(q), j + look)] < rise)[0]
        if back.size == 0:
            break
        band = q_lo[j : j + int(back[0])]
        j2 = j + int(back[0])
        thin = np.all(band < m_lvl + 0.35 * contrast) and not vert_t[j2 : j2 + n_after].any()
        if not (np.all(band < rise) or thin):
            break
        j3 = j2
        while j3 < len(q) and q[j3] < rise:
            j3 += 1
        if not _same_level(bot_i, top_i, ref=slice(max(0, j - n_ref), j),
                           run=slice(j2, max(j3, j2 + 1))):
            break
        j = j3
    if j >= len(q) - 1:
        j = j_first  # passed to the end of the patch: noise, not a streak
    lig = False
    if j >= len(q) - 1:
        return None
    k_end = min(len(q), j + int(round(2.5 / du)) + 1)
    j_peak = j + int(np.argmax(q[j:k_end]))
    peak = float(q[j_peak])
    level = 0.5 * (m_lvl + peak)
    # the crossing next to the rise (walking back from its maximum), so a small bump
    # inside the body (a degenerative streak) does not end it early
    x = subpixel_crossing(q, level=level, start=j_peak, direction=-1)
    if x is None:
        return None
    u_out = float(u_mm[0] + x * du)
    jo = int(np.clip(round(x), 0, len(u_mm) - 1))
    if merged:
        # shape cues from the body itself, without the merged intermediate tissue: the
        # connected dark part (below the rise level) that covers most of the walked
        # profile (those columns may have left the component as a "vertical band")
        lab, n = ndi.label((patch < rise) & tissue & (vv >= -2.0) & (vv <= 7.5))
        hits = np.bincount(lab[:, s0 : jo + 1][sel[:, s0 : jo + 1]], minlength=n + 1)
        hits[0] = 0
        if n and hits.max() > 0:
            core = lab == int(np.argmax(hits))
            has = core.any(axis=0)
            bot = np.where(has, np.where(core, vv, np.inf).min(axis=0), np.nan)
            top = np.where(has, np.where(core, vv, -np.inf).max(axis=0), np.nan)
            height = top - bot
            if has.sum() >= 3:
                h_ref = float(np.clip(np.nanmedian(height[has]), 1.5, 9.0))
    # the body must not extend through a tall vertical band before the edge
    tall = has & (height > h_ref + 4.0) & (u_mm < u_out) & (u_mm > -1.0)
    if tall.any():
        lig = True
    inner = has & (u_mm < u_out) & (bot < 3.0)
    cols_in = np.nonzero(inner)[0]
    i_in = int(cols_in.min()) if cols_in.size else s0
    nq = max(1, int(round(2.0 / du)))
    def _mean(a: np.ndarray) -> float:
        a = a[np.isfinite(a)]
        return float(a.mean()) if a.size else 0.0

    outer_h = _mean(height[max(0, jo - nq) : jo + 1])
    inner_h = _mean(height[i_in : i_in + nq])
    wedge = float(np.clip((outer_h - inner_h) / max(outer_h, 1e-6), 0.0, 1.0))
    return WedgeResult(
        outer_uv=(u_out, float(centre[jo])),
        inner_uv=(float(u_mm[i_in]), float(centre[i_in])),
        edge_contrast=float((peak - m_lvl) / contrast),
        wedge_score=wedge,
        height_mm=outer_h,
        ligament_stop=lig,
    )
