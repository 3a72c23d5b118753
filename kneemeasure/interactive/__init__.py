"""Manual and interactive landmarks (GitHub issue 4).

- :mod:`~kneemeasure.interactive.points`: ``--points`` / ``--points-file`` parsing,
  corrections files, :func:`measure_from_points` (no window).
- :mod:`~kneemeasure.interactive.controller`: :class:`MeasureController`, the
  backend-independent state and event handling of the measurement window.
- :mod:`~kneemeasure.interactive.window`: opening the real window (TkAgg), with
  a clear error when there is no display.
- :mod:`~kneemeasure.interactive.session`: the pipeline hook.

Nothing here imports a GUI toolkit at import time.
"""

from kneemeasure.interactive.points import (
    ManualPoints,
    build_points_option,
    landmarks_from_points,
    measure_from_points,
    parse_points,
    read_points_file,
    write_points_file,
)

__all__ = [
    "ManualPoints",
    "build_points_option",
    "landmarks_from_points",
    "measure_from_points",
    "parse_points",
    "read_points_file",
    "write_points_file",
]
