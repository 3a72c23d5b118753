"""Resampling of a slice stack to the coarse grid (numpy only).

Kept apart from :mod:`kneemeasure.detect.coarse` (which needs scipy and
scikit-image) so that ``kneemeasure measure`` can resample each slice right after
decoding it, in the decoding process, before the detection code is imported.
"""

from __future__ import annotations

import numpy as np

from kneemeasure.errors import DetectionError, UsageError

__all__ = ["COARSE_STEP_MM", "coarse_shape", "downsample_volume"]

#: Grid of the coarse pass (mm): :func:`kneemeasure.detect.coarse.analyse_knee`.
COARSE_STEP_MM = 1.0


def _grid(rows: int, cols: int, row_spacing_mm: float, col_spacing_mm: float,
          step_mm: float) -> tuple[int, int, int, int, float, float, int, int]:  # fmt: skip
    """Block factors, block counts, block spacings and output size of the resampling."""
    fr = max(1, int(step_mm / row_spacing_mm + 1e-6))
    fc = max(1, int(step_mm / col_spacing_mm + 1e-6))
    r_n, c_n = rows // fr, cols // fc
    brs, bcs = row_spacing_mm * fr, col_spacing_mm * fc
    n_r = max(int(np.floor((r_n - 1) * brs / step_mm)) + 1, 2)
    n_c = max(int(np.floor((c_n - 1) * bcs / step_mm)) + 1, 2)
    return fr, fc, r_n, c_n, brs, bcs, n_r, n_c


def coarse_shape(rows: int, cols: int, *, row_spacing_mm: float, col_spacing_mm: float,
                 step_mm: float = COARSE_STEP_MM) -> tuple[int, int]:  # fmt: skip
    """Shape (M, N) of one slice of :func:`downsample_volume`'s output."""
    return _grid(rows, cols, row_spacing_mm, col_spacing_mm, step_mm)[6:]


def downsample_volume(
    volume: np.ndarray, *, row_spacing_mm: float, col_spacing_mm: float,
    step_mm: float = COARSE_STEP_MM,
) -> np.ndarray:
    """Resample every slice to square ``step_mm`` pixels (block mean + linear interpolation).

    Parameters
    ----------
    volume : ndarray, shape (n_slices, rows, cols)
    row_spacing_mm, col_spacing_mm : float, keyword-only
        Pixel Spacing (0028,0030) [0] and [1] (mm).
    step_mm : float, keyword-only
        Output pixel size (mm).

    Returns
    -------
    ndarray, shape (n_slices, M, N), float32
        Output pixel ``(i, j)`` sits at original pixel
        ``(i * step_mm / row_spacing_mm + (fr - 1) / 2,``
        ``j * step_mm / col_spacing_mm + (fc - 1) / 2)``
        where ``fr, fc`` are the integer block factors (``floor(step / spacing)``, >= 1).
    """
    for name, v in (("row_spacing_mm", row_spacing_mm), ("col_spacing_mm", col_spacing_mm),
                    ("step_mm", step_mm)):
        if not (np.isfinite(v) and v > 0):
            raise UsageError(f"{name}={v!r} is not a positive spacing in mm")
    vol = np.asarray(volume, dtype=np.float32)
    if vol.ndim == 2:
        vol = vol[None]
    if vol.ndim != 3:
        raise DetectionError(
            f"volume of shape {vol.shape} is not a stack of slices; choose one with --slice"
        )
    n, rows, cols = vol.shape
    fr, fc, r_n, c_n, brs, bcs, n_r, n_c = _grid(rows, cols, row_spacing_mm, col_spacing_mm,
                                                 step_mm)  # fmt: skip
    blk = vol[:, : r_n * fr, : c_n * fc].reshape(n, r_n, fr, c_n, fc).mean(axis=(2, 4))
    rr = np.arange(n_r) * (step_mm / brs)
    cc = np.arange(n_c) * (step_mm / bcs)
    if np.allclose(rr, np.arange(n_r)) and np.allclose(cc, np.arange(n_c)):
        return np.ascontiguousarray(blk[:, :n_r, :n_c])
    # separable linear interpolation: rows, then columns
    r0 = np.clip(np.floor(rr).astype(int), 0, r_n - 1)
    r1 = np.clip(r0 + 1, 0, r_n - 1)
    wr = (rr - r0)[None, :, None].astype(np.float32)
    tmp = blk[:, r0, :] * (1 - wr) + blk[:, r1, :] * wr
    c0 = np.clip(np.floor(cc).astype(int), 0, c_n - 1)
    c1 = np.clip(c0 + 1, 0, c_n - 1)
    wc = (cc - c0)[None, None, :].astype(np.float32)
    return (tmp[:, :, c0] * (1 - wc) + tmp[:, :, c1] * wc).astype(np.float32)
