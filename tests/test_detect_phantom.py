"""Landmark accuracy on phantom reference slices with exact truth (0.5 mm tolerance).

Only the reference slice is rendered (``n_slices=1``) and matrices are small, so each
case takes well under a second.
"""

from dataclasses import replace

import pytest

from kneemeasure.detect import detect_landmarks
from kneemeasure.measure import extrusion_mm
from kneemeasure.phantom import SAMPLE_SPECS, PhantomSpec, make_volume, suite_specs

_SAMPLES = {s.name: s for s, _ in SAMPLE_SPECS}


def _one_slice(spec: PhantomSpec) -> PhantomSpec:
    return replace(spec, n_slices=1, ref_offset=0)


_SUITE = suite_specs(24)

CASES = {
    "pd_iso": _SAMPLES["r_pd_iso_mme1p5"],
    "t1_anisotropic_rotated": _SAMPLES["l_t1_aniso_mme3p8"],
    "t1_osteophyte_degenerated": _SAMPLES["r_t1_slope_j2k_mme2p6"],
    # PD, left knee, meniscus inside the margin: the joint cartilage band touches the
    # tibia through the notch and must not become the plateau
    "pd_left_negative": _SAMPLES["l_pd_nolat_rev_mme-0p8"],
    # dark marrow: margin from the bright cartilage/fluid and the dark cortex line
    "pdfs_tilt_effusion": _SAMPLES["r_pdfs_rle_mme5p0"],
    "dess_flipped_rotated_tilt": _SAMPLES["r_dess_flip_mme7p0"],
    "dess_rotated_degenerated": _SUITE[7],
    "dess_osteophyte_effusion_degenerated": _SUITE[15],
    "dess_anisotropic_osteophyte": _SUITE[22],
    "pdfs_rotated_degenerated": _SUITE[20],
    "pdfs_effusion_negative": _SUITE[21],
    "pd_tilt": _SUITE[18],
    "pd_rotated_tilt_degenerated": _SUITE[11],
    "t1_osteophyte_effusion_degenerated": _SUITE[9],
}

#: Lateral compartment (fibular head below the plateau must not be taken as the margin).
LATERAL_CASES = {
    "t1_rotated": _SUITE[0],
    "t1_osteophyte_tilt": _SUITE[1],
    "pd_tilt_effusion": _SUITE[2],
    "pdfs_osteophyte_rotated": _SUITE[5],
    "dess_effusion": _SUITE[6],
    "pd_negative": _SUITE[19],
    "dess_anisotropic_osteophyte": _SUITE[22],
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


@pytest.mark.parametrize("name", sorted(LATERAL_CASES))
def test_lateral_extrusion_on_phantom_reference_slice(name):
    spec = _one_slice(LATERAL_CASES[name])
    vol, truth = make_volume(spec)
    lm = detect_landmarks(
        vol[truth.ref_index],
        row_spacing_mm=spec.row_spacing_mm,
        col_spacing_mm=spec.col_spacing_mm,
        outer_col_sign=-truth.medial_col_sign,
        side="lateral",
    )
    mme = extrusion_mm(
        lm.plateau_rc,
        lm.meniscus_rc,
        plateau_dir_rc=lm.plateau_dir_rc,
        row_spacing_mm=spec.row_spacing_mm,
        col_spacing_mm=spec.col_spacing_mm,
    )
    assert mme == pytest.approx(truth.lateral_extrusion_mm, abs=0.5), (name, mme, lm.notes)
    dr = (lm.plateau_rc[0] - truth.lateral_plateau_rc[0]) * spec.row_spacing_mm
    dc = (lm.plateau_rc[1] - truth.lateral_plateau_rc[1]) * spec.col_spacing_mm
    assert (dr**2 + dc**2) ** 0.5 < 1.0, (name, dr, dc)
