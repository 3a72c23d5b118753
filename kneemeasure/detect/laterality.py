"""Laterality from anatomy: which image side holds the fibular head."""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

from kneemeasure.detect.coarse import (
    CoarseKnee,
    _body_mask,
    _disk,
    _ridge,
    analyse_knee,
    downsample_volume,
)

__all__ = ["infer_fibula_side"]


class _Region:
    """The few ``skimage.measure.regionprops`` properties the fibula vote uses.

    Computed here because ``regionprops`` imports ``scipy.spatial`` (~0.15 s on every
    start of the command) for its convex hull. Area, bounding box, coordinates and
    solidity are the same; centroid and eccentricity agree to ~1e-14 (summation
    order), far below what the vote's thresholds can tell apart (see
    tests/test_laterality_regions.py). Everything but the area is computed on first
    use: most regions fail the area test.
    """

    def __init__(self, lab: np.ndarray, label: int, bbox_slices: tuple[slice, slice],
                 area: int) -> None:  # fmt: skip
        self.label = label
        self.area = int(area)
        self._lab = lab
        self._sl = bbox_slices
        self.bbox = (bbox_slices[0].start, bbox_slices[1].start, bbox_slices[0].stop,
                     bbox_slices[1].stop)  # fmt: skip

    @functools.cached_property
    def image(self) -> np.ndarray:
        return self._lab[self._sl] == self.label

    @functools.cached_property
    def _local(self) -> tuple[np.ndarray, np.ndarray]:
        return np.nonzero(self.image)

    @property
    def coords(self) -> np.ndarray:
        rr, cc = self._local
        return np.column_stack([rr + self.bbox[0], cc + self.bbox[1]])

    @property
    def centroid(self) -> tuple[float, float]:
        rr, cc = self._local
        return (float(rr.mean() + self.bbox[0]), float(cc.mean() + self.bbox[1]))

    @property
    def eccentricity(self) -> float:
        """Of the ellipse with the region's second central moments (0 = circle)."""
        rr, cc = self._local
        dr, dc = rr - rr.mean(), cc - cc.mean()
        cov = np.array([[np.mean(dr * dr), np.mean(dr * dc)], [np.mean(dr * dc), np.mean(dc * dc)]])
        l2, l1 = np.clip(np.linalg.eigvalsh(cov), 0.0, None)
        return 0.0 if l1 == 0 else float(np.sqrt(1.0 - l2 / l1))

    @property
    def solidity(self) -> float:
        """Area over the pixel count of the convex hull image (as scikit-image)."""
        return self.area / float(_convex_hull_image(self.image).sum())


def _hull_2d(points: np.ndarray) -> np.ndarray:
    """Vertices of the convex hull of 2-D points (Andrew's monotone chain, no collinear)."""
    pts = np.unique(points, axis=0)  # sorted by first, then second coordinate
    if len(pts) < 3:
        return pts
    seq = [tuple(p) for p in pts.tolist()]  # Python floats: the same arithmetic, faster

    def half(seq: list[tuple[float, float]]) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for px, py in seq:
            while len(out) >= 2:
                (ax, ay), (bx, by) = out[-2], out[-1]
                if (bx - ax) * (py - ay) - (by - ay) * (px - ax) > 0:
                    break
                out.pop()
            out.append((px, py))
        return out

    lower, upper = half(seq), half(seq[::-1])
    return np.array(lower[:-1] + upper[:-1])


def _run_ends(major: np.ndarray, minor: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For ``np.nonzero`` output sorted by ``major``: each major value, min and max minor."""
    values, first = np.unique(major, return_index=True)
    last = np.append(first[1:], major.size) - 1
    return values, minor[first], minor[last]


def _convex_hull_image(image: np.ndarray) -> np.ndarray:
    """``skimage.morphology.convex_hull_image(image)`` without ``scipy.spatial``.

    The hull of the pixels' edge midpoints (each pixel (r, c) adds (r +- 0.5, c) and
    (r, c +- 0.5)); pixels whose centres lie inside it or on its border are set.
    """
    from skimage.measure import grid_points_in_poly

    # only the first and last pixel of every row and column can be on the hull
    ends = np.zeros(image.shape, bool)
    rows, lo, hi = _run_ends(*np.nonzero(image))  # row-major: columns ascend per row
    ends[rows, lo] = ends[rows, hi] = True
    cols, lo, hi = _run_ends(*np.nonzero(image.T))
    ends[lo, cols] = ends[hi, cols] = True
    pts = np.argwhere(ends).astype(float)
    offsets = np.array([[-0.5, 0.0], [0.5, 0.0], [0.0, -0.5], [0.0, 0.5]])
    hull = _hull_2d((pts[:, None, :] + offsets).reshape(-1, 2))
    return grid_points_in_poly(image.shape, hull, binarize=False) >= 1


def _regions(lab: np.ndarray) -> list[_Region]:
    """One :class:`_Region` per label of ``lab`` (1..n), in label order."""
    areas = np.bincount(lab.ravel())
    return [_Region(lab, k, sl, areas[k]) for k, sl in enumerate(ndi.find_objects(lab), start=1)
            if sl is not None]  # fmt: skip


_RING_RADII_MM = (5.5, 7.0, 8.5, 10.0, 11.5, 13.0)
_SEARCH_BELOW_MM = (8.0, 40.0)  # head centre below the plateau
_SEARCH_SIDE_MM = 15.0  # head centre within this of the tibia's outer column


def _crop_shape(step: float) -> tuple[int, int]:
    pad = 2 * int(round(14.0 / step))
    return (pad + int(round((_SEARCH_BELOW_MM[1] - _SEARCH_BELOW_MM[0]) / step)) + 1,
            pad + int(round(2 * _SEARCH_SIDE_MM / step)) + 1)


def _ring_kernels(shape: tuple[int, int], step: float) -> tuple[np.ndarray, np.ndarray]:
    """FFTs of ring-sector kernels (7 upper sectors of 45 degrees) and interior disks."""
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    yy = np.where(yy > h // 2, yy - h, yy) * step
    xx = np.where(xx > w // 2, xx - w, xx) * step
    rad = np.hypot(yy, xx)
    ang = np.degrees(np.arctan2(-yy, xx)) % 360.0  # 90 = up (toward lower rows)
    sec = np.floor(((ang + 22.5) % 360.0) / 45.0).astype(int)  # 0 = toward +col, 6 = down
    rings, disks = [], []
    for r_mm in _RING_RADII_MM:
        ring = np.abs(rad - r_mm) <= 0.75 * max(step, 1.0)
        ks = []
        for k in (0, 1, 2, 3, 4, 5, 7):
            m = (ring & (sec == k)).astype(float)
            ks.append(np.fft.rfft2(m / max(m.sum(), 1.0)))
        rings.append(ks)
        d = (rad <= 0.5 * r_mm).astype(float)
        disks.append(np.fft.rfft2(d / d.sum()))
    return np.array(rings), np.array(disks)


def _ring_side_scores(
    ridge: np.ndarray, plateau_row: float, outer_cols: tuple[int, int], step: float,
    kernels: tuple[np.ndarray, np.ndarray],
) -> dict[int, float]:
    """Best fibular-head ring score beside each outer tibial column (-1: low, +1: high)."""
    h, w = ridge.shape
    rings, disks = kernels
    kh, kw = _crop_shape(step)
    out = {}
    for side, oc in ((-1, outer_cols[0]), (1, outer_cols[1])):
        r0 = int(round(plateau_row - (14.0 - _SEARCH_BELOW_MM[0]) / step))
        c0 = int(round(oc - (14.0 + _SEARCH_SIDE_MM) / step))
        crop = np.zeros((kh, kw))
        rr = slice(max(r0, 0), min(r0 + kh, h))
        cc = slice(max(c0, 0), min(c0 + kw, w))
        crop[rr.start - r0 : rr.stop - r0, cc.start - c0 : cc.stop - c0] = ridge[rr, cc]
        f = np.fft.rfft2(crop)
        sec = np.fft.irfft2(np.conj(rings) * f[None, None], s=(kh, kw))  # (radii, 7, kh, kw)
        inner = np.fft.irfft2(np.conj(disks) * f[None], s=(kh, kw))
        sec_sorted = np.sort(sec, axis=1)
        score = sec_sorted[:, 1] - inner  # second-weakest sector minus the interior
        m = int(round(14.0 / step))
        ch = int(round((_SEARCH_BELOW_MM[1] - _SEARCH_BELOW_MM[0]) / step))
        cw = int(round(2 * _SEARCH_SIDE_MM / step))
        win = score[:, m : m + ch + 1, m : m + cw + 1].copy()
        # the head lies wholly below the plateau: its top at least 4 mm under it
        for k, r_mm in enumerate(_RING_RADII_MM):
            first = int(np.ceil((r_mm + 4.0 - _SEARCH_BELOW_MM[0]) / step))
            win[k, : max(first, 0)] = -np.inf
        out[side] = max(float(win.max()), 0.0) if win.size else 0.0
    return out


def infer_fibula_side(
    volume: np.ndarray,
    *,
    row_spacing_mm: float,
    col_spacing_mm: float,
    posterior_sign: int | None = None,
    coarse: CoarseKnee | None = None,
    slice_spacing_mm: float | None = None,
) -> tuple[int, float]:
    """Column side of the fibular head (the lateral side of the knee).

    Parameters
    ----------
    volume : ndarray, shape (n_slices, rows, cols)
        Coronal slices ordered along the slice normal.
    row_spacing_mm, col_spacing_mm : float, keyword-only
        Pixel Spacing (0028,0030) [0] and [1] (mm).
    posterior_sign : {+1, -1, None}, keyword-only
        +1 when increasing slice index goes posterior (slice normal toward +y, LPS),
        -1 when anterior; only the posterior half is then searched. None: all slices.
    coarse : CoarseKnee, optional, keyword-only
        A coarse pass of the same volume to reuse (bone masks on the 1 mm grid).
    slice_spacing_mm : float, optional, keyword-only
        Distance between slice centres (mm); thin planes are then subsampled to about
        2 mm (see :func:`~kneemeasure.detect.coarse.analyse_knee`).

    Returns
    -------
    side : int
        +1 when the fibular head lies toward increasing column, -1 otherwise
        (0 when nothing fibula-like was found or the confidence is below 0.2).
    confidence : float
        In [0, 1]; 0 when no candidate was found.

    Notes
    -----
    On each searched slice (1 mm pixels, coarse femur/tibia pair) other bone-like
    regions of 80–1500 mm² that are roundish (eccentricity < 0.9, solidity > 0.8), whose
    top lies 3–40 mm below the tibial plateau, that sit beside the tibia (centroid more
    than a quarter of the tibial width from its centre) and come within 10 mm of it are
    fibular-head candidates. Each votes for its side with weight ``area × solidity``;
    confidence is the vote margin scaled by the evidence, halved on fat-suppressed
    series (dark marrow), where the head is often missed or confused with fat.
    """
    vol = np.asarray(volume)
    if vol.ndim == 2:
        vol = vol[None]
    n = vol.shape[0]
    if posterior_sign in (1, -1) and n >= 4:
        half = list(range(n // 2, n)) if posterior_sign > 0 else list(range(0, (n + 1) // 2))
    else:
        half = list(range(n))
    if coarse is None or len(coarse.slices) != n:
        coarse = analyse_knee(vol, row_spacing_mm=row_spacing_mm, col_spacing_mm=col_spacing_mm,
                              indices=half, slice_spacing_mm=slice_spacing_mm)
    if coarse.polarity < 0:
        return _ring_vote(vol, coarse, half, row_spacing_mm, col_spacing_mm)
    votes = {1: 0.0, -1: 0.0}
    step = coarse.step_mm
    for i in half:
        cs = coarse.slices[i]
        if cs.tibia is None or cs.femur is None:
            continue
        norm = ndi.gaussian_filter(coarse.iso[i], 0.5)
        body = _body_mask(norm)
        b = norm if coarse.polarity > 0 else 1.0 - norm
        if body.sum() < 100:
            continue
        mask = (b > threshold_otsu(b[body])) & body & ~cs.tibia & ~cs.femur
        tib = cs.tibia
        top = np.where(tib.any(axis=0), np.argmax(tib, axis=0), -1)
        plateau_row = float(np.median(top[top >= 0]))
        # only the head: the neck and shaft continue down and would make it elongated
        mask[int(plateau_row + 32.0 / step) :] = False
        mask = ndi.binary_opening(mask, structure=_disk(1))
        lab, _ = ndi.label(mask)
        tcols = np.nonzero(tib.any(axis=0))[0]
        t_lo, t_hi = tcols.min(), tcols.max()
        t_mid, t_w = 0.5 * (t_lo + t_hi), (t_hi - t_lo)
        dist_tib = None
        for rp in _regions(lab):
            area = rp.area * step**2
            if not 80.0 <= area <= 1500.0:
                continue
            below = (rp.bbox[0] - plateau_row) * step
            if not 3.0 <= below <= 40.0:
                continue
            cc = rp.centroid[1]
            if abs(cc - t_mid) < 0.25 * t_w:
                continue
            if rp.eccentricity > 0.9 or rp.solidity < 0.8:
                continue
            if dist_tib is None:
                dist_tib = ndi.distance_transform_edt(~tib) * step
            coords = rp.coords
            if dist_tib[coords[:, 0], coords[:, 1]].min() > 10.0:
                continue
            votes[1 if cc > t_mid else -1] += area * rp.solidity
    total = votes[1] + votes[-1]
    if total <= 0:
        return 0, 0.0
    side = 1 if votes[1] >= votes[-1] else -1
    margin = abs(votes[1] - votes[-1]) / total
    evidence = min(1.0, total / 600.0)
    conf = margin * (0.5 + 0.5 * evidence)
    if coarse.polarity < 0:
        # fat-suppressed marrow looks like the surrounding fat: candidates are unreliable
        conf *= 0.5
    if conf < 0.2:  # unsure: better no answer than a wrong side
        return 0, float(conf)
    return side, float(np.clip(conf, 0.0, 1.0))


_FINE_MM = 0.5
_RING_MIN = 0.3  # best ring score (ridge in units of its 95th percentile)
_RING_DIFF = 0.08  # side difference that counts as a vote


def _ring_vote(
    vol: np.ndarray, coarse: CoarseKnee, slices: list[int], row_spacing_mm: float,
    col_spacing_mm: float,
) -> tuple[int, float]:
    """Fibular side on dark-marrow contrasts from cortex rings beside the tibia."""
    step, fine = coarse.step_mm, _FINE_MM
    # fine pixel k of the 0.5 mm grid sits at original row k * fine / rs + (fr - 1) / 2
    fr_c = max(1, int(step / row_spacing_mm + 1e-6))
    fc_c = max(1, int(step / col_spacing_mm + 1e-6))
    fr_f = max(1, int(fine / row_spacing_mm + 1e-6))
    fc_f = max(1, int(fine / col_spacing_mm + 1e-6))

    def to_fine_row(r: float) -> float:
        orig = r * step / row_spacing_mm + (fr_c - 1) / 2
        return (orig - (fr_f - 1) / 2) * row_spacing_mm / fine

    def to_fine_col(c: float) -> float:
        orig = c * step / col_spacing_mm + (fc_c - 1) / 2
        return (orig - (fc_f - 1) / 2) * col_spacing_mm / fine

    kernels = _ring_kernels(_crop_shape(fine), fine)
    votes = {1: 0.0, -1: 0.0}
    count = {1: 0, -1: 0}
    n_used = 0
    for i in slices:
        cs = coarse.slices[i]
        if not cs.ok or cs.tibia is None:
            continue
        img = downsample_volume(vol[i : i + 1], row_spacing_mm=row_spacing_mm,
                                col_spacing_mm=col_spacing_mm, step_mm=fine)[0]
        scaled = img / max(float(np.percentile(img, 99.5)), 1e-6)
        body = _body_mask(ndi.gaussian_filter(scaled, 1.0))
        if body.sum() < 100:
            continue
        ridge = _ridge(img, 0.5 / fine)
        ridge /= max(float(np.percentile(ridge[body], 95)), 1e-9)
        tcols = np.nonzero(cs.tibia.any(axis=0))[0]
        sc = _ring_side_scores(ridge, to_fine_row(cs.plateau_row),
                               (int(round(to_fine_col(tcols.min()))),
                                int(round(to_fine_col(tcols.max())))), fine, kernels)
        n_used += 1
        d = sc[1] - sc[-1]
        if max(sc.values()) >= _RING_MIN and abs(d) >= _RING_DIFF:
            votes[1 if d > 0 else -1] += abs(d)
            count[1 if d > 0 else -1] += 1
    total = votes[1] + votes[-1]
    if total <= 0:
        return 0, 0.0
    side = 1 if votes[1] >= votes[-1] else -1
    margin = abs(votes[1] - votes[-1]) / total
    conf = margin * min(1.0, total / 0.6)
    if count[side] - count[-side] < 2:  # a head shows on several posterior slices
        conf *= 0.5
    if conf < 0.2:
        return 0, float(conf)
    return side, float(np.clip(conf, 0.0, 1.0))
