"""Landmark accuracy on phantom reference slices with exact truth (0.5 mm tolerance).

Only the reference slice is rendered (``n_slices=1``) and matrices are small, so each
case takes well under a second.
"""

from dataclasses import replace

import pytest

from kneemeasure.detect import detect_landmarks
from kneemeasure.measure import extrusion_mm
from kneemeasure.phantom import SAMPLE_SPECS, PhantomSpec, make_volume

_SAMPLES = {s.name: s for s, _ in SAMPLE_SPECS}


def _one_slice(spec: PhantomSpec) -> PhantomSpec:
    return replace(spec, n_slices=1, ref_offset=0)


CASES = {
    "pd_iso": _SAMPLES["r_pd_iso_mme1p5"],
    "t1_anisotropic_rotated": _SAMPLES["l_t1_aniso_mme3p8"],
    "t1_osteophyte_degenerated": _SAMPLES["r_t1_slope_j2k_mme2p6"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_medial_extrusion_on_phantom_reference_slice(name):
    spec = _one_slice(CASES[name])
    vol, truth = make_volume(spec)
    lm = detect_landmarks(
        vol[truth.ref_index],
        row_spacing_mm=spec.row_spacing_mm,
        col_spacing_mm=spec.col_spacing_mm,
        outer_col_sign=truth.medial_col_sign,
    )
    mme = extrusion_mm(
        lm.plateau_rc,
        lm.meniscus_rc,
        plateau_dir_rc=lm.plateau_dir_rc,
        row_spacing_mm=spec.row_spacing_mm,
        col_spacing_mm=spec.col_spacing_mm,
    )
    assert mme == pytest.approx(truth.extrusion_mm, abs=0.5), (name, mme, lm.notes)
    # the margin itself is within 1 mm of the truth corner (osteophyte excluded)
    dr = (lm.plateau_rc[0] - truth.plateau_rc[0]) * spec.row_spacing_mm
    dc = (lm.plateau_rc[1] - truth.plateau_rc[1]) * spec.col_spacing_mm
    assert (dr**2 + dc**2) ** 0.5 < 1.0, (name, dr, dc)
