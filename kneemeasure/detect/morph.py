"""Binary morphology with disks, exact and faster than scipy's for larger radii.

``scipy.ndimage.binary_erosion`` checks every footprint element at every mask pixel
(a 3 mm disk on a 0.5 mm grid has 113). Pixels whose whole surrounding square lies in
the mask are certainly kept; a square minimum filter (separable, fast) finds them, and
scipy's erosion then runs only on the band near the mask's edge (its ``mask=``
argument). Dilation is the erosion of the complement. The results equal scipy's
pixel for pixel (tests/test_morph.py); for radii of 4-6 pixels they take a third to
a half of the time.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["binary_dilation_disk", "binary_erosion_disk", "binary_opening_disk", "disk"]

_FAST_FROM = 3  # below this radius scipy's own loop is as fast


def disk(radius: int) -> np.ndarray:
    """Boolean disk footprint ``x^2 + y^2 <= radius^2``, shape (2 radius + 1,) * 2."""
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return x * x + y * y <= radius * radius


def binary_erosion_disk(mask: np.ndarray, radius: int, *, border_value: int = 0) -> np.ndarray:
    """``ndi.binary_erosion(mask, structure=disk(radius), border_value=border_value)``.

    Parameters
    ----------
    mask : ndarray of bool, shape (M, N)
    radius : int
        Disk radius in pixels (>= 1).
    border_value : {0, 1}, keyword-only
        Value assumed outside the image.

    Returns
    -------
    ndarray of bool, shape (M, N)
    """
    mask = np.asarray(mask, bool)
    if radius < _FAST_FROM:
        return ndi.binary_erosion(mask, structure=disk(radius), border_value=border_value)
    sure = ndi.minimum_filter(mask.view(np.uint8), size=2 * radius + 1, mode="constant",
                              cval=border_value).view(bool)  # fmt: skip
    return ndi.binary_erosion(mask, structure=disk(radius), mask=mask & ~sure,
                              border_value=border_value)  # fmt: skip


def binary_dilation_disk(mask: np.ndarray, radius: int) -> np.ndarray:
    """``ndi.binary_dilation(mask, structure=disk(radius))`` (nothing outside the image)."""
    mask = np.asarray(mask, bool)
    if radius < _FAST_FROM:
        return ndi.binary_dilation(mask, structure=disk(radius))
    return ~binary_erosion_disk(~mask, radius, border_value=1)


def binary_opening_disk(mask: np.ndarray, radius: int) -> np.ndarray:
    """``ndi.binary_opening(mask, structure=disk(radius))``: erosion, then dilation."""
    return binary_dilation_disk(binary_erosion_disk(mask, radius), radius)
