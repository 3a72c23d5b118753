"""Outputs: annotated PNG, measurements CSV, run manifest (run.json)."""

from kneemeasure.report.csvout import read_rows, write_rows
from kneemeasure.report.manifest import write_manifest
from kneemeasure.report.png import render_error_png, render_measurement_png

__all__ = [
    "read_rows",
    "render_error_png",
    "render_measurement_png",
    "write_manifest",
    "write_rows",
]
