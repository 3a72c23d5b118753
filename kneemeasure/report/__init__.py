"""Outputs: annotated PNG, measurements CSV, run manifest (run.json).

Names are imported lazily: writing a CSV or the manifest does not load the PNG
renderer (Pillow), and the PNGs never load matplotlib (only the interactive
window does).
"""

from __future__ import annotations

from kneemeasure._lazy import lazy_exports

_EXPORTS = {
    "read_rows": "kneemeasure.report.csvout",
    "write_rows": "kneemeasure.report.csvout",
    "write_manifest": "kneemeasure.report.manifest",
    "render_error_png": "kneemeasure.report.png",
    "render_measurement_png": "kneemeasure.report.png",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
