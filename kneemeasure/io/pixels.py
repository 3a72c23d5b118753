"""Decode one frame of a DICOM file to float32 grayscale.

Decoding goes through pydicom 3's pixel backends (``pydicom.pixels``); compressed
transfer syntaxes need a plugin (pylibjpeg + pylibjpeg-openjpeg / -libjpeg, or
gdcm). Failures become :class:`~kneemeasure.errors.DecodeError` naming the
transfer syntax, the plugins tried or missing, and the fix.
"""

from __future__ import annotations

import warnings

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, get_decoder, pixel_array
from pydicom.uid import UID

from kneemeasure.errors import (
    DecodeError,
    DicomReadError,
    NoPixelDataError,
    UnsupportedImageError,
)
from kneemeasure.io.discover import PARSE_ERRORS, PixelInfo, _functional, _get, open_dicom
from kneemeasure.models import FrameRef

__all__ = ["read_frame", "read_frame_color", "to_luminance"]

#: Exceptions raised by pydicom's decoders and plugins.
DECODE_ERRORS: tuple[type[BaseException], ...] = (RuntimeError, *PARSE_ERRORS)

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _plugins_text(tsyntax: UID) -> str:
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError:
        return "no pydicom decoder exists for it"
    if decoder.is_native:
        return "native encoding, no plugin needed"
    available = ", ".join(decoder.available_plugins) or "none"
    missing = (
        "; ".join(f"{k} ({v})" for k, v in decoder.missing_dependencies)
        if hasattr(decoder.missing_dependencies, "items")
        else "; ".join(decoder.missing_dependencies)
    )
    return f"plugins tried: {available}; unavailable: {missing or 'none'}"


def _decode_error(path: str, tsyntax: UID, exc: BaseException) -> DecodeError:
    detail = " ".join(str(exc).split())[:200]
    return DecodeError(
        f"cannot decode pixel data, Transfer Syntax {tsyntax} ({tsyntax.name}); "
        f"{_plugins_text(tsyntax)}; error: {detail}; fix: install pylibjpeg-libjpeg / "
        "pylibjpeg-openjpeg / python-gdcm, or convert with 'dcmdjpeg' / 'gdcmconv --raw'",
        source=path,
    )


def _check_native_length(ds: Dataset, info: PixelInfo, path: str) -> None:
    """Expected vs actual Pixel Data length for native (uncompressed) encodings."""
    if not info.transfer_syntax.is_private and info.transfer_syntax.is_compressed:
        return
    if info.keyword != "PixelData":
        return
    rows = int(_get(ds, "Rows", 0) or 0)
    cols = int(_get(ds, "Columns", 0) or 0)
    spp = int(_get(ds, "SamplesPerPixel", 1) or 1)
    bits = int(_get(ds, "BitsAllocated", 0) or 0)
    n_frames = int(_get(ds, "NumberOfFrames", 1) or 1)
    if not (rows and cols and bits):
        return
    photometric = str(_get(ds, "PhotometricInterpretation", "") or "")
    n_px = rows * cols * n_frames
    if photometric == "YBR_FULL_422":
        expected = n_px * 2 * (bits // 8)
    elif bits == 1:
        expected = (n_px * spp + 7) // 8
    else:
        expected = n_px * spp * ((bits + 7) // 8)
    declared = info.value_length if info.value_length is not None else info.available_bytes
    actual = min(declared, info.available_bytes)
    if actual < expected:
        raise DicomReadError(
            f"Pixel Data (7FE0,0010) is truncated: expected {expected} bytes for "
            f"{n_frames}x{rows}x{cols}x{spp} at {bits} bits, found {actual}; re-export the file",
            source=path,
        )


def _check_frame(ds: Dataset, ref: FrameRef) -> None:
    n_frames = int(_get(ds, "NumberOfFrames", 1) or 1)
    if ref.frame is not None and not (0 <= ref.frame < n_frames):
        raise UnsupportedImageError(
            f"frame index {ref.frame} out of range: NumberOfFrames (0028,0008) is {n_frames}",
            source=str(ref.path),
        )


def _decode(ref: FrameRef) -> tuple[np.ndarray, Dataset]:
    """Decode the frame; return the array (photometric handled by pydicom) and the header."""
    path = str(ref.path)
    ds, info = open_dicom(ref.path)
    if not info.present:
        raise NoPixelDataError(
            "DICOM file has no Pixel Data (7FE0,0010); re-export the series with images",
            source=path,
        )
    _check_frame(ds, ref)
    _check_native_length(ds, info, path)
    n_frames = int(_get(ds, "NumberOfFrames", 1) or 1)
    index = ref.frame if ref.frame is not None else (0 if n_frames > 1 else None)
    tsyntax = info.transfer_syntax
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if info.has_file_meta and info.raw_offset == 0:
                arr = pixel_array(path, index=index)
            else:
                full, _ = open_dicom(ref.path, stop_before_pixels=False)
                arr = pixel_array(full, index=index)
    except DicomReadError:
        raise
    except DECODE_ERRORS as exc:
        raise _decode_error(path, tsyntax, exc) from exc
    return np.asarray(arr), ds


def _rescale(ds: Dataset, frame: int | None) -> tuple[float, float]:
    """(slope, intercept) from the header or the enhanced Pixel Value Transformation macro."""
    item = _functional(ds, frame or 0, "PixelValueTransformationSequence")
    src = item if item is not None and "RescaleSlope" in item else ds
    slope = _get(src, "RescaleSlope", 1.0)
    intercept = _get(src, "RescaleIntercept", 0.0)
    try:
        s, i = (
            float(slope if slope not in (None, "") else 1.0),
            float(intercept if intercept not in (None, "") else 0.0),
        )
    except (TypeError, ValueError):
        return 1.0, 0.0
    if not np.isfinite(s) or s == 0 or not np.isfinite(i):
        return 1.0, 0.0
    return s, i


def _modality_lut(arr: np.ndarray, ds: Dataset, frame: int | None) -> np.ndarray:
    seq = _get(ds, "ModalityLUTSequence")
    if seq:
        from pydicom.pixels import apply_modality_lut

        try:
            return np.asarray(apply_modality_lut(arr, ds), dtype=np.float32)
        except PARSE_ERRORS:
            pass  # fall back to Rescale Slope/Intercept below
    slope, intercept = _rescale(ds, frame)
    out = arr.astype(np.float32)
    if slope != 1.0 or intercept != 0.0:
        out = out * np.float32(slope) + np.float32(intercept)
    return out


def to_luminance(rgb: np.ndarray) -> np.ndarray:
    """Luminance ``0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601).

    Parameters
    ----------
    rgb : ndarray, shape (rows, cols, 3)

    Returns
    -------
    ndarray, shape (rows, cols), float32
    """
    return (np.asarray(rgb, dtype=np.float32) @ _LUMA).astype(np.float32)


def _to_rgb(arr: np.ndarray, ds: Dataset, path: str) -> np.ndarray | None:
    """RGB (rows, cols, 3) for colour images, ``None`` for monochrome."""
    photometric = str(_get(ds, "PhotometricInterpretation", "") or "").upper()
    if photometric == "PALETTE COLOR":
        try:
            rgb = np.asarray(apply_color_lut(arr, ds))
            # 16-bit LUT entries (descriptor bits (0028,1101)[2] == 16) -> 8-bit range.
            desc = _get(ds, "RedPaletteColorLookupTableDescriptor")
            if desc is not None and int(desc[2]) == 16:  # type: ignore[index]
                rgb = np.round(rgb.astype(np.float32) / 257.0).astype(np.uint8)
            return rgb
        except PARSE_ERRORS as exc:
            raise UnsupportedImageError(
                f"PALETTE COLOR image without a usable colour LUT (0028,1101-1203): {exc}; "
                "re-export as RGB or MONOCHROME2",
                source=path,
            ) from exc
    if arr.ndim == 3 and arr.shape[-1] == 3:
        # pydicom 3 returns YBR_FULL/YBR_FULL_422 converted to RGB; YBR_ICT/RCT are
        # converted by the JPEG 2000 decoder itself.
        return arr
    return None


def read_frame(ref: FrameRef) -> np.ndarray:
    """Decode one frame as float32 grayscale with the modality LUT applied.

    Parameters
    ----------
    ref : FrameRef
        File and 0-based frame index (``None`` for single-frame files).

    Returns
    -------
    ndarray, shape (rows, cols), float32
        Modality values (Rescale Slope/Intercept (0028,1053/1052) or Modality LUT
        applied). Colour images (RGB, YBR_*, PALETTE COLOR) become luminance
        ``0.299 R + 0.587 G + 0.114 B``.

    Raises
    ------
    NotDicomError, DicomReadError
        Not DICOM / header or Pixel Data truncated (expected vs actual bytes).
    NoPixelDataError
        No Pixel Data (7FE0,0010).
    DecodeError
        No installed plugin could decode the transfer syntax.
    """
    arr, ds = _decode(ref)
    rgb = _to_rgb(arr, ds, str(ref.path))
    if rgb is not None:
        return to_luminance(rgb)
    if arr.ndim != 2:
        raise UnsupportedImageError(
            f"decoded frame has shape {arr.shape}, expected (rows, cols); "
            "SamplesPerPixel (0028,0002) / PhotometricInterpretation (0028,0004) unsupported",
            source=str(ref.path),
        )
    return _modality_lut(arr, ds, ref.frame)


def read_frame_color(ref: FrameRef) -> np.ndarray:
    """Decode one frame as RGB for display or ultrasound colour analysis.

    Parameters
    ----------
    ref : FrameRef

    Returns
    -------
    ndarray, shape (rows, cols, 3)
        uint8 for 8-bit colour images (YBR_* converted to RGB, PALETTE COLOR
        through its LUT, 16-bit LUT entries scaled to 0..255); monochrome frames are scaled
        to uint8 over their min..max and repeated in the three channels
        (MONOCHROME1 inverted so that bright is bright).
    """
    arr, ds = _decode(ref)
    rgb = _to_rgb(arr, ds, str(ref.path))
    if rgb is not None:
        return rgb
    if arr.ndim != 2:
        raise UnsupportedImageError(
            f"decoded frame has shape {arr.shape}, expected (rows, cols) or (rows, cols, 3)",
            source=str(ref.path),
        )
    grey = _modality_lut(arr, ds, ref.frame)
    lo, hi = float(np.min(grey)), float(np.max(grey))
    scaled = (grey - lo) / (hi - lo) if hi > lo else np.zeros_like(grey)
    if str(_get(ds, "PhotometricInterpretation", "") or "").upper() == "MONOCHROME1":
        scaled = 1.0 - scaled
    u8 = np.round(scaled * 255.0).astype(np.uint8)
    return np.repeat(u8[:, :, None], 3, axis=2)
