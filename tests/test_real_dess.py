"""Real 3D sagittal DESS (pyKNEEr demo, right knee) reformatted to coronal.

Skipped when ../shared/realdata is absent (the data is never copied into the repo).
Facts checked by eye on the reformatted planes: medial is image-right (columns run
toward +x = patient left = medial of a right knee); the tibial spines are most
prominent on planes ~250-275 (y 10-18 mm); the posterior condyles and the notch
(cruciates) fill planes >= 295; the medial meniscal body is a grey wedge between the
bright femoral and tibial cartilage bands, its edge near column 63.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
DESS = REAL / "pykneer_dess" / "DESS_echo1_sag"

@pytest.fixture(scope="module")
def dess_row():
    if not DESS.is_dir():
        pytest.skip("../shared/realdata not present")
    from kneemeasure.io.discover import discover_series
    from kneemeasure.pipeline import MeasureOptions, measure_series

    (series,), errors = discover_series([DESS])
    assert errors == []
    (row,) = measure_series(series, MeasureOptions())
    return row


@pytest.mark.realdata
def test_dess_reformat_geometry_and_side(dess_row) -> None:
    m = dess_row
    assert m.status != "error", m.error
    assert m.laterality == "R" and m.laterality_source == "anatomy"
    assert m.medial_image_side == "image-right"
    assert (m.row_spacing_mm, m.col_spacing_mm) == pytest.approx((0.3125, 1.5), abs=1e-3)
    assert m.spacing_source == "reformat"


@pytest.mark.realdata
def test_dess_reference_plane_at_the_spines(dess_row) -> None:
    # instance k is plane k-1; the spine-apex planes are ~250-275, the posterior
    # condyles (the old, wrong choice: 305/306) start near 295
    assert 245 <= dess_row.instance_number <= 280, dess_row.instance_number


@pytest.mark.realdata
def test_dess_landmarks_on_the_medial_margin(dess_row) -> None:
    m = dess_row
    # tibial margin at the medial end of the tibial cartilage (rows ~350-356,
    # columns ~61-65), meniscal edge above it at the periphery, MME normal
    assert 345 <= m.plateau_row_px <= 360 and 60 <= m.plateau_col_px <= 66
    assert m.meniscus_row_px < m.plateau_row_px
    assert 60 <= m.meniscus_col_px <= 67
    assert -2.0 <= m.extrusion_mm <= 3.0
    assert np.isfinite(m.confidence)


@pytest.mark.realdata
def test_dess_status_ok(dess_row) -> None:
    # the medial cortex shows only as a dark-to-bright step (marrow as dark as the
    # cortex); it runs straight 2-10 mm below the rim, so it is traced and trusted
    assert dess_row.status == "ok", (dess_row.confidence, dess_row.error)
    assert dess_row.confidence >= 0.5


def test_step_edge_takes_the_first_of_two_steps() -> None:
    """Bone 0.0 up to u = 0, fat 0.2 from 0 to 1.5 mm, capsule 0.6 beyond (sharp steps,
    smoothed by 0.15 mm): the bone surface is the first rise at u = 0, not the
    half-way level to the capsule (0.3, at u = 1.5)."""
    from scipy import ndimage as ndi

    from kneemeasure.detect.tibia import _step_edge

    x = np.arange(-8.0, 5.0 + 1e-9, 0.05)
    prof = np.where(x < 0.0, 0.0, np.where(x < 1.5, 0.2, 0.6))
    prof = ndi.gaussian_filter1d(prof, 3.0)
    assert _step_edge(prof, x, search=(-5.0, 2.0), reach_mm=3.0) == pytest.approx(0.0, abs=0.05)
    # no step (flat dark profile with a 0.05 bump): nothing
    flat = np.where(np.abs(x - 1.0) < 0.5, 0.05, 0.0)
    assert _step_edge(flat, x, search=(-5.0, 2.0), reach_mm=3.0) is None


def test_straight_step_cortex_drops_a_spur_and_needs_a_deep_run() -> None:
    """Cortex steps at u = 0 from 2 to 10 mm below the rim, with a spur bulging out
    (u = 3, 2, 1 mm at depths 2, 2.5, 3): the spur edges are dropped, the rest kept.
    Steps only from 2 to 6.5 mm (a spur's underside with nothing below it, as on the
    DESS osteophyte phantom) are not trusted."""
    from kneemeasure.detect.tibia import _straight_step_cortex

    depths = np.arange(2.0, 10.01, 0.5)
    u = np.zeros_like(depths)
    u[:3] = [3.0, 2.0, 1.0]
    notes: list[str] = []
    kept = _straight_step_cortex(list(zip(depths, u, strict=True)), depth_range=(2.0, 10.0),
                                 notes=notes)
    assert kept is not None
    assert [d for d, _ in kept] == pytest.approx(list(depths[3:]))
    assert any("bulge" in n for n in notes)
    # a steady lean (the metaphysis flaring 10 deg toward the rim) is kept whole
    lean = -np.tan(np.deg2rad(10.0)) * (depths - 2.0)
    kept = _straight_step_cortex(list(zip(depths, lean, strict=True)), depth_range=(2.0, 10.0),
                                 notes=[])
    assert kept is not None and len(kept) == len(depths)
    # steps that stop 6.5 mm below the rim: no deep run, not used
    short = [(d, 0.0) for d in np.arange(2.0, 6.51, 0.5)]
    notes = []
    assert _straight_step_cortex(short, depth_range=(2.0, 10.0), notes=notes) is None
    assert any("do not continue" in n for n in notes)
    # steps 40 deg from the plateau normal (a spur's slanted underside): not straight down
    slant = [(d, -np.tan(np.deg2rad(40.0)) * d) for d in depths]
    assert _straight_step_cortex(slant, depth_range=(2.0, 10.0), notes=[]) is None
