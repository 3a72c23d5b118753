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

pytestmark = pytest.mark.realdata


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


def test_dess_reformat_geometry_and_side(dess_row) -> None:
    m = dess_row
    assert m.status != "error", m.error
    assert m.laterality == "R" and m.laterality_source == "anatomy"
    assert m.medial_image_side == "image-right"
    assert (m.row_spacing_mm, m.col_spacing_mm) == pytest.approx((0.3125, 1.5), abs=1e-3)
    assert m.spacing_source == "reformat"


def test_dess_reference_plane_at_the_spines(dess_row) -> None:
    # instance k is plane k-1; the spine-apex planes are ~250-275, the posterior
    # condyles (the old, wrong choice: 305/306) start near 295
    assert 245 <= dess_row.instance_number <= 280, dess_row.instance_number


def test_dess_landmarks_on_the_medial_margin(dess_row) -> None:
    m = dess_row
    # tibial margin at the medial end of the tibial cartilage (rows ~350-356,
    # columns ~61-65), meniscal edge above it at the periphery, MME normal
    assert 345 <= m.plateau_row_px <= 360 and 60 <= m.plateau_col_px <= 66
    assert m.meniscus_row_px < m.plateau_row_px
    assert 60 <= m.meniscus_col_px <= 67
    assert -2.0 <= m.extrusion_mm <= 3.0
    assert np.isfinite(m.confidence)


@pytest.mark.xfail(strict=True, reason="medial cortex not traced on 1.5 mm reformat columns "
                   "(no cortex line darker than the DESS marrow; a plain step fallback broke "
                   "the dess_anisotropic_osteophyte phantom), so the confidence stays < 0.5")
def test_dess_status_ok(dess_row) -> None:
    assert dess_row.status == "ok", (dess_row.confidence, dess_row.error)
