"""Coronal reformat of a thin-slice sagittal series (hand-made and real DESS)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_io_discover import write_mr

from kneemeasure.errors import WrongPlaneError
from kneemeasure.io import discover_series
from kneemeasure.io.reformat import CORONAL_IOP, is_reformattable, reformat_to_coronal

SAG = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)


def _write_sagittal(folder: Path, n: int = 22, gap: float = 1.5) -> None:
    # slice s sits at x = 10 - s*gap (file order opposite to x); pixel = s*100 + r*10 + c
    for s in range(n):
        px = np.array([[s * 100 + r * 10 + c for c in range(5)] for r in range(4)], np.uint16)
        write_mr(
            folder / f"s{s:02d}",
            iop=SAG,
            position=(10.0 - s * gap, -20.0, 30.0),
            spacing=(0.5, 0.25),
            rows=4,
            cols=5,
            pixels=px,
            instance=s + 1,
        )


def test_reformat_synthetic_orientation(tmp_path: Path) -> None:
    _write_sagittal(tmp_path)
    (sag,), _ = discover_series([tmp_path])
    assert sag.plane == "sagittal" and is_reformattable(sag)
    cor = reformat_to_coronal(sag)
    assert (cor.rows, cor.cols, cor.n_slices) == (4, 22, 5)
    assert (cor.row_spacing_mm, cor.col_spacing_mm) == (0.5, 1.5)
    assert cor.spacing_source == "reformat" and cor.plane == "coronal"
    assert cor.iop == CORONAL_IOP
    # frames along y ascending: sagittal column c at y = -20 + 0.25 c
    np.testing.assert_allclose([f.position_mm for f in cor.frames], -20 + 0.25 * np.arange(5))
    assert [f.instance_number for f in cor.frames] == [1, 2, 3, 4, 5]
    assert all(f.sop_instance_uid == "" and f.frame is None for f in cor.frames)
    plane = cor.load_frame(2)
    assert plane.shape == (4, 22)
    # columns ordered by x ascending = slice index descending; rows keep -z (top = superior)
    expected = np.array([[s * 100 + r * 10 + 2 for s in range(21, -1, -1)] for r in range(4)])
    np.testing.assert_array_equal(plane, expected)
    assert "coronal reformat" in cor.source_description


def test_reformat_rejects_thick_or_few_slices(tmp_path: Path) -> None:
    _write_sagittal(tmp_path / "thick", gap=3.0)
    _write_sagittal(tmp_path / "few", n=5)
    for sub in ("thick", "few"):
        (sag,), _ = discover_series([tmp_path / sub])
        assert not is_reformattable(sag)
        with pytest.raises(WrongPlaneError, match="cannot reformat"):
            reformat_to_coronal(sag)


def test_reformat_real_dess(realdata: Path) -> None:
    (sag,), errors = discover_series([realdata / "pykneer_dess" / "DESS_echo1_sag"])
    assert errors == [] and sag.n_slices == 80 and is_reformattable(sag)
    cor = reformat_to_coronal(sag)
    assert (cor.rows, cor.cols, cor.n_slices) == (512, 80, 512)
    assert cor.row_spacing_mm == pytest.approx(0.3125)
    assert cor.col_spacing_mm == pytest.approx(1.5, abs=1e-3)
    mid = cor.load_frame(256)
    assert mid.shape == (512, 80) and float(mid.max()) > 0 and float(mid.std()) > 0
    cor.release()
