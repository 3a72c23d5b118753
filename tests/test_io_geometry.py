"""Geometry helpers: spacing, slice normal, plane and the medial image side."""

from __future__ import annotations

import numpy as np
import pytest

from kneemeasure.errors import LateralityError
from kneemeasure.io.geometry import (
    classify_plane,
    laterality_from_fibula,
    medial_col_sign,
    parse_iop,
    parse_pixel_spacing,
    side_col_sign,
    slice_normal,
)

COR = (1, 0, 0, 0, 0, -1)
COR_FLIPPED = (-1, 0, 0, 0, 0, -1)
SAG = (0, 1, 0, 0, 0, -1)
AX = (1, 0, 0, 0, 1, 0)


def test_parse_pixel_spacing_row_then_col() -> None:
    assert parse_pixel_spacing(["0.5", "0.25"]) == (0.5, 0.25)
    assert parse_pixel_spacing("0.5\\0.25") == (0.5, 0.25)


@pytest.mark.parametrize("bad", [[0, 1], [1, -1], [float("nan"), 1], [1], "abc\\1", None])
def test_parse_pixel_spacing_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_pixel_spacing(bad)


def test_slice_normal_and_plane() -> None:
    np.testing.assert_allclose(slice_normal(COR), [0, 1, 0])
    np.testing.assert_allclose(slice_normal(SAG), [-1, 0, 0])
    np.testing.assert_allclose(slice_normal(AX), [0, 0, 1])
    assert classify_plane(COR) == "coronal"
    assert classify_plane(SAG) == "sagittal"
    assert classify_plane(AX) == "axial"
    s = np.sqrt(0.5)
    assert classify_plane((1, 0, 0, 0, s, -s)) == "oblique"
    assert classify_plane(None) == "unknown"
    # the real OsiriX coronal IOP (slightly oblique) is still coronal
    assert classify_plane((0.995, 0.101, 0, 0, 0, -1)) == "coronal"


def test_parse_iop() -> None:
    assert parse_iop(["2", "0", "0", "0", "0", "-1"]) == (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
    assert parse_iop([1, 0, 0, 1, 0, 0]) is None  # parallel
    assert parse_iop([1, 0, 0]) is None
    assert parse_iop(None) is None


@pytest.mark.parametrize(
    ("lat", "iop", "expected"),
    [("R", COR, 1), ("L", COR, -1), ("R", COR_FLIPPED, -1), ("L", COR_FLIPPED, 1)],
)
def test_medial_col_sign(lat: str, iop: tuple, expected: int) -> None:
    assert medial_col_sign(lat, iop) == expected
    assert side_col_sign(lat, iop, "medial") == expected
    assert side_col_sign(lat, iop, "lateral") == -expected


def test_medial_col_sign_rejects_sagittal_and_bad_laterality() -> None:
    with pytest.raises(LateralityError, match="laterality"):
        medial_col_sign("R", SAG)
    with pytest.raises(LateralityError):
        medial_col_sign("B", COR)


def test_laterality_from_fibula() -> None:
    # OsiriX left knee: columns increase toward +x, fibula at image right (+1).
    assert laterality_from_fibula(1, (0.995, 0.101, 0, 0, 0, -1)) == "L"
    assert laterality_from_fibula(-1, COR) == "R"
    assert laterality_from_fibula(1, COR_FLIPPED) == "R"
    with pytest.raises(LateralityError):
        laterality_from_fibula(1, SAG)
