"""Coronal planes from a thin-slice 3D sagittal series (multiplanar reformat).

A 3D sagittal acquisition (e.g. DESS with 1.5 mm slices) holds the coronal
planes too: fixing one sagittal *column* (one y position) and stacking that
column over all slices gives a coronal image whose rows run superior->inferior
(sagittal row spacing) and whose columns run patient right->left (+x, spacing
= distance between sagittal slice positions). No interpolation is done, so
the coronal pixels are anisotropic (e.g. 0.3125 mm x 1.5 mm). Each coronal plane
is the mean of the planes within a thin slab (``SLAB_MM``, 2 mm by default) around
it: one 0.3 mm plane of a 3D acquisition is too noisy for the detectors, and a
clinical coronal slice is 3 mm thick anyway. The slab only averages along y; the
in-plane pixels and the plane positions are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kneemeasure.errors import WrongPlaneError
from kneemeasure.io.geometry import slice_normal
from kneemeasure.models import FrameRef, Series

__all__ = ["is_reformattable", "reformat_to_coronal", "ReformattedSeries", "CORONAL_IOP"]

#: Coronal orientation of the reformatted planes: columns +x, rows -z (LPS).
CORONAL_IOP: tuple[float, float, float, float, float, float] = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
MIN_SLICES = 20
MAX_SLICE_SPACING_MM = 1.6
#: Thickness (mm, along y) of the slab averaged into each coronal plane.
SLAB_MM = 2.0
#: Allowed relative deviation of slice gaps from their median.
GAP_TOLERANCE = 0.1


def _axes_ok(iop: tuple[float, ...] | None) -> bool:
    """Sagittal with columns along ±y and rows along ±z (no in-plane rotation)."""
    if iop is None:
        return False
    col = np.asarray(iop[:3])
    row = np.asarray(iop[3:])
    return abs(col[1]) > 0.9 and abs(row[2]) > 0.9


def _slice_x(series: Series) -> np.ndarray:
    """Slice positions along +x (mm), in ``series.frames`` order."""
    n = slice_normal(series.iop)  # type: ignore[arg-type]
    sign = 1.0 if n[0] > 0 else -1.0
    return sign * np.array([f.position_mm for f in series.frames], dtype=float)


def _reject_reason(series: Series) -> str | None:
    if series.plane != "sagittal" or not _axes_ok(series.iop):
        return (
            f"plane is {series.plane}, not a sagittal series with columns along y and rows along z"
        )
    if series.samples_per_pixel != 1:
        return f"SamplesPerPixel (0028,0002) is {series.samples_per_pixel}, not 1"
    if series.n_slices < MIN_SLICES:
        return f"only {series.n_slices} slices (need >= {MIN_SLICES})"
    if series.row_spacing_mm is None or series.col_spacing_mm is None:
        return "no pixel spacing"
    x = np.sort(_slice_x(series))
    if not np.all(np.isfinite(x)):
        return "slice positions missing (ImagePositionPatient (0020,0032))"
    gaps = np.diff(x)
    med = float(np.median(gaps))
    if med <= 0:
        return "slices share positions"
    if med > MAX_SLICE_SPACING_MM:
        return f"slice spacing {med:.2f} mm > {MAX_SLICE_SPACING_MM} mm"
    if float(np.max(np.abs(gaps - med))) > GAP_TOLERANCE * med:
        return "slice spacing is not uniform"
    return None


def is_reformattable(series: Series) -> bool:
    """Whether a coronal reformat of ``series`` is meaningful.

    True for sagittal single-sample series with >= 20 slices, uniformly
    spaced at <= 1.6 mm, whose columns run along ±y and rows along ±z.
    """
    return _reject_reason(series) is None


@dataclass
class ReformattedSeries(Series):
    """Coronal planes of a sagittal volume; pixels are built on first use.

    Attributes
    ----------
    parent : Series
        The sagittal series the planes come from.
    source_description : str
        One line saying where the planes come from (for reports).
    slice_order : list of int
        Indices into ``parent.frames`` sorted by slice x ascending
        (= coronal column order).
    col_index : list of int
        For each coronal frame, the sagittal column it fixes.
    flip_rows : bool
        Whether sagittal rows run inferior->superior and must be flipped.
    plane_pitch_mm : float
        Distance between neighbouring coronal planes (the sagittal column spacing).
    slab_mm : float
        Thickness of the slab averaged into each plane (0: single planes); near the
        ends of the stack the slab shrinks symmetrically so the plane stays centred.
    """

    parent: Series | None = None
    source_description: str = ""
    slice_order: list[int] = field(default_factory=list, repr=False)
    col_index: list[int] = field(default_factory=list, repr=False)
    flip_rows: bool = False
    plane_pitch_mm: float = 0.0
    slab_mm: float = SLAB_MM
    _volume: np.ndarray | None = field(default=None, repr=False, compare=False)

    def sagittal_volume(self) -> np.ndarray:
        """The sagittal stack, shape (n_slices, rows, cols) float32, x ascending (cached)."""
        if self._volume is None:
            assert self.parent is not None
            parent = self.parent
            vol = np.empty((len(self.slice_order), parent.rows, parent.cols), dtype=np.float32)
            for k, idx in enumerate(self.slice_order):
                vol[k] = parent.load_frame(idx)
            self._volume = vol
        return self._volume

    def load_frame(self, index: int) -> np.ndarray:
        """Coronal plane ``index``: shape (rows, cols) = (sagittal rows, n_slices), float32."""
        vol = self.sagittal_volume()
        half = 0
        if self.slab_mm > 0 and self.plane_pitch_mm > 0:
            half = int(np.floor(0.5 * self.slab_mm / self.plane_pitch_mm + 1e-6))
        half = max(0, min(half, index, len(self.col_index) - 1 - index))
        cols = self.col_index[index - half : index + half + 1]
        if len(cols) == 1:
            plane = np.ascontiguousarray(vol[:, :, cols[0]].T)
        else:
            plane = np.ascontiguousarray(vol[:, :, cols].mean(axis=2, dtype=np.float32).T)
        return plane[::-1].copy() if self.flip_rows else plane

    def release(self) -> None:
        """Drop the cached volume (it is rebuilt on the next :meth:`load_frame`)."""
        self._volume = None


def reformat_to_coronal(series: Series, *, slab_mm: float = SLAB_MM) -> ReformattedSeries:
    """Coronal planes of a thin-slice 3D sagittal series, without interpolation.

    Parameters
    ----------
    series : Series
        Sagittal series accepted by :func:`is_reformattable`.
    slab_mm : float, keyword-only
        Thickness (mm, along y) of the slab averaged into each coronal plane;
        0 gives single planes.

    Returns
    -------
    ReformattedSeries
        ``rows`` = sagittal rows (superior->inferior), ``cols`` = number of
        sagittal slices ordered by x ascending (patient right->left),
        ``row_spacing_mm`` = sagittal row spacing, ``col_spacing_mm`` = median
        distance between slice positions (not SliceThickness),
        ``iop = (1,0,0, 0,0,-1)``, ``plane="coronal"``,
        ``spacing_source="reformat"``; frames (one per sagittal column) ordered
        by y ascending (anterior->posterior). Each FrameRef points at the
        middle sagittal file with ``frame=None`` and ``sop_instance_uid=""``.

    Raises
    ------
    WrongPlaneError
        When the series cannot be reformatted (reason in the message).
    """
    reason = _reject_reason(series)
    if reason is not None:
        raise WrongPlaneError(
            f"cannot reformat to coronal: {reason}; give a coronal series or a 3D sagittal "
            f"series with <= {MAX_SLICE_SPACING_MM} mm slices",
            source=series.source or None,
        )
    assert series.iop is not None and series.col_spacing_mm is not None
    x = _slice_x(series)
    slice_order = [int(i) for i in np.argsort(x, kind="stable")]
    x_sorted = x[slice_order]
    slice_gap = float(np.median(np.diff(x_sorted)))
    col_dir_y = float(series.iop[1])
    row_dir_z = float(series.iop[5])
    flip_rows = row_dir_z > 0  # rows must run -z (superior->inferior)
    # y of sagittal column c relative to column 0 (IPP of every slice shares y0).
    cols = list(range(series.cols))
    if col_dir_y < 0:
        cols = cols[::-1]  # order coronal frames by y ascending
    mid = series.frames[slice_order[len(slice_order) // 2]]
    from kneemeasure.io.discover import open_dicom  # header only, for the y origin

    ds, _ = open_dicom(mid.path)
    ipp = ds.get("ImagePositionPatient")
    y0 = float(ipp[1]) if ipp is not None and len(ipp) == 3 else 0.0
    frames = [
        FrameRef(
            path=mid.path,
            frame=None,
            sop_instance_uid="",
            instance_number=k + 1,
            position_mm=y0 + c * series.col_spacing_mm * col_dir_y,
        )
        for k, c in enumerate(cols)
    ]
    desc = (
        f"coronal reformat of sagittal series {series.series_instance_uid} "
        f"({series.n_slices} slices, {slice_gap:.3f} mm apart, "
        f"x {x_sorted[0]:.1f}..{x_sorted[-1]:.1f} mm; planes are {slab_mm:g} mm slab means)"
    )
    return ReformattedSeries(
        series_instance_uid=series.series_instance_uid,
        study_instance_uid=series.study_instance_uid,
        modality=series.modality,
        frames=frames,
        rows=series.rows,
        cols=series.n_slices,
        row_spacing_mm=series.row_spacing_mm,
        col_spacing_mm=slice_gap,
        spacing_source="reformat",
        iop=CORONAL_IOP,
        plane="coronal",
        laterality=series.laterality,
        laterality_source=series.laterality_source,
        photometric=series.photometric,
        samples_per_pixel=1,
        description=f"{series.description} [coronal reformat]".strip(),
        slice_thickness_mm=series.col_spacing_mm,
        source=series.source,
        notes=[*series.notes, desc],
        parent=series,
        source_description=desc,
        slice_order=slice_order,
        col_index=cols,
        flip_rows=flip_rows,
        plane_pitch_mm=float(series.col_spacing_mm),
        slab_mm=float(slab_mm),
    )
