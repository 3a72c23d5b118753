"""One exception family for kneemeasure.

Every message says what failed, which file or DICOM tag is involved, and how to
fix it where a fix exists. Only the CLI turns these into a stderr line and an
exit code; library code raises them and never prints.
"""

from __future__ import annotations


class KneeMeasureError(Exception):
    """Base class of all kneemeasure errors.

    Parameters
    ----------
    message : str
        One line: what failed, the tag, and the fix.
    source : str, optional
        File or folder the error refers to (shown before the message).
    """

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source

    def __str__(self) -> str:
        if self.source:
            return f"{self.source}: {self.message}"
        return self.message


class UsageError(KneeMeasureError):
    """Bad command-line usage or option values (exit code 2)."""


class NotDicomError(KneeMeasureError):
    """The file is not a DICOM Part 10 file (and cannot be read as raw DICOM)."""


class DicomReadError(KneeMeasureError):
    """The file is DICOM but could not be parsed (truncated, corrupt)."""


class NoPixelDataError(KneeMeasureError):
    """The dataset has no Pixel Data (7FE0,0010)."""


class DecodeError(KneeMeasureError):
    """The pixel data could not be decoded (missing or failing decoder plugin)."""


class MissingSpacingError(KneeMeasureError):
    """No usable pixel spacing (0028,0030) / ultrasound calibration."""


class WrongPlaneError(KneeMeasureError):
    """The series is not coronal (and cannot be reformatted to coronal)."""


class UnsupportedImageError(KneeMeasureError):
    """The image kind is not supported (colour MRI, single slice, constant image...)."""


class LateralityError(KneeMeasureError):
    """The medial side could not be determined."""


class DetectionError(KneeMeasureError):
    """Automatic landmark detection failed on this image."""
