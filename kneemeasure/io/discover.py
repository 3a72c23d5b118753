"""Find DICOM series under user paths, reading headers only.

:func:`discover_series` walks files and folders (any nesting, any file names),
reads each file's header without pixel data, groups frames by Series Instance
UID (0020,000E) and orders them along the slice normal. Only small per-frame
records are kept, so folders with thousands of files stream through.

:func:`open_dicom` is the one place that opens a DICOM file: it handles Part 10
files and raw datasets without file meta (PS3.10 7.1), sets the transfer syntax
of the latter from what parses, and reports where the Pixel Data element lies.
"""

from __future__ import annotations

import math
import os
import struct
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from kneemeasure.errors import (
    DicomReadError,
    KneeMeasureError,
    NoPixelDataError,
    NotDicomError,
    UnsupportedImageError,
    UsageError,
)
from kneemeasure.io.geometry import classify_plane, parse_iop, parse_pixel_spacing, slice_normal
from kneemeasure.models import FrameRef, InputError, Series

try:
    from kneemeasure.io.us_regions import parse_regions
except ImportError:  # the ultrasound helper module is optional
    parse_regions = None

__all__ = ["discover_series", "open_dicom", "PixelInfo", "sniff_dicom"]

#: Exceptions pydicom raises on malformed input (parsing only).
PARSE_ERRORS: tuple[type[BaseException], ...] = (
    InvalidDicomError,
    EOFError,
    OSError,
    ValueError,
    struct.error,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    NotImplementedError,
    OverflowError,
    UnicodeDecodeError,
)

_VALID_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR "
    b"US UT UV".split()
)
_PIXEL_TAGS = {(0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)}
_DICOMDIR_SOP = "1.2.840.10008.1.3.10"
#: How far into a file without preamble a raw dataset may start (stray pad bytes).
_MAX_RAW_OFFSET = 4


@dataclass(frozen=True)
class Sniff:
    """Result of :func:`sniff_dicom`: how the dataset is encoded in the file."""

    part10: bool
    offset: int
    little_endian: bool = True
    implicit_vr: bool = False


@dataclass
class PixelInfo:
    """Where the Pixel Data element lies in the file (from the header read).

    Attributes
    ----------
    present : bool
        A (7FE0,0010/0008/0009) element follows the header.
    keyword : str
        ``"PixelData"``, ``"FloatPixelData"`` or ``"DoubleFloatPixelData"``.
    value_length : int or None
        Declared length in bytes, ``None`` for undefined length (encapsulated).
    available_bytes : int
        Bytes actually present in the file after the element header.
    transfer_syntax : UID
        Transfer Syntax UID (0002,0010), set from the encoding when the file
        has no file meta.
    raw_offset : int
        Offset of the dataset in the file (0 except for raw datasets with
        leading pad bytes).
    has_file_meta : bool
        The file has a Part 10 preamble and file meta group.
    """

    present: bool
    keyword: str = ""
    value_length: int | None = None
    available_bytes: int = 0
    transfer_syntax: UID = field(default_factory=lambda: ImplicitVRLittleEndian)
    raw_offset: int = 0
    has_file_meta: bool = True


class _OffsetReader:
    """Read-only file wrapper that hides the first ``offset`` bytes (for raw datasets)."""

    def __init__(self, fh: BinaryIO, offset: int) -> None:
        self._fh = fh
        self._offset = offset
        fh.seek(offset)

    def read(self, size: int = -1) -> bytes:
        return self._fh.read(size)

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 0:
            return self._fh.seek(pos + self._offset) - self._offset
        return self._fh.seek(pos, whence) - self._offset

    def tell(self) -> int:
        return self._fh.tell() - self._offset

    @property
    def name(self) -> str:
        return str(getattr(self._fh, "name", ""))


def _raw_start(head: bytes, off: int) -> Sniff | None:
    """A raw dataset element of group 0002/0008 starting at ``off``, or ``None``."""
    if len(head) < off + 8:
        return None
    b = head[off:]
    group_le, elem_le = struct.unpack("<HH", b[:4])
    group_be, elem_be = struct.unpack(">HH", b[:4])
    vr = b[4:6]
    if group_le in (0x0002, 0x0008) and elem_le < 0x1000:
        if vr in _VALID_VRS:
            return Sniff(part10=False, offset=off, little_endian=True, implicit_vr=False)
        (length,) = struct.unpack("<I", b[4:8])
        if length < 0x10000 or length == 0xFFFFFFFF:
            return Sniff(part10=False, offset=off, little_endian=True, implicit_vr=True)
    if group_be == 0x0008 and elem_be < 0x1000 and vr in _VALID_VRS:
        return Sniff(part10=False, offset=off, little_endian=False, implicit_vr=False)
    return None


def sniff_dicom(path: str | Path) -> Sniff | None:
    """Cheap check whether a file holds DICOM, from its first 132 bytes.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    Sniff or None
        ``part10=True`` when 'DICM' sits at byte 128 (PS3.10 7.1); otherwise a
        raw dataset when the first bytes (or bytes 1-3, tolerating stray pad
        bytes) look like a group 0002/0008 element; ``None`` for anything else.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(140)
    except OSError:
        return None
    if head[128:132] == b"DICM":
        return Sniff(part10=True, offset=0)
    for off in range(_MAX_RAW_OFFSET):
        found = _raw_start(head, off)
        if found is not None:
            return found
    return None


def _transfer_syntax_for(ds: Dataset, sniff: Sniff) -> UID:
    implicit, little = ds.original_encoding
    if implicit is None:
        implicit, little = sniff.implicit_vr, sniff.little_endian
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def _peek_pixel_element(fp: object, ds: Dataset, end: int) -> PixelInfo:
    """Read the element header at the current position (where the header read stopped)."""
    start = fp.tell()  # type: ignore[attr-defined]
    raw = fp.read(12)  # type: ignore[attr-defined]
    implicit, little = ds.original_encoding
    implicit = bool(implicit) if implicit is not None else False
    little = True if little is None else bool(little)
    if len(raw) < 8:
        return PixelInfo(present=False)
    fmt = "<HH" if little else ">HH"
    tag = struct.unpack(fmt, raw[:4])
    if tag not in _PIXEL_TAGS:
        return PixelInfo(present=False)
    keyword = {0x0010: "PixelData", 0x0008: "FloatPixelData", 0x0009: "DoubleFloatPixelData"}[
        tag[1]
    ]
    if implicit:
        (length,) = struct.unpack("<I" if little else ">I", raw[4:8])
        header_len = 8
    else:
        if len(raw) < 12:
            return PixelInfo(present=False)
        (length,) = struct.unpack("<I" if little else ">I", raw[8:12])
        header_len = 12
    available = max(0, end - (start + header_len))
    return PixelInfo(
        present=True,
        keyword=keyword,
        value_length=None if length == 0xFFFFFFFF else int(length),
        available_bytes=int(available),
    )


def open_dicom(
    path: str | Path, *, stop_before_pixels: bool = True, sniff: Sniff | None = None
) -> tuple[Dataset, PixelInfo]:
    """Read a DICOM file (Part 10 or raw dataset) and locate its Pixel Data.

    Parameters
    ----------
    path : str or Path
    stop_before_pixels : bool, keyword-only
        Read only the header (default). With ``False`` the whole dataset is read.
    sniff : Sniff, optional
        Result of :func:`sniff_dicom` when already known.

    Returns
    -------
    ds : pydicom Dataset
        ``ds.file_meta.TransferSyntaxUID`` is always set (guessed from the
        encoding for files without file meta).
    info : PixelInfo
        Pixel Data presence and lengths (only filled when ``stop_before_pixels``).

    Raises
    ------
    NotDicomError
        No 'DICM' preamble and the start is not a DICOM element.
    DicomReadError
        The header cannot be parsed (truncated or corrupt).
    """
    path = Path(path)
    if sniff is None:
        sniff = sniff_dicom(path)
    if sniff is None:
        raise NotDicomError(
            "not a DICOM file (no 'DICM' preamble and not parseable as a raw dataset); "
            "give DICOM files or folders holding them",
            source=str(path),
        )
    try:
        end = os.path.getsize(path)
        with open(path, "rb") as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fp: object = fh if sniff.offset == 0 else _OffsetReader(fh, sniff.offset)
            ds = pydicom.dcmread(fp, force=True, stop_before_pixels=stop_before_pixels)
            info = (
                _peek_pixel_element(fp, ds, end - sniff.offset)
                if stop_before_pixels
                else PixelInfo(present="PixelData" in ds or "FloatPixelData" in ds)
            )
    except PARSE_ERRORS as exc:
        raise DicomReadError(
            f"DICOM header cannot be parsed ({type(exc).__name__}: {str(exc)[:120]}); "
            "the file is truncated or corrupt — re-export it from the PACS",
            source=str(path),
        ) from exc
    if len(ds) == 0:
        raise DicomReadError(
            "DICOM file holds no data elements (truncated or corrupt); re-export it",
            source=str(path),
        )
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = FileMetaDataset()
        ds.file_meta = meta
    has_meta = "TransferSyntaxUID" in meta
    if not has_meta:
        meta.TransferSyntaxUID = _transfer_syntax_for(ds, sniff)
    info.transfer_syntax = UID(str(meta.TransferSyntaxUID))
    info.raw_offset = sniff.offset
    info.has_file_meta = sniff.part10 and has_meta
    return ds, info


# ---------------------------------------------------------------------------
# header helpers (no patient data is touched)


def _get(ds: Dataset, keyword: str, default: object = None) -> object:
    try:
        return ds.get(keyword, default)
    except PARSE_ERRORS:
        return default


def _first_item(ds: Dataset | None, keyword: str) -> Dataset | None:
    if ds is None:
        return None
    seq = _get(ds, keyword)
    if seq:
        try:
            return seq[0]  # type: ignore[index]
        except (IndexError, TypeError):
            return None
    return None


def _functional(ds: Dataset, frame: int, keyword: str) -> Dataset | None:
    """Item of a functional group macro for one frame (per-frame wins over shared)."""
    per = _get(ds, "PerFrameFunctionalGroupsSequence")
    if per is not None and frame < len(per):  # type: ignore[arg-type]
        item = _first_item(per[frame], keyword)  # type: ignore[index]
        if item is not None:
            return item
    return _first_item(_first_item(ds, "SharedFunctionalGroupsSequence"), keyword)


def _float_or_none(value: object) -> float | None:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _int_or_none(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _lat(value: object) -> str | None:
    text = str(value or "").strip().upper()
    return text if text in ("L", "R") else None


def _vec3(value: object) -> tuple[float, float, float] | None:
    try:
        vals = [float(v) for v in value]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    if len(vals) != 3 or not all(math.isfinite(v) for v in vals):
        return None
    return (vals[0], vals[1], vals[2])


@dataclass
class _FrameRec:
    """Per-frame header record kept during discovery (small, no pixels)."""

    path: Path
    source: str
    frame: int | None
    sop_uid: str
    instance_number: int | None
    series_uid: str
    study_uid: str
    modality: str
    rows: int
    cols: int
    samples: int
    photometric: str
    iop: tuple[float, float, float, float, float, float] | None
    ipp: tuple[float, float, float] | None
    spacing: tuple[float, float] | None
    spacing_source: str
    laterality: str | None
    description: str
    thickness: float | None
    us_regions: list[dict]
    notes: list[str]


def _spacing_from(
    ds: Dataset, frame: int | None, notes: list[str]
) -> tuple[tuple[float, float] | None, str]:
    candidates: list[tuple[object, str, str]] = [
        (_get(ds, "PixelSpacing"), "PixelSpacing", "PixelSpacing (0028,0030)")
    ]
    measures = _functional(ds, frame or 0, "PixelMeasuresSequence")
    if measures is not None:
        candidates.append(
            (_get(measures, "PixelSpacing"), "PixelSpacing", "PixelMeasuresSequence PixelSpacing")
        )
    candidates.append(
        (_get(ds, "ImagerPixelSpacing"), "ImagerPixelSpacing", "ImagerPixelSpacing (0018,1164)")
    )
    for value, source, tag in candidates:
        if value is None or value == "":
            continue
        try:
            return parse_pixel_spacing(value, tag=tag), source
        except ValueError as exc:
            notes.append(f"{exc}; ignored")
    return None, "none"


def _frame_records(ds: Dataset, path: Path, source: str) -> list[_FrameRec]:
    rows = _int_or_none(_get(ds, "Rows"))
    cols = _int_or_none(_get(ds, "Columns"))
    if not rows or not cols:
        raise UnsupportedImageError(
            "DICOM file is not an image (no Rows/Columns (0028,0010/0011)); give image series only",
            source=str(path),
        )
    n_frames = _int_or_none(_get(ds, "NumberOfFrames")) or 1
    enhanced = "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds
    multi = enhanced or n_frames > 1 or "NumberOfFrames" in ds
    base_lat = _lat(_get(ds, "Laterality")) or _lat(_get(ds, "ImageLaterality"))
    us_regions: list[dict] = []
    notes: list[str] = []
    if parse_regions is not None and "SequenceOfUltrasoundRegions" in ds:
        try:
            us_regions = list(parse_regions(ds))
        except KneeMeasureError as exc:
            notes.append(f"ultrasound regions unusable: {exc.message}")
    instance = _int_or_none(_get(ds, "InstanceNumber"))
    thickness = _float_or_none(_get(ds, "SliceThickness"))
    common = {
        "path": path,
        "source": source,
        "sop_uid": str(_get(ds, "SOPInstanceUID", "") or ""),
        "series_uid": str(_get(ds, "SeriesInstanceUID", "") or ""),
        "study_uid": str(_get(ds, "StudyInstanceUID", "") or ""),
        "modality": str(_get(ds, "Modality", "") or ""),
        "rows": rows,
        "cols": cols,
        "samples": _int_or_none(_get(ds, "SamplesPerPixel")) or 1,
        "photometric": str(_get(ds, "PhotometricInterpretation", "") or "MONOCHROME2"),
        "description": str(_get(ds, "SeriesDescription", "") or ""),
        "us_regions": us_regions,
    }
    out: list[_FrameRec] = []
    for i in range(n_frames if multi else 1):
        frame = i if multi else None
        frame_notes = list(notes)
        spacing, sp_source = _spacing_from(ds, frame, frame_notes)
        iop_val = _get(ds, "ImageOrientationPatient")
        ipp_val = _get(ds, "ImagePositionPatient")
        lat = base_lat
        thick = thickness
        if enhanced:
            orient = _functional(ds, i, "PlaneOrientationSequence")
            pos = _functional(ds, i, "PlanePositionSequence")
            anat = _functional(ds, i, "FrameAnatomySequence")
            measures = _functional(ds, i, "PixelMeasuresSequence")
            if orient is not None and _get(orient, "ImageOrientationPatient") is not None:
                iop_val = _get(orient, "ImageOrientationPatient")
            if pos is not None and _get(pos, "ImagePositionPatient") is not None:
                ipp_val = _get(pos, "ImagePositionPatient")
            if anat is not None:
                lat = _lat(_get(anat, "FrameLaterality")) or lat
            if measures is not None and _get(measures, "SliceThickness") is not None:
                thick = _float_or_none(_get(measures, "SliceThickness"))
        if lat is None:
            lat = _lat(_get(ds, "FrameLaterality"))
        out.append(
            _FrameRec(
                frame=frame,
                instance_number=(i + 1) if multi else instance,
                iop=parse_iop(iop_val),
                ipp=_vec3(ipp_val),
                spacing=spacing,
                spacing_source=sp_source,
                laterality=lat,
                thickness=thick,
                notes=frame_notes,
                **common,  # type: ignore[arg-type]
            )
        )
    return out


def _iter_files(paths: Sequence[str | Path]) -> Iterator[tuple[Path, str, bool] | InputError]:
    seen: set[str] = set()
    for p in paths:
        path = Path(p)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    f = Path(root) / name
                    key = os.path.realpath(f)
                    if key not in seen:
                        seen.add(key)
                        yield f, str(p), False
        elif path.is_file():
            key = os.path.realpath(path)
            if key not in seen:
                seen.add(key)
                yield path, str(p), True
        else:
            yield InputError(source=str(p), error=f"{p}: path does not exist; check the spelling")


def _input_error(path: Path, exc: KneeMeasureError, ds: Dataset | None = None) -> InputError:
    err = InputError(source=str(path), error=str(exc))
    if ds is not None:
        err.series_instance_uid = str(_get(ds, "SeriesInstanceUID", "") or "")
        err.study_instance_uid = str(_get(ds, "StudyInstanceUID", "") or "")
        err.sop_instance_uid = str(_get(ds, "SOPInstanceUID", "") or "")
        err.modality = str(_get(ds, "Modality", "") or "")
    return err


def _read_file(path: Path, source: str, explicit: bool) -> list[_FrameRec] | InputError | None:
    sniff = sniff_dicom(path)
    if sniff is None:
        if not explicit:
            return None
        return InputError(
            source=str(path),
            error=str(
                NotDicomError(
                    "not a DICOM file (no 'DICM' preamble and not parseable as a raw dataset); "
                    "give DICOM files or folders holding them",
                    source=str(path),
                )
            ),
        )
    ds: Dataset | None = None
    try:
        ds, info = open_dicom(path, sniff=sniff)
        if (
            str(_get(ds, "SOPClassUID", "") or "") == _DICOMDIR_SOP
            or "DirectoryRecordSequence" in ds
        ):
            if not explicit:
                return None
            raise UnsupportedImageError(
                "file is a DICOMDIR index, not an image; give the folder holding the images",
                source=str(path),
            )
        if not info.present:
            if "Rows" not in ds:
                raise UnsupportedImageError(
                    "DICOM file is not an image (no Rows/Columns (0028,0010/0011) and no "
                    "Pixel Data); give image series only",
                    source=str(path),
                )
            raise NoPixelDataError(
                "DICOM file has no Pixel Data (7FE0,0010) (header-only or truncated file); "
                "re-export the series with images",
                source=str(path),
            )
        return _frame_records(ds, path, source)
    except KneeMeasureError as exc:
        return _input_error(path, exc, ds)


def _group_key(rec: _FrameRec) -> tuple:
    iop = tuple(round(v, 2) for v in rec.iop) if rec.iop is not None else None
    series = rec.series_uid or f"file:{rec.path}"
    return (series, rec.rows, rec.cols, rec.samples, iop)


def _build_series(recs: list[_FrameRec], spacing_mm: tuple[float, float] | None) -> Series:
    first = recs[0]
    notes: list[str] = []
    for r in recs:
        for n in r.notes:
            if n not in notes:
                notes.append(n)
    # Positions along the slice normal (mm); NaN where IOP/IPP are missing.
    positions: list[float] = []
    for r in recs:
        if r.iop is not None and r.ipp is not None:
            positions.append(float(np.dot(np.asarray(r.ipp), slice_normal(r.iop))))
        else:
            positions.append(float("nan"))
    # Stable base order: InstanceNumber, then file path, then frame index.
    base = sorted(
        range(len(recs)),
        key=lambda k: (
            recs[k].instance_number if recs[k].instance_number is not None else 1 << 62,
            str(recs[k].path),
            recs[k].frame if recs[k].frame is not None else -1,
        ),
    )
    if all(math.isfinite(p) for p in positions):
        order = sorted(base, key=lambda k: positions[k])
        rounded = [round(positions[k], 3) for k in order]
        n_dup = len(rounded) - len(set(rounded))
        if n_dup:
            notes.append(
                f"{n_dup} frame(s) share a slice position with another; "
                "kept in InstanceNumber order"
            )
    else:
        order = base
        if len(recs) > 1:
            notes.append(
                "no ImagePositionPatient/ImageOrientationPatient (0020,0032/0037) on every frame; "
                "ordered by InstanceNumber"
            )
    frames = [
        FrameRef(
            path=recs[k].path,
            frame=recs[k].frame,
            sop_instance_uid=recs[k].sop_uid,
            instance_number=recs[k].instance_number,
            position_mm=positions[k],
        )
        for k in order
    ]
    # Spacing: the first frame's header value; warn when frames disagree.
    spacing, sp_source = first.spacing, first.spacing_source
    if spacing is not None and any(
        r.spacing is None
        or abs(r.spacing[0] - spacing[0]) > 1e-4
        or abs(r.spacing[1] - spacing[1]) > 1e-4
        for r in recs
    ):
        notes.append("pixel spacing differs between frames; the first frame's value is used")
    if spacing_mm is not None:
        spacing, sp_source = parse_pixel_spacing(spacing_mm, tag="--spacing"), "user"
    lats = {r.laterality for r in recs if r.laterality is not None}
    if len(lats) == 1:
        laterality, lat_source = lats.pop(), "header"
    else:
        laterality, lat_source = None, "none"
        if len(lats) > 1:
            notes.append("frames disagree on Laterality (0020,0060/0062); laterality left unset")
    series = Series(
        series_instance_uid=first.series_uid,
        study_instance_uid=first.study_uid,
        modality=first.modality,
        frames=frames,
        rows=first.rows,
        cols=first.cols,
        row_spacing_mm=spacing[0] if spacing else None,
        col_spacing_mm=spacing[1] if spacing else None,
        spacing_source=sp_source,
        iop=first.iop,
        plane=classify_plane(first.iop),
        laterality=laterality,
        laterality_source=lat_source,
        photometric=first.photometric,
        samples_per_pixel=first.samples,
        description=first.description,
        slice_thickness_mm=first.thickness,
        source=first.source,
        us_regions=first.us_regions,
    )
    series.notes.extend(notes)
    return series


def discover_series(
    paths: Sequence[str | Path],
    *,
    spacing_mm: tuple[float, float] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Series], list[InputError]]:
    """Find image series under DICOM files and folders, reading headers only.

    Parameters
    ----------
    paths : sequence of str or Path
        DICOM files, series folders or study folders (any nesting, any file
        names). Non-DICOM files inside folders are skipped silently; a
        non-DICOM file given explicitly is an :class:`InputError`.
    spacing_mm : (float, float), optional, keyword-only
        ``(row_spacing_mm, col_spacing_mm)`` that overrides the header
        (``spacing_source="user"``).
    progress : callable(done, total), optional, keyword-only
        Called after each file.

    Returns
    -------
    series : list of Series
        One per Series Instance UID (0020,000E), split further when frames of
        a series differ in size or orientation (e.g. a 3-plane localizer).
        Frames are ordered by ``ImagePositionPatient · normal`` ascending, where
        ``normal = cross(iop[0:3], iop[3:6])`` (DICOM row cosine x column cosine),
        never by file name or InstanceNumber.
    errors : list of InputError
        Files that are DICOM but unusable (unparseable header, no Pixel Data,
        not an image), explicit non-DICOM files and missing paths.

    Notes
    -----
    Spacing comes from Pixel Spacing (0028,0030), else the enhanced Pixel
    Measures macro, else Imager Pixel Spacing (0018,1164), else ``spacing_mm``;
    without any, ``row_spacing_mm`` is ``None`` and ``spacing_source="none"``
    (never an assumed 1 mm). Patient name, ID and birth date are never read out.
    """
    if spacing_mm is not None:
        try:
            parse_pixel_spacing(spacing_mm, tag="--spacing")
        except ValueError as exc:
            raise UsageError(f"{exc}; give --spacing ROW_MM COL_MM with positive numbers") from exc
    files: list[tuple[Path, str, bool]] = []
    errors: list[InputError] = []
    for item in _iter_files(paths):
        if isinstance(item, InputError):
            errors.append(item)
        else:
            files.append(item)
    groups: dict[tuple, list[_FrameRec]] = {}
    total = len(files)
    for done, (path, source, explicit) in enumerate(files, start=1):
        result = _read_file(path, source, explicit)
        if isinstance(result, InputError):
            errors.append(result)
        elif result:
            for rec in result:
                groups.setdefault(_group_key(rec), []).append(rec)
        if progress is not None:
            progress(done, total)
    series = [_build_series(recs, spacing_mm) for recs in groups.values()]
    # Note sub-series of one UID that were split by geometry.
    by_uid: dict[str, list[Series]] = {}
    for s in series:
        if s.series_instance_uid:
            by_uid.setdefault(s.series_instance_uid, []).append(s)
    for parts in by_uid.values():
        if len(parts) > 1:
            for s in parts:
                s.notes.append(
                    f"series split into {len(parts)} parts by image size/orientation "
                    f"(this part: {s.plane}, {s.n_slices} frame(s))"
                )
    series.sort(key=lambda s: (s.source, s.study_instance_uid, s.series_instance_uid, s.plane))
    return series, errors
