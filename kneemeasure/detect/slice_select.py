"""Reference slice choice: the coronal slice through the medial tibial spine apex."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kneemeasure.detect.coarse import CoarseKnee, analyse_knee
from kneemeasure.errors import DetectionError

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
        Slices that contain the meniscal body: the run of slices with a femur/tibia
        joint within ``body_half_mm`` of the chosen slice (gaps filled).
    polarity : int
        Marrow polarity of the series from the coarse pass: +1 bright (T1/PD), -1
        dark (fat-suppressed, DESS), 0 unknown. A hint for the per-slice detection.
    """

    index: int
    scores: np.ndarray
    confidence: float
    body_indices: list[int] = field(default_factory=list)
    polarity: int = 0


def _thin_plane_window(joint: np.ndarray, level_mm: np.ndarray) -> tuple[float, np.ndarray]:
    """Prior centre and candidate planes for a thin-plane (reformatted 3D) series.

    A reformat covers the whole sagittal field of view, so the middle of the stack
    says nothing about the knee. The planes that show a femur above a tibia run from
    the anterior to the posterior edge of the plateau; the longest such run (gaps of
    up to two analysed planes bridged) is the tibial plateau, and the spine apex lies
    in its middle half (the posterior quarter cuts the posterior condyles and the
    notch, where the cruciate ligaments mimic a high eminence). Planes whose joint lies
    more than 10 mm above or below the median joint level are not part of the run
    (the patellofemoral joint, the proximal tibiofibular joint).

    Parameters
    ----------
    joint : ndarray of bool, shape (n,)
        Analysed planes with a femur/tibia pair.
    level_mm : ndarray, shape (n,)
        Joint level (median tibial top, mm from the top row) per analysed plane.

    Returns
    -------
    centre : float
        Middle of the run (analysed-plane index).
    window : ndarray of bool, shape (n,)
        Candidate planes (the run's middle half; all planes when no run is found).
    """
    n = joint.size
    ok = np.nonzero(joint & np.isfinite(level_mm))[0]
    if ok.size >= 3:
        ok = ok[np.abs(level_mm[ok] - np.median(level_mm[ok])) <= 10.0]
    if ok.size < 3:
        return 0.5 * (n - 1), np.ones(n, bool)
    runs, start = [], ok[0]
    for a, b in zip(ok[:-1], ok[1:], strict=True):
        if b - a > 3:
            runs.append((start, a))
            start = b
    runs.append((start, ok[-1]))
    okm = np.zeros(n, bool)
    okm[ok] = True
    lo, hi = max(runs, key=lambda r: (int(okm[r[0] : r[1] + 1].sum()), r[1] - r[0]))
    centre = 0.5 * (lo + hi)
    quarter = 0.25 * (hi - lo)
    idx = np.arange(n)
    window = (idx >= np.floor(centre - quarter)) & (idx <= np.ceil(centre + quarter))
    return float(centre), window


def select_reference_slice(
    volume: np.ndarray,
    *,
    row_spacing_mm: float,
    col_spacing_mm: float,
    medial_col_sign: int,
    slice_spacing_mm: float | None = None,
    coarse: CoarseKnee | None = None,
    body_half_mm: float = 20.0,
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
    slice_spacing_mm : float, optional, keyword-only
        Distance between slice centres (mm); 3.5 mm is assumed when not given.
    coarse : CoarseKnee, optional, keyword-only
        A coarse pass of the same volume (:func:`~kneemeasure.detect.coarse.analyse_knee`)
        to reuse; computed here when absent (or made with another medial side).
    body_half_mm : float, keyword-only
        Half-extent (mm) of the meniscal body range around the chosen slice.

    Returns
    -------
    SliceChoice

    Raises
    ------
    DetectionError
        When no slice shows a femur above a tibia.

    Notes
    -----
    1. The coarse pass (1 mm grid) segments femur and tibia on every slice and measures
       the eminence height: the highest tibial point in the middle of the joint above
       the line fitted to the medial plateau. Heights outside -3..12 mm are discarded
       (a merged notch or soft tissue, not bone).
    2. The eminence rises and falls over about +-8 mm along the slice normal, so the
       heights are matched against a Gaussian bump (sigma 5 mm): each candidate slice
       scores the weighted mean height near it minus the mean height away from it.
       Single outlier slices therefore cannot win, nor can a slice without measured
       slices on both sides (within two slices). A weak prior (0.1 mm per mm) favours
       the middle of the stack, where coronal series are planned.
    3. Confidence combines how many slices were measured, the contrast of the bump and
       whether the winner's own height is plausible (3–20 mm).
    """
    vol = np.asarray(volume)
    if vol.ndim != 3 or vol.shape[0] < 1:
        raise DetectionError(
            f"volume of shape {vol.shape} is not a stack of slices; choose one with --slice"
        )
    n_all = vol.shape[0]
    if coarse is None or coarse.medial_col_sign != medial_col_sign or len(coarse.slices) != n_all:
        coarse = analyse_knee(vol, row_spacing_mm=row_spacing_mm, col_spacing_mm=col_spacing_mm,
                              medial_col_sign=medial_col_sign, previous=coarse,
                              slice_spacing_mm=slice_spacing_mm)
    ssp = float(slice_spacing_mm) if slice_spacing_mm and slice_spacing_mm > 0 else 3.5
    scores_all = np.array([s.eminence_mm for s in coarse.slices], dtype=float)
    # thin planes: choose among the analysed planes (spaced about 2 mm), then map back
    planes = np.array(coarse.planes if coarse.planes is not None else range(n_all), dtype=int)
    if planes.size > 1:
        ssp *= float(np.median(np.diff(planes)))
    scores = scores_all[planes]
    joint = np.array([coarse.slices[i].ok for i in planes])
    n = planes.size
    if not joint.any():
        raise DetectionError(
            "no slice shows the femur above the tibia; choose the slice with --slice or give "
            "landmarks with --points"
        )
    sc = np.where(np.isfinite(scores), scores, np.nan)
    plausible = np.isfinite(sc) & (sc >= -3.0) & (sc <= 12.0)
    valid = plausible.copy()
    high = np.isfinite(sc) & (sc > 12.0)
    k = 0
    while k < n:
        if not high[k]:
            k += 1
            continue
        e = k
        while e + 1 < n and high[e + 1]:
            e += 1
        # a run where the notch merged with the tibia: real at the apex (the spine meets
        # the notch contents) only when a neighbouring slice shows a clear eminence too
        nb = [j for j in (k - 1, e + 1) if 0 <= j < n and plausible[j] and sc[j] >= 2.5]
        if nb and e - k <= 2:
            valid[k : e + 1] = True
        k = e + 1
    x = np.where(valid, np.clip(scores, -1.0, 10.0), 0.0)
    idx = np.arange(n)
    centre, window, prior = 0.5 * (n - 1), np.ones(n, bool), 0.1
    if coarse.planes is not None:
        levels = np.array([coarse.slices[i].plateau_row * coarse.step_mm for i in planes])
        centre, window = _thin_plane_window(joint, levels)
        prior = 0.25
    sig = 5.0 / ssp
    resp = np.full(n, -np.inf)
    for k in range(n):
        w = np.exp(-0.5 * ((idx - k) / sig) ** 2)
        wn = w * valid
        if wn.sum() < 0.8:
            continue
        # the apex has measured slices on both sides (a lone end slice cannot be the peak)
        if not (valid[max(0, k - 2) : k].any() and valid[k + 1 : k + 3].any()):
            continue
        near = float((wn * x).sum() / wn.sum())
        wf = (1.0 - w) * valid
        far = float((wf * x).sum() / wf.sum()) if wf.sum() > 1e-6 else 0.0
        # weak prior: coronal stacks are planned around the knee's middle (1 mm of
        # eminence contrast per 10 mm off the centre of the stack)
        resp[k] = near - far - prior * abs(k - centre) * ssp
    resp[~window] = -np.inf
    if np.isfinite(resp).any():
        best = int(np.argmax(resp))
        # prefer a measured slice at the peak (the bump may straddle a failed slice)
        if not valid[best]:
            near = [k for k in (best - 1, best + 1) if 0 <= k < n and valid[k]]
            if near:
                best = max(near, key=lambda k: resp[k])
        bump = float(resp[best])
    else:  # nothing measurable: the middle of the slices with a joint
        jk = np.nonzero(joint)[0]
        best = int(jk[len(jk) // 2])
        bump = 0.0
    half = int(np.floor(body_half_mm / ssp + 1e-6))
    jk = np.nonzero(joint)[0]
    lo, hi = max(0, best - half), min(n - 1, best + half)
    inside = jk[(jk >= lo) & (jk <= hi)]
    if inside.size:
        body = list(range(int(min(inside.min(), best)), int(max(inside.max(), best)) + 1))
    else:
        body = [best]
    own = scores[best] if valid[best] else 0.0
    conf = (0.35 * min(1.0, valid.sum() / max(3.0, 0.5 * n))
            + 0.4 * float(np.clip(bump / 3.0, 0.0, 1.0))
            + (0.25 if 3.0 <= own <= 20.0 else 0.0))
    body_all = list(range(int(planes[body[0]]), int(planes[body[-1]]) + 1))
    return SliceChoice(index=int(planes[best]), scores=scores_all,
                       confidence=float(np.clip(conf, 0.0, 1.0)), body_indices=body_all,
                       polarity=int(np.sign(coarse.polarity)))
