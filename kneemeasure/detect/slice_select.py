"""Reference slice choice: the coronal slice through the medial tibial spine apex."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kneemeasure.detect.joint import find_bone_pair, to_isotropic
from kneemeasure.detect.tibia import tibial_geometry
from kneemeasure.errors import DetectionError, KneeMeasureError

__all__ = ["SliceChoice", "select_reference_slice"]


@dataclass
class SliceChoice:
    """Result of :func:`select_reference_slice`.

    Attributes
    ----------
    index : int
        Chosen slice (position in the volume as given, ordered along the normal).
    scores : ndarray, shape (n_slices,)
        Eminence height above the medial plateau (mm) per slice; NaN where no
        femur/tibia pair or tibial plateau was found.
    confidence : float
        In [0, 1].
    body_indices : list of int
        Slices that show a full-width joint (candidates containing the meniscal body).
    """

    index: int
    scores: np.ndarray
    confidence: float
    body_indices: list[int] = field(default_factory=list)


def select_reference_slice(
    volume: np.ndarray,
    *,
    row_spacing_mm: float,
    col_spacing_mm: float,
    medial_col_sign: int,
) -> SliceChoice:
    """Choose the mid-coronal slice where the tibial eminence is most prominent.

    Parameters
    ----------
    volume : ndarray, shape (n_slices, rows, cols)
        Coronal slices ordered along the slice normal.
    row_spacing_mm, col_spacing_mm : float, keyword-only
        Pixel Spacing (0028,0030) [0] and [1] (mm).
    medial_col_sign : {+1, -1}, keyword-only
        +1 when medial is toward increasing column.

    Returns
    -------
    SliceChoice

    Raises
    ------
    DetectionError
        When no slice shows a femur above a tibia.

    Notes
    -----
    Each slice is resampled to 1 mm pixels. Body slices are those whose joint
    (columns with both femur and tibia) is at least 75 % as wide as the widest one and
    whose medial plateau can be fitted; among those in the central 60 % of that range
    (the horns lie at its ends) the slice with the highest eminence above the medial
    plateau line (averaged with its neighbours) wins. Confidence grows with the number of body
    slices and with how much the winner stands out from the body-slice median.
    """
    vol = np.asarray(volume, dtype=np.float32)
    if vol.ndim != 3 or vol.shape[0] < 1:
        raise DetectionError(
            f"volume of shape {vol.shape} is not a stack of slices; choose one with --slice"
        )
    n = vol.shape[0]
    widths = np.zeros(n)
    scores = np.full(n, np.nan)
    polarity = None
    mid = n // 2
    order = [mid] + [i for i in range(n) if i != mid]
    for i in order:
        iso = to_isotropic(vol[i], row_spacing_mm=row_spacing_mm, col_spacing_mm=col_spacing_mm,
                           step_mm=1.0)
        bp = find_bone_pair(iso, polarity=polarity)
        if bp is None:
            continue
        if polarity is None and i == mid:
            polarity = bp.polarity  # one contrast per series: fix it after the middle slice
        widths[i] = bp.cols.size * bp.step_mm
        try:
            geo = tibial_geometry(bp, outer_col_sign=medial_col_sign)
        except KneeMeasureError:
            continue
        scores[i] = geo.eminence_height_mm
    if not np.isfinite(scores).any():
        raise DetectionError(
            "no slice shows the femur above the tibia; choose the slice with --slice or give "
            "landmarks with --points"
        )
    body = [i for i in range(n) if widths[i] >= 0.75 * widths.max() and np.isfinite(scores[i])]
    if not body:
        body = [int(np.nanargmax(scores))]
    # Light smoothing across neighbours (slices are thick; one noisy slice must not win).
    s = np.where(np.isfinite(scores), scores, 0.0)
    sm = s.copy()
    for i in body:
        nb = [j for j in (i - 1, i + 1) if j in body]
        sm[i] = (2 * s[i] + sum(s[j] for j in nb)) / (2 + len(nb))
    # The meniscal body lies in the middle of the body range (horns at its ends; the
    # posterior intercondylar area also rises high), so look in its central 60 %.
    lo, hi = min(body), max(body)
    centre, half = 0.5 * (lo + hi), 0.3 * (hi - lo) + 0.5
    central = [i for i in body if abs(i - centre) <= half] or body
    best = max(central, key=lambda i: sm[i])
    med = float(np.median([s[i] for i in body]))
    prominence = (s[best] - med) / max(abs(s[best]), 1e-6) if len(body) > 1 else 0.0
    conf = float(np.clip(0.5 * min(len(body), 4) / 4 + 0.5 * np.clip(prominence * 2, 0, 1)
                         + (0.25 if 3.0 <= s[best] <= 20.0 else 0.0), 0.0, 1.0))
    return SliceChoice(index=int(best), scores=scores, confidence=conf, body_indices=body)
