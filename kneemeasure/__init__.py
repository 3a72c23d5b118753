"""kneemeasure: medial meniscal extrusion (MME) on knee MRI and ultrasound DICOMs.

Data flows one way: ``io`` (load) -> ``detect`` (landmarks) -> ``measure``
(geometry in mm) -> ``report`` (PNG, CSV, run manifest). ``pipeline`` ties them
together and ``cli`` is a thin Typer wrapper around ``pipeline``.
"""

# the one place the version is written: pyproject.toml reads it from here
# (importlib.metadata would cost ~25 ms on every start of the command)
__version__ = "0.1.0"

__all__ = ["__version__"]
