"""Marginal osteophyte on PD fat-sat, hard suite seed 1 (issue 3, follow-up).

``osteophyte_012`` of ``hard_suite_specs(240, seed=1)`` (1.8 mm spur): the dark cortex
line and the dark MCL just outside it are about equally dark, so the darkest sample of
each profile below the rim picked one or the other; the cortex points split into two
parallel columns 3.6 mm apart, no line was fitted, and the rim of the bright band over
the spur became the margin (1.6 mm outward, MME -1.05 mm for 0.53 mm, confidence 0.89,
status ok). The inner column is now taken as the cortex; when it cannot be fitted the
margin is reported ambiguous and the confidence halved (status review).

The whole 15-slice series is rendered (about 1 s) and its reference slice measured: a
single-slice render (``n_slices=1``) draws other noise and does not show the split.
"""

from __future__ import annotations

import numpy as np

from kneemeasure.detect.landmarks import detect_landmarks
from kneemeasure.detect.tibia import split_cortex_columns
from kneemeasure.phantom import make_volume
from kneemeasure.validate import hard_suite_specs


def _reference_slice(name: str, seed: int):
    spec = next(s for _c, s in hard_suite_specs(240, seed=seed) if s.name == name)
    vol, truth = make_volume(spec)
    return spec, vol[truth.ref_index], truth


def test_seed1_spur_margin_on_the_cortex_not_the_spur():
    spec, img, truth = _reference_slice("osteophyte_012", 1)
    assert spec.contrast == "pdfs" and spec.osteophyte_mm == 1.8
    assert abs(truth.extrusion_mm - 0.53) < 0.01
    sp = np.array([spec.row_spacing_mm, spec.col_spacing_mm])
    lm = detect_landmarks(img, row_spacing_mm=sp[0], col_spacing_mm=sp[1],
                          outer_col_sign=truth.medial_col_sign)
    margin_err = float(np.hypot(*((np.asarray(lm.plateau_rc) - truth.plateau_rc) * sp)))
    mme = float(((np.asarray(lm.meniscus_rc) - np.asarray(lm.plateau_rc)) * sp)
                @ np.asarray(lm.plateau_dir_rc))
    # right, or flagged (confidence < 0.5 -> status review); was 1.6 mm off at 0.89
    assert (margin_err <= 0.8 and abs(mme - truth.extrusion_mm) <= 0.8) or lm.confidence < 0.5, (
        margin_err, mme, truth.extrusion_mm, lm.confidence, lm.notes)


def _columns(depths, u_inner, u_outer, inner_at):
    """(depth, u) points taking the inner column at the depths in ``inner_at``."""
    return np.array([(d, u_inner if d in inner_at else u_outer) for d in depths])


def test_two_interleaved_parallel_columns_split():
    depths = np.arange(2.0, 10.01, 0.5)
    inner_at = {6.0, 6.5, 7.0, 9.0, 9.5, 10.0}
    pts = _columns(depths, -1.4, 2.2, inner_at)
    split = split_cortex_columns(pts)
    assert split is not None
    inner, outer = split
    assert inner.sum() == 6 and outer.sum() == 11
    assert np.all(pts[inner, 1] == -1.4) and np.all(pts[outer, 1] == 2.2)


def test_one_straight_column_does_not_split():
    depths = np.arange(2.0, 10.01, 0.5)
    pts = np.column_stack([depths, 0.1 * depths])
    assert split_cortex_columns(pts) is None


def test_columns_closer_than_the_gap_do_not_split():
    depths = np.arange(2.0, 10.01, 0.5)
    pts = _columns(depths, 0.0, 1.5, {6.0, 6.5, 7.0, 9.0, 9.5, 10.0})
    assert split_cortex_columns(pts) is None


def test_shallow_spur_over_deep_cortex_is_not_a_split():
    # outward bulge 2-4.5 mm below the rim, cortex from 5 mm down: stacked, not side by side
    depths = np.arange(2.0, 10.01, 0.5)
    pts = np.column_stack([depths, np.where(depths < 5.0, 2.5, 0.0)])
    assert split_cortex_columns(pts) is None


def test_scattered_points_do_not_split():
    # the outer "column" wanders by +-1 mm: not a line
    depths = np.arange(2.0, 10.01, 0.5)
    u = np.where(np.isin(depths, [6.0, 6.5, 7.0, 9.0, 9.5, 10.0]), -1.4,
                 2.2 + np.tile([-1.0, 1.0], 9)[: depths.size])
    assert split_cortex_columns(np.column_stack([depths, u])) is None
