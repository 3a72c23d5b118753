"""Header geometry: pixel spacing, slice normal, plane and the medial image side.

Conventions (DICOM PS3.3 C.7.6.2): Image Orientation (Patient) (0020,0037) holds
two direction cosines in LPS patient coordinates (x -> patient left,
y -> posterior, z -> head). The first triplet is the direction of increasing
column (along a row), the second the direction of increasing row. Pixel Spacing
(0028,0030) is *row spacing \\ column spacing*: element [0] is the vertical step
between rows, element [1] the horizontal step between columns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from kneemeasure.errors import LateralityError

__all__ = [
    "parse_pixel_spacing",
    "parse_iop",
    "slice_normal",
    "classify_plane",
    "medial_col_sign",
    "side_col_sign",
    "laterality_from_fibula",
]

#: Minimum |component| of the normal along one axis for a named plane.
PLANE_DOMINANCE = 0.8


def parse_pixel_spacing(
    value: object, *, tag: str = "PixelSpacing (0028,0030)"
) -> tuple[float, float]:
    """Parse and validate a Pixel Spacing-like value.

    Parameters
    ----------
    value : sequence of 2 numbers (or str "a\\b")
        Pixel Spacing (0028,0030), Imager Pixel Spacing (0018,1164) or the
        enhanced Pixel Measures value: *row spacing, column spacing* in mm.
    tag : str, keyword-only
        Tag name used in error messages.

    Returns
    -------
    (row_spacing_mm, col_spacing_mm) : tuple of float
        Vertical step between rows and horizontal step between columns, mm.

    Raises
    ------
    ValueError
        When the value does not hold two finite positive numbers.
    """
    if isinstance(value, (str, bytes)):
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        items: Sequence[object] = [p for p in text.split("\\") if p.strip()]
    elif isinstance(value, Sequence):
        items = value
    else:
        raise ValueError(f"{tag}: expected two numbers 'row\\col', got {value!r}")
    if len(items) != 2:
        raise ValueError(f"{tag}: expected two numbers 'row\\col', got {len(items)} value(s)")
    try:
        row_mm, col_mm = (float(v) for v in items)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{tag}: values are not numbers ({value!r})") from exc
    if not (math.isfinite(row_mm) and math.isfinite(col_mm)) or row_mm <= 0 or col_mm <= 0:
        raise ValueError(f"{tag}: spacing must be finite and > 0 mm, got {row_mm!r}\\{col_mm!r}")
    return row_mm, col_mm


def parse_iop(value: object) -> tuple[float, float, float, float, float, float] | None:
    """Parse Image Orientation (Patient) (0020,0037); ``None`` when unusable.

    Returns
    -------
    tuple of 6 float or None
        ``(cx, cy, cz, rx, ry, rz)``: column direction then row direction,
        each normalised to unit length. ``None`` when the value is missing,
        not six finite numbers, or the two vectors are degenerate/parallel.
    """
    if value is None:
        return None
    try:
        vals = [float(v) for v in value]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    if len(vals) != 6 or not all(math.isfinite(v) for v in vals):
        return None
    c = np.asarray(vals[:3])
    r = np.asarray(vals[3:])
    nc, nr = float(np.linalg.norm(c)), float(np.linalg.norm(r))
    if nc < 1e-6 or nr < 1e-6:
        return None
    c, r = c / nc, r / nr
    if float(np.linalg.norm(np.cross(c, r))) < 0.5:
        return None
    return tuple(float(v) for v in (*c, *r))  # type: ignore[return-value]


def _as_iop(iop: Sequence[float]) -> np.ndarray:
    arr = np.asarray(iop, dtype=float)
    if arr.shape != (6,) or not np.all(np.isfinite(arr)):
        raise ValueError(
            f"ImageOrientationPatient (0020,0037): expected 6 finite numbers, got {iop!r}"
        )
    return arr


def slice_normal(iop: Sequence[float]) -> np.ndarray:
    """Unit normal of the image plane, ``cross(iop[0:3], iop[3:6])`` in LPS.

    Parameters
    ----------
    iop : sequence of 6 float
        Image Orientation (Patient): column direction, then row direction.

    Returns
    -------
    ndarray, shape (3,)
        Unit vector. Frames are ordered by ``ImagePositionPatient · normal`` (mm).

    Notes
    -----
    ``iop[0:3]`` is the direction of increasing column (DICOM calls it the
    *row* direction cosine) and ``iop[3:6]`` the direction of increasing row
    (the *column* direction cosine), so this is DICOM's ``row x column``
    normal. For the coronal IOP ``(1,0,0, 0,0,-1)`` it is ``(0,1,0)``
    (posterior), for the sagittal ``(0,1,0, 0,0,-1)`` it is ``(-1,0,0)``.
    """
    arr = _as_iop(iop)
    n = np.cross(arr[:3], arr[3:])
    norm = float(np.linalg.norm(n))
    if norm < 1e-6:
        raise ValueError(
            "ImageOrientationPatient (0020,0037): the two direction cosines are parallel"
        )
    return n / norm


def classify_plane(iop: Sequence[float] | None) -> str:
    """Name the image plane from the dominant axis of the slice normal.

    Returns
    -------
    str
        ``"coronal"`` (|n_y| > 0.8), ``"sagittal"`` (|n_x| > 0.8), ``"axial"``
        (|n_z| > 0.8), ``"oblique"`` otherwise, ``"unknown"`` without IOP.
    """
    if iop is None:
        return "unknown"
    try:
        n = slice_normal(iop)
    except ValueError:
        return "unknown"
    ax, ay, az = (abs(float(v)) for v in n)
    if ay > PLANE_DOMINANCE:
        return "coronal"
    if ax > PLANE_DOMINANCE:
        return "sagittal"
    if az > PLANE_DOMINANCE:
        return "axial"
    return "oblique"


def _norm_laterality(laterality: str) -> str:
    lat = str(laterality).strip().upper()[:1]
    if lat not in ("L", "R"):
        raise LateralityError(
            f"laterality {laterality!r} is not 'L' or 'R'; pass --laterality L or --laterality R"
        )
    return lat


def medial_col_sign(laterality: str, iop: Sequence[float]) -> int:
    """Column direction (+1 increasing, -1 decreasing) that points medially.

    Medial is toward the body midline: +x (patient left) for a right knee,
    -x for a left knee. The direction of increasing column is ``iop[0:3]``,
    so the sign is ``sign(iop[0]) * (+1 for 'R', -1 for 'L')``.

    Parameters
    ----------
    laterality : {"L", "R"}
        Knee side.
    iop : sequence of 6 float
        Image Orientation (Patient).

    Returns
    -------
    int
        +1 when medial is the direction of increasing column, else -1.

    Raises
    ------
    LateralityError
        When the laterality is not L/R, or the column direction has |x| < 0.5
        (the image columns do not run left-right, e.g. a sagittal image).

    Examples
    --------
    >>> medial_col_sign("R", (1, 0, 0, 0, 0, -1))
    1
    >>> medial_col_sign("L", (1, 0, 0, 0, 0, -1))
    -1
    """
    lat = _norm_laterality(laterality)
    arr = _as_iop(iop)
    cx = float(arr[0]) / max(float(np.linalg.norm(arr[:3])), 1e-12)
    if abs(cx) < 0.5:
        raise LateralityError(
            f"image columns do not run left-right (column direction x-cosine {cx:.2f}, "
            "ImageOrientationPatient (0020,0037)); check the plane is coronal or pass --laterality "
            "and a coronal series"
        )
    medial_x = 1.0 if lat == "R" else -1.0
    return 1 if cx * medial_x > 0 else -1


def side_col_sign(laterality: str, iop: Sequence[float], side: str) -> int:
    """Column direction (+1/-1) toward the given compartment side.

    Parameters
    ----------
    laterality : {"L", "R"}
    iop : sequence of 6 float
    side : {"medial", "lateral"}

    Returns
    -------
    int
        ``medial_col_sign`` for ``"medial"``, its negative for ``"lateral"``.
    """
    sign = medial_col_sign(laterality, iop)
    if side == "medial":
        return sign
    if side == "lateral":
        return -sign
    raise ValueError(f"side must be 'medial' or 'lateral', got {side!r}")


def laterality_from_fibula(fibula_col_sign: int, iop: Sequence[float]) -> str:
    """Knee side from where the fibular head lies (the fibula is lateral).

    Parameters
    ----------
    fibula_col_sign : {+1, -1}
        +1 when the fibular head lies toward increasing column from the knee
        centre, -1 toward decreasing column.
    iop : sequence of 6 float
        Image Orientation (Patient).

    Returns
    -------
    {"L", "R"}
        Lateral = -x (patient right) for a right knee, +x for a left knee.

    Raises
    ------
    LateralityError
        When the column direction has |x| < 0.5 or the sign is not +-1.
    """
    if fibula_col_sign not in (1, -1):
        raise ValueError(f"fibula_col_sign must be +1 or -1, got {fibula_col_sign!r}")
    # The fibula is lateral, so the medial side is the opposite column direction.
    # medial_col_sign('R') == sign(cx); choose the side that makes medial == -fibula.
    return "R" if medial_col_sign("R", iop) == -fibula_col_sign else "L"
