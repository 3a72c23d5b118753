"""Ultrasound calibration: Sequence of Ultrasound Regions (0018,6011) -> mm."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from kneemeasure.errors import MissingSpacingError
from kneemeasure.io.us_regions import choose_image_region, parse_regions

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
ROBUST = REALDATA / "dicom_robustness"


def _item(x0, y0, x1, y1, fmt=1, dtype=1, ux=3, uy=3, dx=0.01, dy=0.02) -> Dataset:
    item = Dataset()
    item.RegionLocationMinX0 = x0
    item.RegionLocationMinY0 = y0
    item.RegionLocationMaxX1 = x1
    item.RegionLocationMaxY1 = y1
    item.RegionSpatialFormat = fmt
    item.RegionDataType = dtype
    item.PhysicalUnitsXDirection = ux
    item.PhysicalUnitsYDirection = uy
    item.PhysicalDeltaX = dx
    item.PhysicalDeltaY = dy
    return item


def test_parse_regions_converts_cm_to_mm_and_keeps_x_for_columns():
    ds = Dataset()
    ds.SequenceOfUltrasoundRegions = [_item(10, 20, 109, 219, dx=0.01, dy=0.02)]
    (r,) = parse_regions(ds)
    assert (r["x0"], r["y0"], r["x1"], r["y1"]) == (10, 20, 109, 219)
    assert r["col_spacing_mm"] == pytest.approx(0.1)  # Physical Delta X: between columns
    assert r["row_spacing_mm"] == pytest.approx(0.2)  # Physical Delta Y: between rows
    assert r["units_x"] == 3 and r["index"] == 0


def test_non_length_units_give_no_spacing():
    ds = Dataset()
    ds.SequenceOfUltrasoundRegions = [_item(0, 0, 99, 99, fmt=3, dtype=3, ux=4, uy=7)]
    (r,) = parse_regions(ds)
    assert r["col_spacing_mm"] is None and r["row_spacing_mm"] is None
    with pytest.raises(MissingSpacingError, match="--spacing-mm"):
        choose_image_region(parse_regions(ds))


def test_no_sequence_is_empty_and_unusable():
    assert parse_regions(Dataset()) == []
    with pytest.raises(MissingSpacingError, match=r"\(0018,6011\)"):
        choose_image_region([])


def test_choose_largest_2d_tissue_region_never_doppler():
    ds = Dataset()
    ds.SequenceOfUltrasoundRegions = [
        _item(0, 0, 999, 999, fmt=3, dtype=3, ux=4, uy=7),  # big spectral Doppler strip
        _item(0, 0, 49, 49),  # small B-mode
        _item(50, 0, 149, 99),  # larger B-mode
    ]
    assert choose_image_region(parse_regions(ds))["index"] == 2


def test_dual_pane_tie_takes_first():
    ds = Dataset()
    ds.SequenceOfUltrasoundRegions = [_item(0, 0, 99, 99), _item(100, 0, 199, 99)]
    assert choose_image_region(parse_regions(ds))["index"] == 0


# -- real files: expected values computed here from the header (Physical Delta x 10) ----------

REAL_CASES = [
    # (relative path, expected chosen region index, approx mm/px from the data README)
    ("pydicom_data/JPGLosslessP14SV1_1s_1f_8b.dcm", 0, 0.2548),
    ("pydicom_data/OBXXXX1A.dcm", 0, None),
    ("pydicom_data/OBXXXX1A_rle_2frame.dcm", 0, None),
    ("pydicom_data/OBXXXX1A_expb_2frame.dcm", 0, None),
    ("pydicom_data/gdcm-US-ALOKA-16.dcm", 0, None),
    ("pydicom_data/gdcm-US-ALOKA-16_big.dcm", 0, None),
    ("pydicom_data/color3d_jpeg_baseline.dcm", 0, None),
    ("orthanc_tests/US_GEVital_phantom_J2K_YBRICT_regions.dcm", 0, 0.0473),
    ("pydicom_builtin/examples_ybr_color.dcm", 0, None),
]


@pytest.mark.realdata
@pytest.mark.parametrize(("rel", "index", "approx"), REAL_CASES)
def test_real_calibration_matches_header(rel, index, approx):
    if not REALDATA.exists():
        pytest.skip("../shared/realdata not present")
    ds = pydicom.dcmread(ROBUST / rel, stop_before_pixels=True)
    regions = parse_regions(ds)
    chosen = choose_image_region(regions)
    assert chosen["index"] == index
    item = ds.SequenceOfUltrasoundRegions[index]
    assert item.RegionSpatialFormat == 1 and item.PhysicalUnitsXDirection == 3
    assert chosen["col_spacing_mm"] == pytest.approx(float(item.PhysicalDeltaX) * 10, rel=1e-12)
    assert chosen["row_spacing_mm"] == pytest.approx(float(item.PhysicalDeltaY) * 10, rel=1e-12)
    assert chosen["x0"] == item.RegionLocationMinX0 and chosen["y1"] == item.RegionLocationMaxY1
    if approx is not None:
        assert chosen["col_spacing_mm"] == pytest.approx(approx, abs=5e-5)


@pytest.mark.realdata
def test_real_obxxxx_doppler_region_not_chosen_and_aloka_has_two_panes():
    if not REALDATA.exists():
        pytest.skip("../shared/realdata not present")
    ob = parse_regions(
        pydicom.dcmread(ROBUST / "pydicom_data/OBXXXX1A.dcm", stop_before_pixels=True)
    )
    assert len(ob) == 2 and ob[1]["spatial_format"] != 1 and ob[1]["col_spacing_mm"] is None
    aloka = parse_regions(
        pydicom.dcmread(ROBUST / "pydicom_data/gdcm-US-ALOKA-16.dcm", stop_before_pixels=True)
    )
    panes = [r for r in aloka if r["spatial_format"] == 1]
    assert len(panes) == 2 and panes[0]["x1"] < panes[1]["x0"]
