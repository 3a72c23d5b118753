"""discover_series / read_frame on the real files in ../shared/realdata (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kneemeasure.errors import DecodeError, DicomReadError, KneeMeasureError
from kneemeasure.io import discover_series, read_frame


def test_osirix_t1_coronal(realdata: Path) -> None:
    series, errors = discover_series([realdata / "osirix_knee" / "T1_coronal"])
    assert errors == []
    (s,) = series
    assert s.plane == "coronal" and s.n_slices == 24
    assert (s.row_spacing_mm, s.col_spacing_mm) == pytest.approx((0.3125, 0.3125))
    assert s.laterality is None and s.laterality_source == "none"
    pos = [f.position_mm for f in s.frames]
    assert pos == sorted(pos) and pos[0] < pos[-1]
    # InstanceNumber 1 is the most posterior slice, 24 the most anterior: the ends
    assert {s.frames[0].instance_number, s.frames[-1].instance_number} == {1, 24}
    img = read_frame(s.frames[12])  # JPEG 2000 via pylibjpeg-openjpeg
    assert img.shape == (512, 512) and img.dtype == np.float32 and float(img.std()) > 0


def test_emri_small_multiframe(realdata: Path) -> None:
    path = realdata / "dicom_robustness" / "pydicom_data" / "emri_small.dcm"
    (s,), errors = discover_series([path])
    assert errors == [] and s.n_slices == 10
    assert [f.instance_number for f in s.frames] == list(range(1, 11))
    ref = next(f for f in s.frames if f.frame == 3)
    assert read_frame(ref).shape == (64, 64)


def test_robustness_walk(realdata: Path) -> None:
    root = realdata / "dicom_robustness"
    outcome: dict[str, str] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            series, errors = discover_series([path])
            for s in series:
                img = read_frame(s.frames[len(s.frames) // 2])
                assert img.ndim == 2 and img.dtype == np.float32
            outcome[path.name] = "ok" if series else "input-error"
            if errors:
                assert not series
        except KneeMeasureError as exc:
            outcome[path.name] = type(exc).__name__
    assert outcome["MR_truncated.dcm"] == DicomReadError.__name__
    assert outcome["no_meta.dcm"] == "ok"
    assert outcome["MR_ImplicitVRLE_1.2.840.10008.1.2.dcm"] == "ok"
    assert outcome["MR_JPEGExtended12bit_1.2.840.10008.1.2.4.51.dcm"] in (
        "ok",
        DecodeError.__name__,
    )
    assert outcome["README_pydicom_test_files.txt"] == "input-error"
    assert outcome["MR_small_jp2klossless.dcm"] == "ok"
    assert outcome["color3d_jpeg_baseline.dcm"] == "ok"


def test_study_folder_discovery(realdata: Path) -> None:
    series, errors = discover_series([realdata / "osirix_knee"])
    assert errors == []
    planes = sorted((s.plane, s.n_slices) for s in series)
    # T1 coronal, T2 sagittal, and the 3-plane localizer split into 3 parts of 9
    assert planes == [
        ("axial", 9),
        ("coronal", 9),
        ("coronal", 24),
        ("sagittal", 9),
        ("sagittal", 26),
    ]
