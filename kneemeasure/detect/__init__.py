"""Automatic landmark detection on coronal knee MRI (pure functions on numpy arrays).

Public API: :func:`select_reference_slice`, :func:`detect_landmarks`,
:func:`infer_fibula_side`.

The names are imported on first use, so that importing a numpy-only submodule
(:mod:`kneemeasure.detect.grid`, used while decoding) does not load scipy and
scikit-image.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SliceChoice": "kneemeasure.detect.slice_select",
    "detect_landmarks": "kneemeasure.detect.landmarks",
    "infer_fibula_side": "kneemeasure.detect.laterality",
    "select_reference_slice": "kneemeasure.detect.slice_select",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kneemeasure.detect' has no attribute {name!r}")
