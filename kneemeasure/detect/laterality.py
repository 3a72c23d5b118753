"""Laterality from anatomy: which image side holds the fibular head."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu
from skimage.measure import regionprops

from kneemeasure.detect.joint import _body_mask, _disk, find_bone_pair, to_isotropic

__all__ = ["infer_fibula_side"]


def infer_fibula_side(
    volume: np.ndarray, *, row_spacing_mm: float, col_spacing_mm: float
) -> tuple[int, float]:
    """Column side of the fibular head (the lateral side of the knee).

    Parameters
    ----------
    volume : ndarray, shape (n_slices, rows, cols)
        Coronal slices (any order along the normal).
    row_spacing_mm, col_spacing_mm : float, keyword-only
        Pixel Spacing (0028,0030) [0] and [1] (mm).

    Returns
    -------
    side : int
        +1 when the fibular head lies toward increasing column, -1 otherwise
        (0 when nothing fibula-like was found).
    confidence : float
        In [0, 1]; 0 when no candidate was found.

    Notes
    -----
    On each slice (1 mm pixels) the femur/tibia pair is found; other bone-like regions
    of 80–1500 mm² that are roundish (eccentricity < 0.9, solidity > 0.8), whose top
    lies 3–40 mm below the tibial plateau, that sit beside the tibia (centroid
    more than a quarter of the tibial width from its centre) and come within 10 mm of it
    are fibular-head candidates. Each votes for its side with weight
    ``area × solidity``; confidence is the vote margin scaled by the evidence.
    """
    vol = np.asarray(volume, dtype=np.float32)
    if vol.ndim == 2:
        vol = vol[None]
    votes = {1: 0.0, -1: 0.0}
    polarity = None
    n = vol.shape[0]
    for i in [n // 2] + [k for k in range(n) if k != n // 2]:
        iso = to_isotropic(vol[i], row_spacing_mm=row_spacing_mm, col_spacing_mm=col_spacing_mm,
                           step_mm=1.0)
        bp = find_bone_pair(iso, polarity=polarity)
        if bp is None:
            continue
        polarity = polarity or bp.polarity
        step = bp.step_mm
        body = _body_mask(bp.norm, step)
        b = bp.norm if bp.polarity > 0 else 1.0 - bp.norm
        mask = (b > threshold_otsu(b[body])) & body & ~bp.tibia & ~bp.femur
        mask = ndi.binary_opening(mask, structure=_disk(1))
        lab, _ = ndi.label(mask)
        tcols = np.nonzero(bp.tibia.any(axis=0))[0]
        t_lo, t_hi = tcols.min(), tcols.max()
        t_mid, t_w = 0.5 * (t_lo + t_hi), (t_hi - t_lo)
        plateau_row = float(np.median(bp.tibia_top))
        dist_tib = ndi.distance_transform_edt(~bp.tibia) * step
        for rp in regionprops(lab):
            area = rp.area * step**2
            if not 80.0 <= area <= 1500.0:
                continue
            top = rp.bbox[0]
            below = (top - plateau_row) * step
            if not 3.0 <= below <= 40.0:
                continue
            rc, cc = rp.centroid
            if abs(cc - t_mid) < 0.25 * t_w:
                continue
            if rp.eccentricity > 0.9 or rp.solidity < 0.8:
                continue
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
    return side, float(np.clip(margin * (0.5 + 0.5 * evidence), 0.0, 1.0))
