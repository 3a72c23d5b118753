"""Hard-suite cases with strong noise and coil bias on dark-marrow contrasts (issue 3).

Only the reference slice of each case is rendered (``n_slices=1``): the geometry,
contrast, noise and bias of the suite's spec, a fresh noise draw. Before the fixes these
cases put the tibial margin 7-67 mm off (bone masks riddled by noise specks or leaking
into the soft tissue, a partial femur moving the eminence, a cortex line tilted by a few
noisy points); see ``kneemeasure validate`` on ``kneemeasure.validate.hard_suite_specs``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from kneemeasure.detect.joint import find_bone_pair, line_valleys, normalise, to_isotropic
from kneemeasure.detect.landmarks import detect_landmarks
from kneemeasure.detect.tibia import fit_cortex_line
from kneemeasure.phantom import make_volume
from kneemeasure.validate import hard_suite_specs


def _spec(name: str):
    for _cond, spec in hard_suite_specs(240):
        if spec.name == name:
            return spec
    raise KeyError(name)


def _reference_slice(name: str):
    spec = dataclasses.replace(_spec(name), n_slices=1, ref_offset=0)
    vol, truth = make_volume(spec)
    return spec, vol[0], truth


def _mme(lm, spec) -> float:
    d = np.asarray(lm.plateau_dir_rc)
    delta = (np.asarray(lm.meniscus_rc) - np.asarray(lm.plateau_rc)) * [
        spec.row_spacing_mm, spec.col_spacing_mm]
    return float(delta @ d)


# the gross failures of the 240-series hard suite (noise 0.07-0.09, bias 0.33-0.37, and a
# low-noise DESS whose femur mask came out partial)
@pytest.mark.parametrize("name", ["noise_bias_006", "noise_bias_007", "noise_bias_014",
                                  "noise_bias_015", "baseline_014"])
def test_noisy_dark_marrow_case_measured_within_half_mm(name):
    spec, img, truth = _reference_slice(name)
    assert spec.contrast in ("pdfs", "dess")
    lm = detect_landmarks(img, row_spacing_mm=spec.row_spacing_mm,
                          col_spacing_mm=spec.col_spacing_mm,
                          outer_col_sign=truth.medial_col_sign)
    mme = _mme(lm, spec)
    assert abs(mme - truth.extrusion_mm) <= 0.5, (mme, truth.extrusion_mm, lm.notes)
    margin_err = np.hypot(*((np.asarray(lm.plateau_rc) - truth.plateau_rc)
                            * [spec.row_spacing_mm, spec.col_spacing_mm]))
    assert margin_err <= 1.0, (margin_err, lm.notes)


def test_hardest_noise_case_is_right_or_flagged():
    """PD fat-sat at noise 0.086 / bias 0.32: the cortex barely shows. The suite's
    acceptance for status-ok rows (within 1 mm) must hold, or the confidence must fall
    below 0.5 (status review)."""
    spec, img, truth = _reference_slice("noise_bias_013")
    lm = detect_landmarks(img, row_spacing_mm=spec.row_spacing_mm,
                          col_spacing_mm=spec.col_spacing_mm,
                          outer_col_sign=truth.medial_col_sign)
    err = abs(_mme(lm, spec) - truth.extrusion_mm)
    assert err <= 1.0 or lm.confidence < 0.5, (err, lm.confidence, lm.notes)


def test_noisy_dess_bone_pair_does_not_leak_into_soft_tissue():
    """noise_bias_014: the tibia mask used to fill the whole lower image (skin to skin)."""
    spec, img, truth = _reference_slice("noise_bias_014")
    iso = to_isotropic(img, row_spacing_mm=spec.row_spacing_mm,
                       col_spacing_mm=spec.col_spacing_mm, step_mm=0.5)
    bp = find_bone_pair(iso, main_runs=True)
    assert bp is not None and bp.polarity == -1
    # the truth margin (medial plateau corner) lies at the tibia's outer edge
    r, c = (np.asarray(truth.plateau_rc) * [spec.row_spacing_mm, spec.col_spacing_mm] / 0.5)
    cols = np.nonzero(bp.tibia[int(round(r)) + 6])[0]  # 3 mm below the plateau
    outer = cols.max() if truth.medial_col_sign > 0 else cols.min()
    assert abs(outer - c) * 0.5 <= 4.0, (outer, c)
    width_mm = (cols.max() - cols.min()) * 0.5
    assert width_mm < 0.8 * bp.tibia.shape[1] * 0.5, width_mm


def test_line_valleys_find_a_thin_dark_line_in_noise():
    """A 1 mm dark line (contrast 0.1) in noise of SD 0.06 on 0.5 mm pixels: found along
    most of its length; specks of noise alone are not kept."""
    rng = np.random.default_rng(0)
    img = np.full((120, 120), 0.5)
    img[:, 59:61] = 0.4  # vertical line, 2 px = 1 mm
    noisy = img + rng.normal(0.0, 0.06, img.shape)
    body = np.ones(img.shape, bool)
    v = line_valleys(noisy, body, step_mm=0.5)
    on_line = v[10:-10, 58:62].any(axis=1).mean()
    off_line = v[10:-10, 10:50].mean()
    assert on_line > 0.8, on_line
    assert off_line < 0.01, off_line
    assert not line_valleys(normalise(rng.normal(0.5, 0.1, img.shape)), body,
                            step_mm=0.5)[10:-10, 10:-10].mean() > 0.01


def test_cortex_fit_ignores_an_outward_leaning_noisy_deep_half():
    """Cortex points of a vertical cortex (col 10 mm) whose deep half leans outward by
    noise: the line must stay near vertical, not be tilted by trimming the shallow half."""
    rows = np.arange(2.0, 10.01, 0.5)
    cols = np.full(rows.size, 10.0)
    cols[rows >= 6.0] -= 0.12 * (rows[rows >= 6.0] - 6.0)  # outward = -col with depth
    line = fit_cortex_line(np.column_stack([rows, cols]), outward=np.array([0.0, -1.0]))
    tilt = np.degrees(np.arcsin(abs(line.direction[1])))
    assert tilt < 4.5, tilt
