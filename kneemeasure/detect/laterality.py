"""Laterality from anatomy: which image side holds the fibular head."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu
from skimage.measure import regionprops

from kneemeasure.detect.coarse import CoarseKnee, _body_mask, _disk, analyse_knee

__all__ = ["infer_fibula_side"]


def infer_fibula_side(
    volume: np.ndarray,
    *,
    row_spacing_mm: float,
    col_spacing_mm: float,
    posterior_sign: int | None = None,
    coarse: CoarseKnee | None = None,
) -> tuple[int, float]:
    """Column side of the fibular head (the lateral side of the knee).

    Parameters
    ----------
    volume : ndarray, shape (n_slices, rows, cols)
        Coronal slices ordered along the slice normal.
    row_spacing_mm, col_spacing_mm : float, keyword-only
        Pixel Spacing (0028,0030) [0] and [1] (mm).
    posterior_sign : {+1, -1, None}, keyword-only
        +1 when increasing slice index goes posterior (slice normal toward +y, LPS),
        -1 when anterior; only the posterior half is then searched. None: all slices.
    coarse : CoarseKnee, optional, keyword-only
        A coarse pass of the same volume to reuse (bone masks on the 1 mm grid).

    Returns
    -------
    side : int
        +1 when the fibular head lies toward increasing column, -1 otherwise
        (0 when nothing fibula-like was found or the confidence is below 0.2).
    confidence : float
        In [0, 1]; 0 when no candidate was found.

    Notes
    -----
    On each searched slice (1 mm pixels, coarse femur/tibia pair) other bone-like
    regions of 80–1500 mm² that are roundish (eccentricity < 0.9, solidity > 0.8), whose
    top lies 3–40 mm below the tibial plateau, that sit beside the tibia (centroid more
    than a quarter of the tibial width from its centre) and come within 10 mm of it are
    fibular-head candidates. Each votes for its side with weight ``area × solidity``;
    confidence is the vote margin scaled by the evidence, halved on fat-suppressed
    series (dark marrow), where the head is often missed or confused with fat.
    """
    vol = np.asarray(volume)
    if vol.ndim == 2:
        vol = vol[None]
    n = vol.shape[0]
    if posterior_sign in (1, -1) and n >= 4:
        half = list(range(n // 2, n)) if posterior_sign > 0 else list(range(0, (n + 1) // 2))
    else:
        half = list(range(n))
    if coarse is None or len(coarse.slices) != n:
        coarse = analyse_knee(vol, row_spacing_mm=row_spacing_mm, col_spacing_mm=col_spacing_mm,
                              indices=half)
    votes = {1: 0.0, -1: 0.0}
    step = coarse.step_mm
    for i in half:
        cs = coarse.slices[i]
        if cs.tibia is None or cs.femur is None:
            continue
        norm = ndi.gaussian_filter(coarse.iso[i], 0.5)
        body = _body_mask(norm)
        b = norm if coarse.polarity > 0 else 1.0 - norm
        if body.sum() < 100:
            continue
        mask = (b > threshold_otsu(b[body])) & body & ~cs.tibia & ~cs.femur
        tib = cs.tibia
        top = np.where(tib.any(axis=0), np.argmax(tib, axis=0), -1)
        plateau_row = float(np.median(top[top >= 0]))
        # only the head: the neck and shaft continue down and would make it elongated
        mask[int(plateau_row + 32.0 / step) :] = False
        mask = ndi.binary_opening(mask, structure=_disk(1))
        lab, _ = ndi.label(mask)
        tcols = np.nonzero(tib.any(axis=0))[0]
        t_lo, t_hi = tcols.min(), tcols.max()
        t_mid, t_w = 0.5 * (t_lo + t_hi), (t_hi - t_lo)
        dist_tib = None
        for rp in regionprops(lab):
            area = rp.area * step**2
            if not 80.0 <= area <= 1500.0:
                continue
            below = (rp.bbox[0] - plateau_row) * step
            if not 3.0 <= below <= 40.0:
                continue
            cc = rp.centroid[1]
            if abs(cc - t_mid) < 0.25 * t_w:
                continue
            if rp.eccentricity > 0.9 or rp.solidity < 0.8:
                continue
            if dist_tib is None:
                dist_tib = ndi.distance_transform_edt(~tib) * step
            coords = rp.coords
            if dist_tib[coords[:, 0], coords[:, 1]].min() > 10.0:
                continue
            votes[1 if cc > t_mid else -1] += area * rp.solidity
    total = votes[1] + votes[-1]
    if total <= 0:
        return 0, 0.0
    side = 1 if votes[1] >= votes[-1] else -1
    margin = abs(votes[1] - votes[-1]) / total
    evidence = min(1.0, total / 600.0)
    conf = margin * (0.5 + 0.5 * evidence)
    if coarse.polarity < 0:
        # fat-suppressed marrow looks like the surrounding fat: candidates are unreliable
        conf *= 0.5
    if conf < 0.2:  # unsure: better no answer than a wrong side
        return 0, float(conf)
    return side, float(np.clip(conf, 0.0, 1.0))
