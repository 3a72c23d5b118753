"""Outputs: annotated PNG, measurements CSV, run manifest (run.json).

Names are imported lazily: writing a CSV or the manifest does not load the PNG
renderer (Pillow), and the PNGs never load matplotlib (only the interactive
window does).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "read_rows": "kneemeasure.report.csvout",
    "write_rows": "kneemeasure.report.csvout",
    "write_manifest": "kneemeasure.report.manifest",
    "render_error_png": "kneemeasure.report.png",
    "render_measurement_png": "kneemeasure.report.png",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kneemeasure.report' has no attribute {name!r}")
