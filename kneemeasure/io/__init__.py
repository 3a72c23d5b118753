"""Loading: DICOM discovery (headers only), geometry, pixel decoding, reformatting.

Public entry points: :func:`discover_series`, :func:`read_frame`,
:func:`read_frame_color`, the geometry helpers and :func:`reformat_to_coronal`.
"""

from kneemeasure.io.discover import discover_series, open_dicom, sniff_dicom
from kneemeasure.io.geometry import (
    classify_plane,
    laterality_from_fibula,
    medial_col_sign,
    parse_iop,
    parse_pixel_spacing,
    side_col_sign,
    slice_normal,
)
from kneemeasure.io.pixels import read_frame, read_frame_color, to_luminance

__all__ = [
    "discover_series",
    "open_dicom",
    "sniff_dicom",
    "classify_plane",
    "laterality_from_fibula",
    "medial_col_sign",
    "parse_iop",
    "parse_pixel_spacing",
    "side_col_sign",
    "slice_normal",
    "read_frame",
    "read_frame_color",
    "to_luminance",
]
