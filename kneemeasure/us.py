"""Per-file ultrasound measurement: header, calibration, frame, detection, MME.

Flow of :func:`measure_us_file`: read the header; parse the Sequence of
Ultrasound Regions (0018,6011) and choose the calibrated 2D tissue region
(or take ``--spacing-mm``); pick the frame (``--frame`` or the sharpest one by
variance of the Laplacian); decode it to grayscale luminance; crop to the
region (burned-in text and UI chrome lie outside it); detect the landmarks;
measure the signed perpendicular distance from the reference line to the most
superficial point of the meniscus, positive toward the skin (smaller row).

Points are ``(row, col)`` pixels of the full stored image unless said otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy import ndimage

from kneemeasure.detect.ultrasound import UsLandmarks, detect_us_landmarks
from kneemeasure.errors import (
    DecodeError,
    DetectionError,
    DicomReadError,
    KneeMeasureError,
    MissingSpacingError,
    NoPixelDataError,
    NotDicomError,
    UnsupportedImageError,
    UsageError,
)
from kneemeasure.io.us_regions import choose_image_region, parse_regions
from kneemeasure.measure import signed_distance_to_line, to_mm

#: Positive side of the ultrasound distance: toward the skin, i.e. up the image.
TOWARD_SKIN_RC = (-1.0, 0.0)
#: Confidence at or above which a result is "ok" rather than "review".
OK_CONFIDENCE = 0.5


@dataclass
class UsResult:
    """Result of one ultrasound measurement.

    Attributes
    ----------
    extrusion_mm : float
        Signed MME (mm), positive when the meniscus lies superficial to the reference line.
    extruded : bool
        ``extrusion_mm >= threshold_mm``.
    confidence : float
    status : str
        ``"ok"`` (confidence >= 0.5) or ``"review"``.
    frame : int
        0-based frame measured.
    region : dict
        The image region used (``UsRegion`` fields; ``index`` -1 for the whole image).
    row_spacing_mm, col_spacing_mm : float
    spacing_source : str
        ``"US regions"`` or ``"user"``.
    landmarks : UsLandmarks
        In full-image pixel coordinates.
    reference : str
        ``"tibial"`` or ``"femorotibial"``.
    image : ndarray, shape (h, w), float32
        The cropped grayscale frame (for plotting); landmarks minus
        ``region_offset_rc`` are its coordinates.
    region_offset_rc : (int, int)
        (row, col) of the region's top-left pixel in the full image.
    threshold_mm : float
    n_frames : int
    frame_source : str
        ``"single"``, ``"user"`` or ``"sharpest"``.
    notes : list of str
    """

    extrusion_mm: float
    extruded: bool
    confidence: float
    status: str
    frame: int
    region: dict
    row_spacing_mm: float
    col_spacing_mm: float
    spacing_source: str
    landmarks: UsLandmarks
    reference: str
    image: np.ndarray = field(repr=False)
    region_offset_rc: tuple[int, int] = (0, 0)
    threshold_mm: float = 3.0
    n_frames: int = 1
    frame_source: str = "single"
    notes: list[str] = field(default_factory=list)


def _read_header(path: Path):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, defer_size="64 KB")  # pixel data stays on disk
    except InvalidDicomError as exc:
        raise NotDicomError(
            "not a DICOM Part 10 file (no 'DICM' preamble / file meta); "
            "export it from the scanner or PACS as DICOM",
            source=str(path),
        ) from exc
    except (OSError, ValueError, EOFError, KeyError, TypeError) as exc:
        raise DicomReadError(
            f"could not parse the DICOM header ({type(exc).__name__}); the file may be truncated",
            source=str(path),
        ) from exc
    return ds


def _n_frames(ds) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def _luminance(arr: np.ndarray, ds) -> np.ndarray:
    """Grayscale luminance (float32) of one decoded frame (RGB, palette or monochrome)."""
    from pydicom.pixels import apply_color_lut

    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[-1] == 3:
        return (0.299 * arr[..., 0] + 0.587 * arr[..., 1] + 0.114 * arr[..., 2]).astype(np.float32)
    if arr.ndim != 2:
        raise UnsupportedImageError(f"decoded frame has shape {arr.shape}, expected one 2D frame")
    if photometric == "MONOCHROME1":
        arr = arr.max() - arr
    return arr


def _decode_error(path: Path, ds, exc: Exception) -> DecodeError:
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    name = getattr(ts, "name", str(ts))
    return DecodeError(
        f"pixel data (7FE0,0010) could not be decoded (transfer syntax {name}: "
        f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); install "
        "pylibjpeg-openjpeg / pylibjpeg-libjpeg or gdcm, or export uncompressed",
        source=str(path),
    )


def read_us_frame(path: Path | str, frame: int = 0, *, ds=None) -> np.ndarray:
    """Decode one frame of an ultrasound DICOM as grayscale luminance.

    RGB and YBR (converted to RGB by pydicom) give ``0.299 R + 0.587 G +
    0.114 B``; PALETTE COLOR is expanded through its lookup table first.

    Parameters
    ----------
    path : Path or str
    frame : int
        0-based frame index.
    ds : pydicom.Dataset, optional
        The already read header (saves a read).

    Returns
    -------
    ndarray, shape (rows, cols), float32
    """
    from pydicom.pixels import pixel_array

    path = Path(path)
    if ds is None:
        ds = _read_header(path)
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise NoPixelDataError(
            "no Pixel Data (7FE0,0010): this file holds no image", source=str(path)
        )
    n = _n_frames(ds)
    if not 0 <= frame < n:
        raise UsageError(f"--frame {frame} is out of range: the file has {n} frame(s)")
    try:
        arr = pixel_array(path, index=frame if n > 1 else None)
    except (KneeMeasureError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - decoder plugins raise many types; re-raised
        raise _decode_error(path, ds, exc) from exc
    return _luminance(arr, ds)


def _focus(frame: np.ndarray) -> float:
    """Variance of the Laplacian of a 2x2-decimated frame (sharpness measure)."""
    h, w = (frame.shape[0] // 2) * 2, (frame.shape[1] // 2) * 2
    small = frame[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return float(np.var(ndimage.laplace(small.astype(np.float64))))


def sharpest_frame(path: Path | str, region: dict, *, ds=None, max_scored: int = 24) -> int:
    """Index of the sharpest frame (variance of the Laplacian over the region).

    Long cines are scored coarsely first (about ``max_scored`` evenly spaced
    frames), then every frame next to the best coarse one.

    Parameters
    ----------
    path : Path or str
    region : dict
        Region bounds (clipped) to score inside.
    ds : pydicom.Dataset, optional
    max_scored : int
        Frames scored in the coarse pass.

    Returns
    -------
    int
    """
    from pydicom.pixels import pixel_array

    path = Path(path)
    if ds is None:
        ds = _read_header(path)
    n = _n_frames(ds)
    scores: dict[int, float] = {}

    def score(i: int) -> float:
        if i not in scores:
            try:
                arr = pixel_array(path, index=i)
            except Exception as exc:  # noqa: BLE001 - decoder plugins raise many types
                raise _decode_error(path, ds, exc) from exc
            lum = _luminance(arr, ds)
            crop = lum[region["y0"] : region["y1"] + 1, region["x0"] : region["x1"] + 1]
            scores[i] = _focus(crop)
        return scores[i]

    step = max(1, -(-n // max_scored))
    best = max(range(0, n, step), key=score)
    return max(range(max(0, best - step + 1), min(n, best + step)), key=score)


def _clip_region(region: dict, rows: int, cols: int) -> dict:
    out = dict(region)
    out["x0"] = int(min(max(region["x0"], 0), cols - 1))
    out["x1"] = int(min(max(region["x1"], 0), cols - 1))
    out["y0"] = int(min(max(region["y0"], 0), rows - 1))
    out["y1"] = int(min(max(region["y1"], 0), rows - 1))
    return out


def _calibration(
    path: Path, ds, spacing_mm: tuple[float, float] | None
) -> tuple[dict, float, float, str]:
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows < 1 or cols < 1:
        raise UnsupportedImageError("Rows (0028,0010) / Columns (0028,0011) missing or zero")
    regions = parse_regions(ds)
    whole = {
        "index": -1,
        "x0": 0,
        "y0": 0,
        "x1": cols - 1,
        "y1": rows - 1,
        "spatial_format": 1,
        "data_type": 1,
        "row_spacing_mm": None,
        "col_spacing_mm": None,
        "units_x": 0,
        "units_y": 0,
    }
    if spacing_mm is not None:
        rsp, csp = (float(v) for v in spacing_mm)
        if not (rsp > 0 and csp > 0 and np.isfinite(rsp) and np.isfinite(csp)):
            raise UsageError(f"--spacing-mm {spacing_mm!r}: both values must be positive mm")
        try:
            region = choose_image_region(regions)
        except MissingSpacingError:
            region = whole
        return _clip_region(region, rows, cols), rsp, csp, "user"
    try:
        region = choose_image_region(regions)
    except MissingSpacingError as exc:
        raise MissingSpacingError(exc.message, source=str(path)) from exc
    return (
        _clip_region(region, rows, cols),
        region["row_spacing_mm"],
        region["col_spacing_mm"],
        ("US regions"),
    )


def _shift(lm: UsLandmarks, dr: float, dc: float) -> UsLandmarks:
    def s(p):
        return (float(p[0] + dr), float(p[1] + dc))

    off = np.array([dr, dc])
    return replace(
        lm,
        tibial_margin_rc=s(lm.tibial_margin_rc),
        femoral_margin_rc=s(lm.femoral_margin_rc),
        reference_point_rc=s(lm.reference_point_rc),
        meniscus_rc=s(lm.meniscus_rc),
        tibial_cortex_rc=lm.tibial_cortex_rc + off,
        femoral_cortex_rc=lm.femoral_cortex_rc + off,
        meniscus_edge_rc=lm.meniscus_edge_rc + off,
    )


def measure_us_file(
    path: Path,
    *,
    frame: int | None = None,
    reference: str = "tibial",
    proximal: str | None = None,
    spacing_mm: tuple[float, float] | None = None,
    threshold_mm: float = 3.0,
) -> UsResult:
    """Measure MME on one ultrasound DICOM file.

    Parameters
    ----------
    path : Path
        Ultrasound DICOM (single or multi-frame).
    frame : int, optional
        0-based frame; default the sharpest frame of a cine, 0 for a single frame.
    reference : {"tibial", "femorotibial"}
        Reference line (``--us-reference``).
    proximal : {"image-left", "image-right"}, optional
        Side of the femur; default detected from the anatomy.
    spacing_mm : (float, float), optional
        (row, column) spacing in mm overriding the header calibration.
    threshold_mm : float
        ``extruded`` is ``extrusion_mm >= threshold_mm``.

    Returns
    -------
    UsResult

    Raises
    ------
    KneeMeasureError
        ``NotDicomError``, ``DicomReadError``, ``NoPixelDataError``,
        ``MissingSpacingError``, ``DecodeError``, ``UnsupportedImageError``,
        ``DetectionError`` or ``UsageError``, each naming the file.
    """
    path = Path(path)
    if reference not in ("tibial", "femorotibial"):
        raise UsageError(f"--us-reference {reference!r} is not one of tibial, femorotibial")
    ds = _read_header(path)
    modality = str(ds.get("Modality", ""))
    if modality != "US" and "SequenceOfUltrasoundRegions" not in ds:
        raise UnsupportedImageError(
            f"Modality (0008,0060) is {modality or 'empty'!r}, not US; "
            "measure MRI series with the MRI pipeline",
            source=str(path),
        )
    if "PixelData" not in ds:
        raise NoPixelDataError(
            "no Pixel Data (7FE0,0010): this file holds no image", source=str(path)
        )
    region, rsp, csp, spacing_source = _calibration(path, ds, spacing_mm)
    n = _n_frames(ds)
    if frame is not None:
        if not 0 <= frame < n:
            raise UsageError(f"--frame {frame} is out of range: the file has {n} frame(s)")
        chosen, frame_source = frame, "user"
    elif n > 1:
        chosen, frame_source = sharpest_frame(path, region, ds=ds), "sharpest"
    else:
        chosen, frame_source = 0, "single"
    full = read_us_frame(path, chosen, ds=ds)
    y0, x0 = region["y0"], region["x0"]
    crop = full[y0 : region["y1"] + 1, x0 : region["x1"] + 1]
    try:
        lm = detect_us_landmarks(
            crop, row_spacing_mm=rsp, col_spacing_mm=csp, proximal=proximal, reference=reference
        )
    except KneeMeasureError as exc:
        exc.source = exc.source or str(path)
        raise
    except (ValueError, IndexError, FloatingPointError, np.linalg.LinAlgError) as exc:
        raise DetectionError(
            f"landmark detection failed ({type(exc).__name__}); not a medial joint-line view? "
            "measure by hand with --points",
            source=str(path),
        ) from exc
    lm = _shift(lm, y0, x0)
    mme = signed_distance_to_line(
        lm.meniscus_rc,
        lm.reference_point_rc,
        line_dir_rc=lm.reference_dir_rc,
        positive_rc=TOWARD_SKIN_RC,
        row_spacing_mm=rsp,
        col_spacing_mm=csp,
    )
    notes = list(lm.notes)
    if frame_source == "sharpest":
        notes.append(f"frame {chosen} of {n} chosen as the sharpest")
    return UsResult(
        extrusion_mm=mme,
        extruded=bool(mme >= threshold_mm),
        confidence=lm.confidence,
        status="ok" if lm.confidence >= OK_CONFIDENCE else "review",
        frame=chosen,
        region=region,
        row_spacing_mm=rsp,
        col_spacing_mm=csp,
        spacing_source=spacing_source,
        landmarks=lm,
        reference=reference,
        image=crop,
        region_offset_rc=(y0, x0),
        threshold_mm=threshold_mm,
        n_frames=n,
        frame_source=frame_source,
        notes=notes,
    )


def points_calibration(
    path: Path,
    points_rc: Sequence[tuple[float, float]],
    *,
    spacing_mm: tuple[float, float] | None = None,
    ds=None,
) -> tuple[float, float, str]:
    """Pixel spacing (row_mm, col_mm, source) for user-given points in a US file.

    Prefers the calibrated 2D region that contains all the points (dual-pane
    images), else the image region :func:`choose_image_region` picks; a given
    ``spacing_mm`` overrides the header (source ``"user"``).
    """
    path = Path(path)
    ds = _read_header(path) if ds is None else ds
    _region, rsp, csp, source = _calibration(path, ds, spacing_mm)
    if spacing_mm is None:
        for r in parse_regions(ds):
            usable = r["row_spacing_mm"] is not None and r["col_spacing_mm"] is not None
            if not usable or r["spatial_format"] != 1:
                continue
            if all(r["y0"] <= p[0] <= r["y1"] and r["x0"] <= p[1] <= r["x1"] for p in points_rc):
                return r["row_spacing_mm"], r["col_spacing_mm"], "US regions"
    return rsp, csp, source


def measure_us_points(
    path: Path,
    *,
    tibial_a_rc: tuple[float, float],
    tibial_b_rc: tuple[float, float],
    meniscus_rc: tuple[float, float],
    frame: int | None = None,
    spacing_mm: tuple[float, float] | None = None,
) -> float:
    """MME from user-given points (full-image pixels) with the header calibration.

    The reference line runs through ``tibial_a_rc`` and ``tibial_b_rc`` (two
    points on the tibial cortex, or the femoral and tibial margins for the
    femorotibial variant); the result is the signed perpendicular distance of
    ``meniscus_rc`` from it, positive toward the skin.

    Parameters
    ----------
    path : Path
    tibial_a_rc, tibial_b_rc, meniscus_rc : (float, float)
        ``(row, col)`` pixels of the full stored image.
    frame : int, optional
        Checked against Number of Frames; calibration is per file.
    spacing_mm : (float, float), optional
        (row, column) spacing overriding the header.

    Returns
    -------
    float
        MME in mm.
    """
    path = Path(path)
    ds = _read_header(path)
    rsp, csp, _ = points_calibration(path, (tibial_a_rc, tibial_b_rc, meniscus_rc),
                                     spacing_mm=spacing_mm, ds=ds)
    n = _n_frames(ds)
    if frame is not None and not 0 <= frame < n:
        raise UsageError(f"--frame {frame} is out of range: the file has {n} frame(s)")
    direction = to_mm(
        (tibial_b_rc[0] - tibial_a_rc[0], tibial_b_rc[1] - tibial_a_rc[1]),
        row_spacing_mm=rsp,
        col_spacing_mm=csp,
    )
    return signed_distance_to_line(
        meniscus_rc,
        tibial_a_rc,
        line_dir_rc=direction,
        positive_rc=TOWARD_SKIN_RC,
        row_spacing_mm=rsp,
        col_spacing_mm=csp,
    )
