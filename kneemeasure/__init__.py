"""kneemeasure: medial meniscal extrusion (MME) on knee MRI and ultrasound DICOMs.

Data flows one way: ``io`` (load) -> ``detect`` (landmarks) -> ``measure``
(geometry in mm) -> ``report`` (PNG, CSV, run manifest). ``pipeline`` ties them
together and ``cli`` is a thin Typer wrapper around ``pipeline``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kneemeasure")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0"

__all__ = ["__version__"]
