"""Landmark accuracy on phantom reference slices with exact truth (0.5 mm tolerance).

Only the reference slice is rendered (``n_slices=1``) and matrices are small, so each
case takes well under a second.
"""

from dataclasses import replace

import pytest

from kneemeasure.detect import detect_landmarks
from kneemeasure.measure import extrusion_mm
from kneemeasure.phantom import SAMPLE_SPECS, PhantomSpec, make_volume, suite_specs
from kneemeasure.validate import hard_suite_specs

_SAMPLES = {s.name: s for s, _ in SAMPLE_SPECS}


def _one_slice(spec: PhantomSpec) -> PhantomSpec:
    return replace(spec, n_slices=1, ref_offset=0)


_SUITE = suite_specs(24)
_HARD = {spec.name: spec for _, spec in hard_suite_specs(240)}

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
    # dark marrow, 5-6 mm extrusion: the bright fluid wrapping the extruded meniscus
    # and sloping down the bone's outer side must not extend the plateau (margin was
    # 6 mm out)
    "pdfs_extruded_fluid_slope": _HARD["baseline_012"],
    "pdfs_extruded_fine_left": _HARD["fine_spacing_005"],
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


def test_surface_chord_of_a_dish_is_level_and_ignores_a_stray_point():
    """A symmetric dish v = 0.02 (u - 10)^2 over u in [0, 20] mm has a level chord; a
    straight consensus line would follow one arc (tilted by ~10 degrees)."""
    import numpy as np

    from kneemeasure.detect.tibia import surface_chord

    u = np.arange(0.0, 20.01, 0.5)
    v = 0.02 * (u - 10.0) ** 2
    v[10] -= 3.0  # a walk stopped 3 mm low (a physeal scar)
    line = surface_chord(u, v, p0=np.array([50.0, 40.0]), direction=np.array([0.0, -1.0]))
    assert line is not None
    assert abs(line.direction[0]) < 0.01 and line.direction[1] < 0  # level, outward kept
    assert line.n_inliers == len(u) - 1
    # the chord passes through the parabola's middle: v(10) = 0 -> row 50, u 10 -> col 30
    assert line.point == pytest.approx([50.0, 30.0], abs=1e-6)


def test_steep_surface_moves_an_edge_in_dim_marrow_up_to_the_band():
    """Marrow fading from 1.0 (-3 mm) to 0.6 (2 mm, a dim subchondral zone), then a
    ramp to the dark joint band (0.6 at 3 mm to 0.0 at 4 mm). The 0.65-level edge lies
    at 1.5 mm in the dim zone; the surface is the ramp's half-way point between the
    band (0.0) and the brightest sample from 0.5 mm under that edge (0.68 at 1.0 mm),
    i.e. 0.34 at 3.43 mm."""
    import numpy as np

    from kneemeasure.detect.tibia import _steep_surface

    x = np.arange(-3.0, 8.0, 0.05)
    prof = np.interp(x, [-3.0, 2.0, 3.0, 4.0, 8.0], [1.0, 0.6, 0.6, 0.0, 0.0])
    new = _steep_surface(prof, x, (1.5, None, 0.0), marrow=1.0, dark=0.0)
    assert new[0] == pytest.approx(3.0 + (0.6 - 0.34) / 0.6, abs=0.03) and new[1] is None
    # bright marrow right under the edge (a real marrow/cortex step): unchanged
    step = np.interp(x, [-3.0, 0.95, 1.05, 8.0], [1.0, 1.0, 0.0, 0.0])
    assert _steep_surface(step, x, (1.0, None, 0.0), marrow=1.0, dark=0.0) == (1.0, None, 0.0)
