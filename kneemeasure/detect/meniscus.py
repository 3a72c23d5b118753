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
    s0 = p[i] - level
    while 0 <= i + direction < len(p):
        j = i + direction
        s1 = p[j] - level
        if s0 == 0:
            return float(i)
        if s1 == 0:
            return float(j)
        if (s0 > 0) != (s1 > 0):
            return float(i + direction * s0 / (s0 - s1))
        i, s0 = j, s1
    return None


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
