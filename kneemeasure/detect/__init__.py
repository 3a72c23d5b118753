"""Automatic landmark detection on coronal knee MRI (pure functions on numpy arrays).

Public API: :func:`select_reference_slice`, :func:`detect_landmarks`,
:func:`infer_fibula_side`.

The names are imported on first use, so that importing a numpy-only submodule
(:mod:`kneemeasure.detect.grid`, used while decoding) does not load scipy and
scikit-image.
"""

from __future__ import annotations

from kneemeasure._lazy import lazy_exports

_EXPORTS = {
    "SliceChoice": "kneemeasure.detect.slice_select",
    "detect_landmarks": "kneemeasure.detect.landmarks",
    "infer_fibula_side": "kneemeasure.detect.laterality",
    "select_reference_slice": "kneemeasure.detect.slice_select",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
