"""Ultrasound measurement: phantoms with known extrusion, real files, manual points."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydicom
import pytest

from kneemeasure.detect.ultrasound import detect_us_landmarks
from kneemeasure.errors import (
    DetectionError,
    KneeMeasureError,
    MissingSpacingError,
    UnsupportedImageError,
    UsageError,
)
from kneemeasure.phantom_us import UsPhantomSpec, make_us_image, us_suite_specs, write_us_dicom
from kneemeasure.us import UsResult, measure_us_file, measure_us_points, read_us_frame

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
ROBUST = REALDATA / "dicom_robustness"


def _small(spec: UsPhantomSpec) -> UsPhantomSpec:
    """Coarser pixels keep the tests fast; anatomy unchanged."""
    spec.spacing_mm = (max(spec.spacing_mm[0], 0.12), max(spec.spacing_mm[1], 0.12))
    return spec


PHANTOMS = [_small(s) for s in us_suite_specs(100, seed=5)[3::10]]  # 10 varied phantoms


@pytest.mark.parametrize("spec", PHANTOMS, ids=lambda s: f"E{s.extrusion_mm:.1f}-{s.proximal}")
def test_phantom_dicom_measured_within_half_mm(spec, tmp_path):
    path = tmp_path / "us.dcm"
    truth = write_us_dicom(spec, path)
    res = measure_us_file(path)
    assert isinstance(res, UsResult)
    assert res.status == "ok", res.notes
    assert res.spacing_source == "US regions"
    assert res.row_spacing_mm == pytest.approx(spec.spacing_mm[0])
    assert res.col_spacing_mm == pytest.approx(spec.spacing_mm[1])
    assert abs(res.extrusion_mm - truth["extrusion_mm"]) <= 0.5
    assert res.landmarks.tibia_side == truth["tibia_side"]
    assert res.landmarks.proximal_source == "anatomy"
    # landmarks are in full-image pixels (region offset added back)
    assert abs(res.landmarks.meniscus_rc[1] - truth["meniscus_col_px"]) * spec.spacing_mm[1] < 3.0
    assert res.region_offset_rc == (truth["region_y0"], truth["region_x0"])
    assert res.image.shape == (spec.rows, spec.cols)
    if spec.n_frames > 1:
        assert res.frame == truth["truth_frame"] and res.frame_source == "sharpest"


def test_tilt_and_extrusion_sign_on_array():
    spec = UsPhantomSpec(extrusion_mm=4.0, tilt_deg=6.0, spacing_mm=(0.12, 0.15), seed=3)
    image, truth = make_us_image(spec)
    lm = detect_us_landmarks(image, row_spacing_mm=0.12, col_spacing_mm=0.15)
    # reference direction is the tilted tibial line (physical units)
    angle = math.degrees(math.atan2(abs(lm.reference_dir_rc[0]), abs(lm.reference_dir_rc[1])))
    assert angle == pytest.approx(6.0, abs=1.0)
    assert lm.meniscus_rc[0] < lm.tibial_margin_rc[0]  # superficial = smaller row


def test_proximal_override_and_femorotibial(tmp_path):
    spec = _small(UsPhantomSpec(extrusion_mm=2.5, proximal="image-right", seed=11, chrome=False))
    path = tmp_path / "us.dcm"
    truth = write_us_dicom(spec, path)
    res = measure_us_file(path, proximal="image-right", reference="femorotibial")
    assert res.landmarks.proximal_source == "user"
    assert res.landmarks.tibia_side == "image-left"
    assert res.reference == "femorotibial"
    assert abs(res.extrusion_mm - truth["femorotibial_extrusion_mm"]) <= 0.6


def test_user_frame_and_bad_frame(tmp_path):
    spec = _small(UsPhantomSpec(extrusion_mm=3.5, n_frames=3, truth_frame=0, seed=2))
    path = tmp_path / "cine.dcm"
    write_us_dicom(spec, path)
    assert measure_us_file(path).frame == 0
    assert measure_us_file(path, frame=2).frame == 2
    with pytest.raises(UsageError, match="out of range"):
        measure_us_file(path, frame=3)


def test_noise_image_is_a_detection_error():
    rng = np.random.default_rng(0)
    with pytest.raises(DetectionError):
        detect_us_landmarks(rng.rayleigh(size=(300, 400)), row_spacing_mm=0.1, col_spacing_mm=0.1)
    with pytest.raises(DetectionError):
        detect_us_landmarks(np.zeros((300, 400)), row_spacing_mm=0.1, col_spacing_mm=0.1)


def test_mr_file_rejected(tmp_path):
    spec = _small(UsPhantomSpec(seed=1))
    path = tmp_path / "us.dcm"
    write_us_dicom(spec, path)
    ds = pydicom.dcmread(path)
    ds.Modality = "MR"
    del ds.SequenceOfUltrasoundRegions
    ds.save_as(tmp_path / "mr.dcm")
    with pytest.raises(UnsupportedImageError, match="Modality"):
        measure_us_file(tmp_path / "mr.dcm")


def test_missing_calibration_errors_unless_spacing_given(tmp_path):
    spec = _small(UsPhantomSpec(extrusion_mm=3.0, seed=4, chrome=False))
    path = tmp_path / "us.dcm"
    truth = write_us_dicom(spec, path)
    ds = pydicom.dcmread(path)
    del ds.SequenceOfUltrasoundRegions
    ds.save_as(tmp_path / "nocal.dcm")
    with pytest.raises(MissingSpacingError, match="nocal.dcm.*--spacing-mm"):
        measure_us_file(tmp_path / "nocal.dcm")
    res = measure_us_file(tmp_path / "nocal.dcm", spacing_mm=spec.spacing_mm)
    assert res.spacing_source == "user"
    assert abs(res.extrusion_mm - truth["extrusion_mm"]) <= 0.5


# -- real files ---------------------------------------------------------------------------


def _real_us_files() -> list[Path]:
    if not ROBUST.exists():
        return []
    out = []
    for f in sorted(ROBUST.rglob("*.dcm")):
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except pydicom.errors.InvalidDicomError:
            continue
        if ds.get("Modality") == "US":
            out.append(f)
    return out


@pytest.mark.realdata
def test_every_real_us_file_ends_cleanly():
    files = _real_us_files()
    if not files:
        pytest.skip("../shared/realdata not present")
    assert len(files) >= 15
    outcomes = {}
    for f in files:
        spacing = None
        for _ in range(2):  # without calibration: again with --spacing-mm
            try:
                res = measure_us_file(f, spacing_mm=spacing)
                assert res.status in ("ok", "review")
                outcomes.setdefault(f.name, []).append("result")
                break
            except MissingSpacingError as exc:
                assert spacing is None and str(f) in str(exc) and "--spacing-mm" in str(exc)
                outcomes.setdefault(f.name, []).append("MissingSpacingError")
                spacing = (0.2, 0.2)
            except KneeMeasureError as exc:
                assert str(f) in str(exc) and "\n" not in str(exc)
                outcomes.setdefault(f.name, []).append(type(exc).__name__)
                break
    # files without (0018,6011) are refused for calibration, not measured in pixels
    assert outcomes["US1_UNCR.dcm"][0] == "MissingSpacingError"
    assert outcomes["JPGLosslessP14SV1_1s_1f_8b.dcm"][0] != "MissingSpacingError"


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("rel", "frame", "shape"),
    [
        ("pydicom_data/OBXXXX1A_rle_2frame.dcm", 1, (600, 800)),  # palette colour, RLE
        ("pydicom_data/gdcm-US-ALOKA-16_big.dcm", 0, (480, 640)),  # palette, 16-bit, BE
        ("pydicom_data/color3d_jpeg_baseline.dcm", 60, (480, 640)),  # YBR_FULL_422 cine
        ("orthanc_tests/US_GEVital_phantom_J2K_YBRICT_regions.dcm", 0, (965, 1660)),
        ("pydicom_data/JPGLosslessP14SV1_1s_1f_8b.dcm", 0, (768, 1024)),
    ],
)
def test_read_us_frame_gives_grayscale(rel, frame, shape):
    if not ROBUST.exists():
        pytest.skip("../shared/realdata not present")
    lum = read_us_frame(ROBUST / rel, frame)
    assert lum.shape == shape and lum.dtype == np.float32
    assert float(lum.std()) > 1.0  # real content, not a constant


@pytest.mark.realdata
def test_manual_points_against_hand_computation():
    path = ROBUST / "pydicom_data/JPGLosslessP14SV1_1s_1f_8b.dcm"
    if not path.exists():
        pytest.skip("../shared/realdata not present")
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    s = float(ds.SequenceOfUltrasoundRegions[0].PhysicalDeltaX) * 10  # mm/px, square
    a, b, m = (400.0, 100.0), (410.0, 900.0), (350.0, 500.0)
    # line direction (10, 800) px; meniscus offset from a (-50, 400) px; cross product / length
    expected = (10 * 400 - 800 * -50) * s / math.sqrt(10**2 + 800**2)
    got = measure_us_points(path, tibial_a_rc=a, tibial_b_rc=b, meniscus_rc=m)
    assert got == pytest.approx(expected, rel=1e-9)
    assert got > 0  # above the line = toward the skin
    # non-square user spacing: rows 0.2 mm, cols 0.3 mm, horizontal line, 10 rows up -> 2 mm
    got2 = measure_us_points(
        path,
        tibial_a_rc=(400, 100),
        tibial_b_rc=(400, 900),
        meniscus_rc=(390, 500),
        spacing_mm=(0.2, 0.3),
    )
    assert got2 == pytest.approx(2.0)


SAMPLES = Path(__file__).resolve().parents[1] / "sample_dicoms"


def test_committed_samples_match_truth_csv():
    import csv

    with open(SAMPLES / "us_truth.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) >= 2
    kinds = set()
    for row in rows:
        path = SAMPLES / row["file"]
        assert path.stat().st_size < 300_000
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert ds.Modality == "US" and str(ds.PatientName) == "PHANTOM^US"
        kinds.add((ds.PhotometricInterpretation, int(ds.get("NumberOfFrames", 1))))
        res = measure_us_file(path)
        assert res.status == "ok"
        assert abs(res.extrusion_mm - float(row["extrusion_mm"])) <= 0.3
        assert res.frame == int(row["truth_frame"])
        assert res.landmarks.tibia_side == row["tibia_side"]
    assert ("RGB", 1) in kinds and any(n > 1 for _, n in kinds)
