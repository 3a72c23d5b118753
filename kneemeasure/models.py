"""Plain data classes that travel between the stages.

Conventions: points are ``(row, col)`` in pixels of the stored image (0-based,
sub-pixel floats allowed); physical values end in ``_mm``, pixel values in
``_px``. ``(x, y)`` appears only inside plotting code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class FrameRef:
    """One 2D image of a series: a single-frame file or one frame of a multi-frame file.

    Attributes
    ----------
    path : Path
        The DICOM file.
    frame : int or None
        0-based frame index in a multi-frame file, ``None`` for single-frame files.
    sop_instance_uid : str
        SOP Instance UID (0008,0018) of the file holding the frame.
    instance_number : int or None
        Instance Number (0020,0013) (for enhanced multi-frame: the frame number, 1-based).
    position_mm : float
        Position of the frame along the slice normal (mm), used for ordering.
    """

    path: Path
    frame: int | None
    sop_instance_uid: str
    instance_number: int | None
    position_mm: float


@dataclass
class Series:
    """Header-level description of one image series; pixels are read on demand.

    Frames are ordered by ``position_mm`` along the slice normal (never by file
    name or InstanceNumber). Only headers live here, so a cohort of thousands of
    series can be held in memory; :meth:`load_frame` decodes one frame at a time.

    Attributes
    ----------
    series_instance_uid, study_instance_uid : str
        (0020,000E) and (0020,000D).
    modality : str
        (0008,0060), e.g. ``"MR"`` or ``"US"``.
    frames : list of FrameRef
        Ordered along the slice normal.
    rows, cols : int
        Image size in pixels.
    row_spacing_mm, col_spacing_mm : float or None
        Pixel Spacing (0028,0030) is *row spacing \\ column spacing*: ``row_spacing_mm``
        is the vertical step between rows, ``col_spacing_mm`` the horizontal step
        between columns. ``None`` when the header has none.
    spacing_source : str
        ``"PixelSpacing"``, ``"ImagerPixelSpacing"``, ``"US regions"``, ``"user"``,
        ``"reformat"`` or ``"none"``.
    iop : tuple of 6 float or None
        Image Orientation (Patient) (0020,0037): first triplet = direction of
        increasing column, second = direction of increasing row (LPS).
    plane : str
        ``"coronal"``, ``"sagittal"``, ``"axial"``, ``"oblique"`` or ``"unknown"``.
    laterality : str or None
        ``"L"`` or ``"R"`` from Laterality (0020,0060) / Image Laterality (0020,0062)
        or the body part / series description, ``None`` when absent.
    laterality_source : str
        ``"header"`` when ``laterality`` came from the header, else ``"none"``.
    photometric : str
        Photometric Interpretation (0028,0004).
    samples_per_pixel : int
    description : str
        Series Description (0008,103E) (no patient data).
    slice_thickness_mm : float or None
    source : str
        The path the user gave that this series was found under (for reports).
    us_regions : list of dict
        Ultrasound regions (0018,6011) parsed to plain dicts, empty for MR.
    notes : list of str
        Human-readable notes from loading (duplicate positions, split series,
        ignored header values); never patient data.
    """

    series_instance_uid: str
    study_instance_uid: str
    modality: str
    frames: list[FrameRef]
    rows: int
    cols: int
    row_spacing_mm: float | None
    col_spacing_mm: float | None
    spacing_source: str
    iop: tuple[float, float, float, float, float, float] | None
    plane: str
    laterality: str | None
    laterality_source: str
    photometric: str = "MONOCHROME2"
    samples_per_pixel: int = 1
    description: str = ""
    slice_thickness_mm: float | None = None
    source: str = ""
    us_regions: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def n_slices(self) -> int:
        return len(self.frames)

    def load_frame(self, index: int) -> np.ndarray:
        """Decode one frame as float32 grayscale with the modality LUT applied.

        Returns
        -------
        ndarray, shape (rows, cols), float32
        """
        from kneemeasure.io.pixels import read_frame

        return read_frame(self.frames[index])

    def load_volume(self, indices: list[int] | None = None) -> np.ndarray:
        """Decode several frames (all by default) into a stack.

        Returns
        -------
        ndarray, shape (n, rows, cols), float32
        """
        idx = list(range(self.n_slices) if indices is None else indices)
        # one thread: the decoders (pylibjpeg-openjpeg, -libjpeg, RLE, numpy) hold the GIL,
        # so threads measured no faster; ``kneemeasure measure`` decodes in a worker
        # process instead (pipeline._start_loading)
        return np.stack([self.load_frame(i) for i in idx])


@dataclass
class InputError:
    """An input (file or series) that could not be measured, with a one-line reason."""

    source: str
    error: str
    series_instance_uid: str = ""
    study_instance_uid: str = ""
    sop_instance_uid: str = ""
    modality: str = ""


@dataclass
class Landmarks:
    """Detected or user-given landmarks on one 2D slice.

    Attributes
    ----------
    plateau_rc : (float, float)
        Tibial margin: where the tibial cortex (on the measured side) meets the
        articular surface, osteophytes excluded. (row, col) in pixels.
    meniscus_rc : (float, float)
        Outermost edge of the meniscal body. (row, col) in pixels.
    meniscus_inner_rc : (float, float) or None
        Innermost (apex) point of the meniscal body, for the body width.
    plateau_dir_rc : (float, float)
        Unit direction of the plateau surface in *physical* (row_mm, col_mm)
        space, pointing toward the measured (outer) side.
    confidence : float
        In [0, 1].
    plateau_direction_source : str
        ``"detected"``, ``"points"``, ``"image-row"``.
    notes : list of str
        Human-readable notes from detection (for review).
    plateau_surface_rc : ((float, float), (float, float)) or None
        The two plateau-surface points that gave ``plateau_dir_rc`` when
        ``plateau_direction_source == "points"`` (manual / corrected landmarks),
        kept so a corrections file can reproduce the direction exactly.
    """

    plateau_rc: tuple[float, float]
    meniscus_rc: tuple[float, float]
    meniscus_inner_rc: tuple[float, float] | None
    plateau_dir_rc: tuple[float, float]
    confidence: float
    plateau_direction_source: str = "detected"
    notes: list[str] = field(default_factory=list)
    plateau_surface_rc: tuple[tuple[float, float], tuple[float, float]] | None = None


#: Fixed column order of ``measurements.csv``.
CSV_COLUMNS: tuple[str, ...] = (
    "source",
    "study_instance_uid",
    "series_instance_uid",
    "sop_instance_uid",
    "instance_number",
    "modality",
    "laterality",
    "laterality_source",
    "side",
    "plateau_row_px",
    "plateau_col_px",
    "meniscus_row_px",
    "meniscus_col_px",
    "extrusion_mm",
    "meniscal_width_mm",
    "relative_extrusion_pct",
    "threshold_mm",
    "extruded",
    "max_extrusion_mm",
    "max_extrusion_instance",
    "confidence",
    "status",
    "error",
    "method",
    "plateau_direction_source",
    "row_spacing_mm",
    "col_spacing_mm",
    "spacing_source",
    "medial_image_side",
    "frame",
    "us_reference",
    "png",
    "kneemeasure_version",
)


@dataclass
class Measurement:
    """One row of ``measurements.csv``: one series (or file) and one side.

    Fields not applicable to a row are ``None`` and written as empty cells.
    """

    source: str
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    sop_instance_uid: str = ""
    instance_number: int | None = None
    modality: str = ""
    laterality: str = ""
    laterality_source: str = ""
    side: str = "medial"
    plateau_row_px: float | None = None
    plateau_col_px: float | None = None
    meniscus_row_px: float | None = None
    meniscus_col_px: float | None = None
    extrusion_mm: float | None = None
    meniscal_width_mm: float | None = None
    relative_extrusion_pct: float | None = None
    threshold_mm: float = 3.0
    extruded: bool | None = None
    max_extrusion_mm: float | None = None
    max_extrusion_instance: int | None = None
    confidence: float | None = None
    status: str = "error"
    error: str = ""
    method: str = "auto"
    plateau_direction_source: str = ""
    row_spacing_mm: float | None = None
    col_spacing_mm: float | None = None
    spacing_source: str = ""
    medial_image_side: str = ""
    frame: int | None = None
    us_reference: str = ""
    png: str = ""
    kneemeasure_version: str = ""
    #: Not written to the CSV: the landmarks and extra geometry for the PNG.
    landmarks: Landmarks | None = field(default=None, repr=False)
    #: Not written to the CSV: per-slice profile rows (instance, extrusion_mm, ...).
    slice_profile: list[dict] = field(default_factory=list, repr=False)
    #: Not written to the CSV: the 2D image the landmarks refer to (dropped after the PNG).
    image: np.ndarray | None = field(default=None, repr=False)
    #: Not written to the CSV: seconds per phase of the measurement (``run.json``).
    timings: dict[str, float] = field(default_factory=dict, repr=False)

    def csv_row(self) -> dict[str, str]:
        """The row as strings in :data:`CSV_COLUMNS` order (floats rounded sensibly)."""
        out: dict[str, str] = {}
        for name in CSV_COLUMNS:
            value = getattr(self, name)
            if value is None:
                out[name] = ""
            elif isinstance(value, bool):
                out[name] = "true" if value else "false"
            elif isinstance(value, float):
                digits = 3 if name.endswith(("_px", "_mm", "_pct")) else 4
                if name.endswith("spacing_mm"):
                    digits = 6
                out[name] = f"{value:.{digits}f}"
            else:
                out[name] = str(value)
        return out
