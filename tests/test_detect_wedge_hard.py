"""Meniscal edge of strongly extruded menisci in the hard suite (GitHub issue 3).

Two hard-suite cases used to give a confident, wrong edge:

* ``degenerated_002`` (PD, right knee, 8 mm): a bright intrasubstance streak splits the
  body; the walk stopped at the streak's inner end (measured -1.7 mm).
* ``effusion_001`` (T1, left knee, 8 mm): intermediate effusion fluid joined the dark
  body, lifted its level, and the edge ran through the fluid to the MCL (12.2 mm).

The specs come from :func:`kneemeasure.validate.hard_suite_specs`; only the reference
slice is rendered (``n_slices=1``: same geometry, another noise draw).
"""

import dataclasses

import pytest

from kneemeasure.detect import detect_landmarks
from kneemeasure.measure import extrusion_mm
from kneemeasure.phantom import make_volume
from kneemeasure.validate import hard_suite_specs

CASES = ("degenerated_002", "effusion_001", "degenerated_001", "effusion_003", "degenerated_012")


@pytest.fixture(scope="module")
def specs():
    return {s.name: s for _cond, s in hard_suite_specs(240)}


@pytest.mark.parametrize("name", CASES)
def test_extruded_meniscus_edge_in_hard_suite_case(specs, name):
    spec = dataclasses.replace(specs[name], n_slices=1, ref_offset=0)
    vol, truth = make_volume(spec)
    lm = detect_landmarks(vol[truth.ref_index], row_spacing_mm=spec.row_spacing_mm,
                          col_spacing_mm=spec.col_spacing_mm,
                          outer_col_sign=truth.medial_col_sign)
    mme = extrusion_mm(lm.plateau_rc, lm.meniscus_rc, plateau_dir_rc=lm.plateau_dir_rc,
                       row_spacing_mm=spec.row_spacing_mm, col_spacing_mm=spec.col_spacing_mm)
    assert mme == pytest.approx(truth.extrusion_mm, abs=0.5), (mme, lm.confidence, lm.notes)
    assert lm.confidence >= 0.5, (lm.confidence, lm.notes)
