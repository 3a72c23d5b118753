"""Ultrasound calibration from the Sequence of Ultrasound Regions (0018,6011).

An ultrasound image carries no Pixel Spacing (0028,0030); each rectangular
region of the image that holds calibrated data is described by one item of
(0018,6011) instead:

- bounds: Region Location Min X0 / Min Y0 / Max X1 / Max Y1 (0018,6018..601E),
  pixel columns (X) and rows (Y), inclusive;
- Region Spatial Format (0018,6012): 1 = 2D (tissue or colour flow image),
  2 = M-mode, 3 = spectral, 4 = waveform, 0 = none;
- Region Data Type (0018,6014): 1 = tissue, 2 = colour flow, 3/4 = PW/CW
  spectral Doppler, 5.. = traces, 13 = grey bar, 14 = colour bar, ...;
- Physical Units X / Y Direction (0018,6024 / 6026): 3 = cm, 4 = seconds, ...;
- Physical Delta X / Y (0018,602C / 602E): the physical size of one pixel step
  along X (between columns) and Y (between rows) in those units.

Only unit code 3 (cm) is a length; it is converted to mm (x 10). Any other
unit gives ``None`` spacing: such a region cannot calibrate a distance.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from kneemeasure.errors import MissingSpacingError

#: Physical Units code for centimetres (PS3.3 C.8.5.5.1.15).
UNITS_CM = 3
#: Region Spatial Format 2D (PS3.3 C.8.5.5.1.1).
SPATIAL_2D = 1
#: Region Data Types that are 2D images of tissue (1) or colour flow over tissue (2).
IMAGE_DATA_TYPES = (1, 2)


@dataclass(frozen=True)
class UsRegion:
    """One item of the Sequence of Ultrasound Regions (0018,6011).

    Attributes
    ----------
    index : int
        0-based position of the item in the sequence.
    x0, y0, x1, y1 : int
        Region bounds in pixels, inclusive: columns ``x0..x1``, rows ``y0..y1``
        (0018,6018 / 601A / 601C / 601E), as stored (not clipped to the image).
    spatial_format : int
        Region Spatial Format (0018,6012); 1 = 2D.
    data_type : int
        Region Data Type (0018,6014); 1 = tissue.
    row_spacing_mm : float or None
        Physical Delta Y (0018,602E) in mm: the step between rows. ``None``
        unless Physical Units Y Direction is 3 (cm) and the value is positive.
    col_spacing_mm : float or None
        Physical Delta X (0018,602C) in mm: the step between columns, same rule.
    units_x, units_y : int
        Physical Units X / Y Direction (0018,6024 / 6026).
    """

    index: int
    x0: int
    y0: int
    x1: int
    y1: int
    spatial_format: int
    data_type: int
    row_spacing_mm: float | None
    col_spacing_mm: float | None
    units_x: int
    units_y: int


def _int(item, keyword: str, default: int = 0) -> int:
    value = item.get(keyword)
    if value is None or value == "":
        return default
    return int(value)


def _spacing_mm(delta, units: int) -> float | None:
    if delta is None or delta == "" or units != UNITS_CM:
        return None
    value = float(delta) * 10.0
    if not math.isfinite(value) or value <= 0:
        return None
    return value


def parse_regions(ds) -> list[dict]:
    """Parse (0018,6011) of a dataset into plain dicts (``asdict(UsRegion)``).

    Parameters
    ----------
    ds : pydicom.Dataset
        A dataset (pixel data not needed).

    Returns
    -------
    list of dict
        One dict per region item, in sequence order; empty when the dataset has
        no Sequence of Ultrasound Regions.
    """
    items = ds.get("SequenceOfUltrasoundRegions") or []
    regions: list[dict] = []
    for index, item in enumerate(items):
        units_x = _int(item, "PhysicalUnitsXDirection")
        units_y = _int(item, "PhysicalUnitsYDirection")
        region = UsRegion(
            index=index,
            x0=_int(item, "RegionLocationMinX0"),
            y0=_int(item, "RegionLocationMinY0"),
            x1=_int(item, "RegionLocationMaxX1"),
            y1=_int(item, "RegionLocationMaxY1"),
            spatial_format=_int(item, "RegionSpatialFormat"),
            data_type=_int(item, "RegionDataType"),
            row_spacing_mm=_spacing_mm(item.get("PhysicalDeltaY"), units_y),
            col_spacing_mm=_spacing_mm(item.get("PhysicalDeltaX"), units_x),
            units_x=units_x,
            units_y=units_y,
        )
        regions.append(asdict(region))
    return regions


def _area(region: dict) -> int:
    return max(0, region["x1"] - region["x0"] + 1) * max(0, region["y1"] - region["y0"] + 1)


def choose_image_region(regions: list[dict]) -> dict:
    """Choose the calibrated 2D tissue region that holds the image.

    Candidates are regions with Region Spatial Format 1 (2D), Region Data Type
    1 (tissue) or 2 (colour flow), both spacings in mm and a non-empty area;
    spectral Doppler, M-mode, waveform and bar regions are never chosen. Of the
    candidates the largest wins; on a tie (dual-pane images) the first in the
    sequence.

    Parameters
    ----------
    regions : list of dict
        As returned by :func:`parse_regions`.

    Returns
    -------
    dict
        The chosen region.

    Raises
    ------
    MissingSpacingError
        When no region is usable.
    """
    candidates = [
        r
        for r in regions
        if r["spatial_format"] == SPATIAL_2D
        and r["data_type"] in IMAGE_DATA_TYPES
        and r["row_spacing_mm"] is not None
        and r["col_spacing_mm"] is not None
        and _area(r) > 0
    ]
    if not candidates:
        raise MissingSpacingError(
            f"no calibrated 2D region in (0018,6011) Sequence of Ultrasound Regions "
            f"({len(regions)} region(s), none 2D tissue in cm); pass --spacing-mm ROW COL"
        )
    return max(candidates, key=lambda r: (_area(r), -r["index"]))
