"""Automatic landmark detection on coronal knee MRI (pure functions on numpy arrays).

Public API: :func:`select_reference_slice`, :func:`detect_landmarks`,
:func:`infer_fibula_side`.
"""

from kneemeasure.detect.landmarks import detect_landmarks
from kneemeasure.detect.laterality import infer_fibula_side
from kneemeasure.detect.slice_select import SliceChoice, select_reference_slice

__all__ = ["SliceChoice", "detect_landmarks", "infer_fibula_side", "select_reference_slice"]
