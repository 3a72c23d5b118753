"""Orchestration: automatic landmarks on one coronal slice."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from kneemeasure.detect.joint import find_bone_pair, to_isotropic
from kneemeasure.detect.meniscus import find_meniscus
from kneemeasure.detect.tibia import tibial_geometry, up_normal_of
from kneemeasure.errors import DetectionError
from kneemeasure.models import Landmarks

__all__ = ["detect_landmarks"]

_HINT = "give the landmarks with --points or --interactive, or choose another --slice"


def _soft(x: float, good: float, bad: float) -> float:
    """1 at ``good``, 0 at ``bad``, linear in between (either order)."""
    if good == bad:
        return float(x == good)
    t = (x - bad) / (good - bad)
    return float(np.clip(t, 0.0, 1.0))


def detect_landmarks(
    image: np.ndarray,
    *,
    row_spacing_mm: float,
    col_spacing_mm: float,
    outer_col_sign: int,
    side: str = "medial",
) -> Landmarks:
    """Detect the tibial margin and the meniscal body on one coronal slice.

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
        Coronal MR slice, any contrast (T1, PD, fat-suppressed PD, DESS).
    row_spacing_mm, col_spacing_mm : float, keyword-only
        Pixel Spacing (0028,0030) [0] (between rows) and [1] (between columns), mm.
    outer_col_sign : {+1, -1}, keyword-only
        +1 when the measured compartment's outer edge lies toward increasing column
        (for ``side="medial"``: the medial direction).
    side : {"medial", "lateral"}, keyword-only
        Compartment measured (only used in notes; geometry follows ``outer_col_sign``).

    Returns
    -------
    Landmarks
        ``plateau_rc`` and ``meniscus_rc`` in original pixels (sub-pixel),
        ``plateau_dir_rc`` a unit vector in physical (row_mm, col_mm) space pointing
        outward along the fitted plateau, ``confidence`` in [0, 1].

    Raises
    ------
    DetectionError
        When the joint, the tibia or the meniscus cannot be found.

    Notes
    -----
    1. Resample to 0.5 mm square pixels; find femur and tibia as the best vertically
       stacked pair of bone-like regions (both intensity polarities tried).
    2. Fit the plateau surface and the outer metaphyseal cortex with robust lines; the
       margin is their intersection, so marginal osteophytes do not move it.
    3. Sample the original image in a frame attached to the margin (u along the plateau,
       v toward the femur) at 0.1 mm; the meniscus is the dark run between the bones,
       stopped at vertical dark structures (MCL/capsule); the outer edge is refined at
       the half-way crossing of the smoothed joint-level profile.
    4. Confidence is the mean of cue scores (plateau and cortex residuals, edge
       contrast, wedge shape, plausible gap, width and extrusion in mm).
    """
    if outer_col_sign not in (1, -1):
        raise ValueError(f"outer_col_sign must be +1 or -1, got {outer_col_sign!r}")
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2 or min(img.shape) < 16:
        raise DetectionError(f"image of shape {img.shape} is not a 2D slice; {_HINT}")
    step = 0.5
    iso = to_isotropic(img, row_spacing_mm=row_spacing_mm, col_spacing_mm=col_spacing_mm,
                       step_mm=step)
    bp = find_bone_pair(iso)
    if bp is None:
        raise DetectionError(f"no tibiofemoral joint (femur above tibia) found; {_HINT}")
    geo = tibial_geometry(bp, outer_col_sign=outer_col_sign)
    d = geo.plateau.direction
    n_up = up_normal_of(d)
    # Sample the original image (lightly smoothed, 0.3 mm) in the margin frame.
    lo, hi = np.percentile(img, [1.0, 99.5])
    sm = ndi.gaussian_filter(
        (img - lo) / max(hi - lo, 1e-6), (0.3 / row_spacing_mm, 0.3 / col_spacing_mm)
    )
    u = np.arange(-25.0, 15.0 + 1e-9, 0.1)
    v = np.arange(-6.0, 16.0 + 1e-9, 0.1)
    uu, vv = np.meshgrid(u, v)
    pr = geo.margin_rc[0] + uu * d[0] + vv * n_up[0]
    pc = geo.margin_rc[1] + uu * d[1] + vv * n_up[1]
    patch = ndi.map_coordinates(sm, [pr / row_spacing_mm, pc / col_spacing_mm], order=1,
                                mode="nearest")
    fem = ndi.map_coordinates(bp.femur.astype(np.uint8), [pr / step, pc / step], order=0,
                              mode="constant").astype(bool)
    tib = ndi.map_coordinates(bp.tibia.astype(np.uint8), [pr / step, pc / step], order=0,
                              mode="constant").astype(bool)
    men = find_meniscus(patch, fem, tib, u_mm=u, v_mm=v)
    if men is None:
        raise DetectionError(f"no meniscal wedge found at the {side} joint margin; {_HINT}")

    def to_px(uv: tuple[float, float]) -> tuple[float, float]:
        p = geo.margin_rc + uv[0] * d + uv[1] * n_up
        return float(p[0] / row_spacing_mm), float(p[1] / col_spacing_mm)

    plateau_px = (float(geo.margin_rc[0] / row_spacing_mm),
                  float(geo.margin_rc[1] / col_spacing_mm))
    outer_px = to_px(men.outer_uv)
    inner_px = to_px(men.inner_uv)
    extrusion = men.outer_uv[0]
    width = men.outer_uv[0] - men.inner_uv[0]
    notes = list(geo.notes)
    cues = {
        "plateau_fit": _soft(geo.plateau.rms_mm, 0.3, 1.5),
        "cortex_fit": 0.3 if geo.cortex is None else _soft(geo.cortex.rms_mm, 0.4, 2.0),
        "edge": 0.4 if men.ligament_stop else _soft(men.edge_contrast, 0.5, 0.1),
        "wedge": _soft(men.wedge_score, 0.4, 0.0),
        "gap": _soft(abs(men.band_height_mm - 6.0), 3.0, 9.0),
        "width": _soft(abs(width - 10.0), 5.0, 10.0),
        "extrusion": _soft(abs(extrusion - 2.0), 6.0, 10.0),
    }
    confidence = float(np.mean(list(cues.values())))
    weak = [k for k, s in cues.items() if s < 0.5]
    if weak:
        notes.append("weak cues: " + ", ".join(weak))
    if men.ligament_stop:
        notes.append("meniscus merges with a vertical dark band (MCL/capsule); edge at its start")
    notes.append(f"polarity {'bright' if bp.polarity > 0 else 'dark'} marrow; "
                 f"eminence {geo.eminence_height_mm:.1f} mm; body width {width:.1f} mm")
    return Landmarks(
        plateau_rc=plateau_px,
        meniscus_rc=outer_px,
        meniscus_inner_rc=inner_px,
        plateau_dir_rc=(float(d[0]), float(d[1])),
        confidence=confidence,
        plateau_direction_source="detected",
        notes=notes,
    )
