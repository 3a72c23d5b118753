"""discover_series and read_frame on tiny hand-made DICOM files written to tmp_path."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from kneemeasure.errors import DicomReadError, KneeMeasureError, UsageError
from kneemeasure.io import discover_series, read_frame, sniff_dicom

CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)


def _base(
    *, series_uid: str, rows: int, cols: int, n_frames: int = 1, pixels: np.ndarray | None = None
) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = "1.2.3.4"
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "MR"
    ds.SeriesDescription = "test"
    ds.Rows = rows
    ds.Columns = cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    if pixels is None:
        pixels = np.arange(n_frames * rows * cols, dtype=np.uint16).reshape(n_frames, rows, cols)
    if n_frames > 1:
        ds.NumberOfFrames = n_frames
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint16).tobytes()
    return ds


def _save(ds: Dataset, path: Path, *, meta: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if meta:
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(path, enforce_file_format=True)
    else:
        ds.save_as(path, implicit_vr=True, little_endian=True)
    return path


def write_mr(
    path: Path,
    *,
    series_uid: str = "1.2.3.4.5",
    position: Sequence[float] | None = (0.0, 0.0, 0.0),
    iop: Sequence[float] | None = CORONAL,
    spacing: Sequence[float] | None = (0.5, 0.25),
    spacing_tag: str = "PixelSpacing",
    instance: int | None = 1,
    rows: int = 4,
    cols: int = 6,
    laterality: str | None = None,
    slope: float | None = None,
    intercept: float | None = None,
    pixels: np.ndarray | None = None,
    with_pixels: bool = True,
    meta: bool = True,
) -> Path:
    """Write one single-frame MR file; pixel value at (r, c) is ``r * cols + c`` by default."""
    ds = _base(series_uid=series_uid, rows=rows, cols=cols, pixels=pixels)
    if not with_pixels:
        del ds.PixelData
    if position is not None:
        ds.ImagePositionPatient = [float(v) for v in position]
    if iop is not None:
        ds.ImageOrientationPatient = [float(v) for v in iop]
    if spacing is not None:
        setattr(ds, spacing_tag, [str(v) for v in spacing])
    if instance is not None:
        ds.InstanceNumber = instance
    if laterality is not None:
        ds.Laterality = laterality
    if slope is not None:
        ds.RescaleSlope = slope
    if intercept is not None:
        ds.RescaleIntercept = intercept
    return _save(ds, path, meta=meta)


def write_enhanced_mr(
    path: Path,
    *,
    positions: Sequence[Sequence[float]],
    iop: Sequence[float] = CORONAL,
    spacing: Sequence[float] = (0.5, 0.25),
    laterality: str | None = "R",
    rows: int = 4,
    cols: int = 6,
    series_uid: str = "1.2.3.4.9",
) -> Path:
    """Enhanced-MR-like multi-frame file with shared and per-frame functional groups.

    Frame ``k`` has every pixel equal to ``k`` (to check which frame was decoded).
    """
    n = len(positions)
    pixels = np.stack([np.full((rows, cols), k, dtype=np.uint16) for k in range(n)])
    ds = _base(series_uid=series_uid, rows=rows, cols=cols, n_frames=n, pixels=pixels)
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"  # Enhanced MR Image Storage
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [str(v) for v in spacing]
    measures.SliceThickness = "3"
    shared.PixelMeasuresSequence = DicomSequence([measures])
    orient = Dataset()
    orient.ImageOrientationPatient = [float(v) for v in iop]
    shared.PlaneOrientationSequence = DicomSequence([orient])
    if laterality is not None:
        anat = Dataset()
        anat.FrameLaterality = laterality
        shared.FrameAnatomySequence = DicomSequence([anat])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    per = []
    for pos in positions:
        item = Dataset()
        plane = Dataset()
        plane.ImagePositionPatient = [float(v) for v in pos]
        item.PlanePositionSequence = DicomSequence([plane])
        per.append(item)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per)
    return _save(ds, path)


# ---------------------------------------------------------------------------
# tests


def test_anisotropic_pixel_spacing_row_then_col(tmp_path: Path) -> None:
    write_mr(tmp_path / "a", spacing=(0.5, 0.25))
    series, errors = discover_series([tmp_path])
    assert errors == []
    (s,) = series
    assert s.row_spacing_mm == 0.5
    assert s.col_spacing_mm == 0.25
    assert s.spacing_source == "PixelSpacing"
    assert s.plane == "coronal"
    assert (s.rows, s.cols) == (4, 6)


def test_frames_ordered_by_position_not_name_or_instance(tmp_path: Path) -> None:
    # coronal normal is +y: position = IPP y. Names shuffled, InstanceNumber reversed.
    ys = [4.0, 0.0, 12.0, 8.0]
    names = ["zz", "b.dcm", "IMG0001", "a"]
    for y, name in zip(ys, names, strict=True):
        write_mr(tmp_path / name, position=(0.0, y, 0.0), instance=100 - int(y))
    (s,), _ = discover_series([tmp_path])
    assert [f.position_mm for f in s.frames] == [0.0, 4.0, 8.0, 12.0]
    assert [f.instance_number for f in s.frames] == [100, 96, 92, 88]
    assert [f.path.name for f in s.frames] == ["b.dcm", "zz", "a", "IMG0001"]


def test_duplicate_positions_keep_instance_order_and_note(tmp_path: Path) -> None:
    write_mr(tmp_path / "x", position=(0, 3, 0), instance=2)
    write_mr(tmp_path / "y", position=(0, 3, 0), instance=1)
    (s,), _ = discover_series([tmp_path])
    assert [f.instance_number for f in s.frames] == [1, 2]
    assert any("share a slice position" in n for n in s.notes)


def test_nested_folders_two_series_text_ignored(tmp_path: Path) -> None:
    write_mr(tmp_path / "study" / "s1" / "deep" / "f1", series_uid="1.1")
    write_mr(tmp_path / "study" / "s1" / "f2", series_uid="1.1", position=(0, 5, 0))
    write_mr(tmp_path / "study" / "s2" / "g1", series_uid="2.2")
    (tmp_path / "study" / "notes.txt").write_text("not dicom\n")
    (tmp_path / "study" / "s2" / "README").write_text("hello")
    series, errors = discover_series([tmp_path / "study"])
    assert errors == []
    assert sorted((s.series_instance_uid, s.n_slices) for s in series) == [("1.1", 2), ("2.2", 1)]
    assert {s.source for s in series} == {str(tmp_path / "study")}


def test_explicit_text_file_is_input_error(tmp_path: Path) -> None:
    txt = tmp_path / "notes.txt"
    txt.write_text("hello, I am not DICOM" * 20)
    series, errors = discover_series([txt])
    assert series == []
    assert len(errors) == 1
    assert "not a DICOM file" in errors[0].error and "DICM" in errors[0].error
    assert errors[0].source == str(txt)


def test_missing_path_is_input_error(tmp_path: Path) -> None:
    _, errors = discover_series([tmp_path / "nope"])
    assert len(errors) == 1 and "does not exist" in errors[0].error


def test_spacing_fallbacks_and_user_override(tmp_path: Path) -> None:
    write_mr(
        tmp_path / "imager" / "f",
        series_uid="3.1",
        spacing=(0.2, 0.4),
        spacing_tag="ImagerPixelSpacing",
    )
    write_mr(tmp_path / "none" / "f", series_uid="3.2", spacing=None)
    write_mr(tmp_path / "bad" / "f", series_uid="3.3", spacing=(0.0, 0.5))
    series, _ = discover_series([tmp_path])
    by_uid = {s.series_instance_uid: s for s in series}
    assert (by_uid["3.1"].row_spacing_mm, by_uid["3.1"].col_spacing_mm) == (0.2, 0.4)
    assert by_uid["3.1"].spacing_source == "ImagerPixelSpacing"
    for uid in ("3.2", "3.3"):
        assert by_uid[uid].row_spacing_mm is None and by_uid[uid].col_spacing_mm is None
        assert by_uid[uid].spacing_source == "none"
    series, _ = discover_series([tmp_path], spacing_mm=(0.7, 0.9))
    assert all(s.spacing_source == "user" for s in series)
    assert all((s.row_spacing_mm, s.col_spacing_mm) == (0.7, 0.9) for s in series)
    with pytest.raises(UsageError):
        discover_series([tmp_path], spacing_mm=(0.0, 1.0))


def test_laterality_and_unknown_plane(tmp_path: Path) -> None:
    write_mr(tmp_path / "r" / "f", series_uid="4.1", laterality="R")
    write_mr(tmp_path / "b" / "f", series_uid="4.2", laterality="B", iop=None, position=None)
    series, _ = discover_series([tmp_path])
    by_uid = {s.series_instance_uid: s for s in series}
    assert (by_uid["4.1"].laterality, by_uid["4.1"].laterality_source) == ("R", "header")
    assert (by_uid["4.2"].laterality, by_uid["4.2"].laterality_source) == (None, "none")
    assert by_uid["4.2"].plane == "unknown"


def test_no_pixel_data_and_not_image_are_input_errors(tmp_path: Path) -> None:
    write_mr(tmp_path / "nopix", with_pixels=False)
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR: not an image
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = "9.9"
    ds.Modality = "SR"
    _save(ds, tmp_path / "sr.dcm")
    series, errors = discover_series([tmp_path])
    assert series == []
    msgs = sorted(e.error for e in errors)
    assert len(msgs) == 2
    assert any("no Pixel Data (7FE0,0010)" in m and "nopix" in m for m in msgs)
    assert any("not an image" in m and "sr.dcm" in m for m in msgs)


def test_enhanced_multiframe_functional_groups(tmp_path: Path) -> None:
    path = write_enhanced_mr(tmp_path / "enh.dcm", positions=[(0, 9, 0), (0, 3, 0), (0, 6, 0)])
    (s,), errors = discover_series([path])
    assert errors == []
    assert s.n_slices == 3
    assert (s.row_spacing_mm, s.col_spacing_mm) == (0.5, 0.25)
    assert s.plane == "coronal"
    assert (s.laterality, s.laterality_source) == ("R", "header")
    assert s.slice_thickness_mm == 3.0
    # ordered by y: frame 1 (y=3), frame 2 (y=6), frame 0 (y=9); instance = frame + 1
    assert [f.frame for f in s.frames] == [1, 2, 0]
    assert [f.instance_number for f in s.frames] == [2, 3, 1]
    assert float(s.load_frame(0)[0, 0]) == 1.0  # decodes only the requested frame
    assert float(s.load_frame(2)[0, 0]) == 0.0


def test_progress_callback(tmp_path: Path) -> None:
    for i in range(3):
        write_mr(tmp_path / f"f{i}", position=(0, i, 0))
    (tmp_path / "x.txt").write_text("x")
    calls: list[tuple[int, int]] = []
    discover_series([tmp_path], progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_read_frame_applies_rescale(tmp_path: Path) -> None:
    path = write_mr(tmp_path / "f", slope=2.0, intercept=-10.0)
    (s,), _ = discover_series([path])
    img = read_frame(s.frames[0])
    assert img.dtype == np.float32 and img.shape == (4, 6)
    # raw value at (r, c) is r * 6 + c
    assert img[0, 0] == -10.0
    assert img[2, 3] == 2.0 * 15 - 10.0


def test_read_frame_truncated_pixel_data(tmp_path: Path) -> None:
    path = write_mr(tmp_path / "f")
    data = path.read_bytes()
    path.write_bytes(data[:-10])  # drop the last 5 pixels
    (s,), errors = discover_series([path])
    with pytest.raises(DicomReadError, match=r"expected 48 bytes .* found 38"):
        read_frame(s.frames[0])


def test_raw_dataset_without_file_meta(tmp_path: Path) -> None:
    path = write_mr(tmp_path / "raw.dcm", meta=False, slope=1.0, intercept=5.0)
    assert path.read_bytes()[128:132] != b"DICM"
    sniff = sniff_dicom(path)
    assert sniff is not None and not sniff.part10 and sniff.implicit_vr
    (s,), errors = discover_series([path])
    assert errors == []
    img = read_frame(s.frames[0])
    assert img[0, 1] == 6.0


def test_errors_are_kneemeasure_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\x7f")
    _, errors = discover_series([garbage])
    assert len(errors) == 1 and "garbage.dcm" in errors[0].error
    assert issubclass(DicomReadError, KneeMeasureError)
