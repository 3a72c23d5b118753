"""Find the tibiofemoral joint: resampling to isotropic mm grids and the femur/tibia pair.

Everything here works on structure (two large bone regions stacked vertically and
separated by a thin band), not on absolute intensity: both polarities (marrow bright
on T1/PD, marrow dark on fat-suppressed PD/DESS) are tried and the one that gives
the more plausible femur/tibia pair wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import fft as sp_fft
from scipy import ndimage as ndi
from skimage.filters import threshold_multiotsu, threshold_otsu

from kneemeasure.detect.morph import binary_erosion_disk, binary_opening_disk
from kneemeasure.detect.morph import disk as _disk

__all__ = ["IsoImage", "BonePair", "to_isotropic", "find_bone_pair"]


@dataclass
class IsoImage:
    """An image resampled to square pixels of ``step_mm``.

    Attributes
    ----------
    data : ndarray, shape (M, N), float32
        Resampled image; pixel ``(i, j)`` sits at original pixel
        ``(i * step_mm / row_spacing_mm, j * step_mm / col_spacing_mm)``.
    step_mm : float
        Pixel size of ``data`` in both directions (mm).
    row_spacing_mm, col_spacing_mm : float
        Spacing of the original image (mm).
    """

    data: np.ndarray
    step_mm: float
    row_spacing_mm: float
    col_spacing_mm: float

    def to_original(self, rc_iso: tuple[float, float]) -> tuple[float, float]:
        """Map a ``(row, col)`` on the iso grid to ``(row, col)`` in original pixels."""
        return (
            float(rc_iso[0]) * self.step_mm / self.row_spacing_mm,
            float(rc_iso[1]) * self.step_mm / self.col_spacing_mm,
        )


def _check_spacing(row_spacing_mm: float, col_spacing_mm: float) -> None:
    from kneemeasure.errors import UsageError

    for name, value in (("row_spacing_mm", row_spacing_mm), ("col_spacing_mm", col_spacing_mm)):
        if not np.isfinite(value) or value <= 0:
            raise UsageError(
                f"{name}={value!r} is not a positive pixel spacing; "
                "pass Pixel Spacing (0028,0030) values in mm"
            )


def to_isotropic(
    image: np.ndarray, *, row_spacing_mm: float, col_spacing_mm: float, step_mm: float
) -> IsoImage:
    """Resample a 2D image to square pixels of ``step_mm`` (linear interpolation).

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
    row_spacing_mm, col_spacing_mm : float
        Pixel Spacing (0028,0030) elements [0] and [1] (mm).
    step_mm : float
        Output pixel size (mm).

    Returns
    -------
    IsoImage
    """
    _check_spacing(row_spacing_mm, col_spacing_mm)
    image = np.asarray(image, dtype=np.float32)
    rows, cols = image.shape
    n_r = max(int(np.floor((rows - 1) * row_spacing_mm / step_mm)) + 1, 2)
    n_c = max(int(np.floor((cols - 1) * col_spacing_mm / step_mm)) + 1, 2)
    # Anti-alias when shrinking: gaussian with sigma ~ half the output step, per axis.
    sig_r = max(0.0, 0.5 * (step_mm / row_spacing_mm - 1.0))
    sig_c = max(0.0, 0.5 * (step_mm / col_spacing_mm - 1.0))
    if sig_r > 0 or sig_c > 0:
        image = ndi.gaussian_filter(image, (sig_r, sig_c))
    rr = np.arange(n_r) * (step_mm / row_spacing_mm)
    cc = np.arange(n_c) * (step_mm / col_spacing_mm)
    # Separable linear interpolation (fast, exact grid mapping).
    out = ndi.map_coordinates(
        image, np.meshgrid(rr, cc, indexing="ij"), order=1, mode="nearest"
    ).astype(np.float32)
    return IsoImage(out, step_mm, row_spacing_mm, col_spacing_mm)


def normalise(image: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] between the 2nd and 99.5th percentiles (clipped)."""
    lo, hi = np.percentile(image, [2.0, 99.5])
    if hi - lo <= 1e-6 * max(abs(hi), 1.0):
        return np.zeros_like(image, dtype=np.float32)
    return np.clip((image - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


@dataclass
class BonePair:
    """Femur and tibia found on one (isotropic) slice.

    Attributes
    ----------
    femur, tibia : ndarray of bool, shape (M, N)
        Masks on the iso grid.
    polarity : int
        +1 when marrow is bright (T1/PD), -1 when dark (fat-suppressed, DESS).
    norm : ndarray, shape (M, N)
        The iso image scaled to [0, 1] (not inverted).
    cols : ndarray of int
        Iso columns where both bones are present (the joint's horizontal extent).
    femur_bottom, tibia_top : ndarray of float, shape (len(cols),)
        Lowest femur row and highest tibia row in those columns (iso pixels).
    score : float
        Width of the joint (mm) weighted by how plausible its gap is.
    step_mm : float
    """

    femur: np.ndarray
    tibia: np.ndarray
    polarity: int
    norm: np.ndarray
    cols: np.ndarray
    femur_bottom: np.ndarray
    tibia_top: np.ndarray
    score: float
    step_mm: float


def _body_mask(norm: np.ndarray, step_mm: float) -> np.ndarray:
    """Tissue mask filled between the outermost tissue pixels of each row.

    Marrow can be as dark as air on fat-suppressed images and the bones touch the
    top and bottom of the field of view, so a hole fill is not enough; a knee
    cross-section is convex along a row, so each row is filled between its ends.
    """
    tissue = binary_opening_disk(norm > 0.08, max(1, int(round(1.0 / step_mm))))
    return fill_rows(tissue)


def fill_rows(mask: np.ndarray) -> np.ndarray:
    """Each row of a 2-D mask filled from its first to its last True pixel."""
    has = mask.any(axis=1)
    w = mask.shape[1]
    first = np.argmax(mask, axis=1)
    last = w - 1 - np.argmax(mask[:, ::-1], axis=1)
    cols = np.arange(w)[None, :]
    return has[:, None] & (cols >= first[:, None]) & (cols <= last[:, None])


_SKIN_MM = 2.0  # width of the body's outer rim where no bone lies


def _contact_mm(lab: np.ndarray, n: int, skin: np.ndarray | None, step_mm: float) -> np.ndarray:
    """Per label (index 0 = background), the length (mm) it runs inside the body's rim."""
    if skin is None:
        return np.zeros(n + 1)
    return np.bincount(lab[skin], minlength=n + 1)[: n + 1] * step_mm**2 / _SKIN_MM




def _pair_from_labels(
    lab: np.ndarray, n: int, step_mm: float, min_area_mm2: float = 250.0,
    skin: np.ndarray | None = None,
) -> tuple[float, int, int, np.ndarray, np.ndarray, np.ndarray]:
    """Best (femur, tibia) label pair: wide column overlap, thin plausible gap.

    ``skin`` (bool mask of the body's outer rim) marks where bone never lies: a
    region running along it over more than 10 mm has leaked into the soft tissue
    and its pair scores half.
    """
    if n == 0:
        return 0.0, 0, 0, np.array([], int), np.array([]), np.array([])
    h, w = lab.shape
    areas = ndi.sum_labels(np.ones_like(lab), lab, index=np.arange(1, n + 1)) * step_mm**2
    leaky = _contact_mm(lab, n, skin, step_mm)[1:] > 10.0
    cand = [i + 1 for i in range(n) if areas[i] >= min_area_mm2]
    # Drop components that hug the left/right image borders (air, skin).
    keep = []
    for k in cand:
        m = lab == k
        border = m[:, 0].sum() + m[:, -1].sum()
        rows_k = np.nonzero(m.any(axis=1))[0]
        tall = (rows_k[-1] - rows_k[0]) * step_mm >= 15.0
        if border * step_mm < 0.3 * h * step_mm and tall:
            keep.append(k)
    if len(keep) < 2:
        return 0.0, 0, 0, np.array([], int), np.array([]), np.array([])
    rows = np.arange(h)[:, None]
    tops, bots = {}, {}
    for k in keep:
        m = lab == k
        has = m.any(axis=0)
        top = np.where(has, np.argmax(m, axis=0), -1)
        bot = np.where(has, h - 1 - np.argmax(m[::-1], axis=0), -1)
        tops[k], bots[k] = top, bot
    del rows
    best = (0.0, 0, 0, np.array([], int), np.array([]), np.array([]))
    for f in keep:
        for t in keep:
            if f == t:
                continue
            both = (bots[f] >= 0) & (tops[t] >= 0)
            gap = (tops[t] - bots[f]) * step_mm
            ok = both & (gap > 0.5) & (gap < 15.0)
            cols = np.nonzero(ok)[0]
            if cols.size * step_mm < 20.0:
                continue
            # The femur must sit above the tibia (centroids).
            width = cols.size * step_mm
            med_gap = float(np.median(gap[cols]))
            score = width * (1.0 if 1.5 <= med_gap <= 10.0 else 0.5)
            # both bones are large regions (a cartilage band or a fat pad is not)
            score *= float(np.sqrt(min(1.0, min(areas[f - 1], areas[t - 1]) / 1500.0)))
            if leaky[f - 1] or leaky[t - 1]:
                score *= 0.5
            if score > best[0]:
                best = (score, f, t, cols, bots[f][cols].astype(float), tops[t][cols].astype(float))
    return best


def joint_side_cuts(norm: np.ndarray, body: np.ndarray, step_mm: float) -> np.ndarray:
    """Horizontal cuts from the outer ends of the bright joint band to the body edge.

    On fat-suppressed images marrow and fat look alike and meet beside the joint; the
    bright cartilage/fluid band ends at the joint margins, so a 1 mm line from each
    outer end of the band outward separates the femur's surroundings from the tibia's.
    """
    cut = np.zeros_like(body)
    vals = norm[body]
    if vals.size < 100:
        return cut
    bright = (norm > threshold_otsu(vals)) & body
    lab, n = ndi.label(bright)
    ends = []
    for sl_ in ndi.find_objects(lab):
        if sl_ is None:
            continue
        h = (sl_[0].stop - sl_[0].start) * step_mm
        w = (sl_[1].stop - sl_[1].start) * step_mm
        if w >= 10.0 and h <= 18.0 and w >= 1.5 * h:
            ends.append(sl_)
    if not ends:
        return cut
    half = max(1, int(round(0.5 / step_mm)))
    left = min(ends, key=lambda q: q[1].start)
    right = max(ends, key=lambda q: q[1].stop)
    for q, side in ((left, -1), (right, 1)):
        k = lab[q[0], q[1]] > 0
        cols = np.nonzero(k.any(axis=0))[0]
        c_end = cols[0] if side < 0 else cols[-1]
        rows = np.nonzero(k[:, c_end])[0] + q[0].start
        r = int(round(rows.mean()))
        c_abs = c_end + q[1].start
        r0 = max(r - half, 0)  # a band touching the top row must not wrap to -1
        if side < 0:
            cut[r0 : r + half + 1, : c_abs + 1] = True
        else:
            cut[r0 : r + half + 1, c_abs:] = True
    return cut


def _holes(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """``ndi.label(ndi.binary_fill_holes(mask) & ~mask)``, from one labelling.

    The holes are the 4-connected background pieces that do not touch the image
    border, numbered in the same (raster) order; about 3x faster than the fill.
    """
    bg, nb = ndi.label(~mask)
    keep = np.ones(nb + 1, bool)
    keep[0] = False
    for edge in (bg[0], bg[-1], bg[:, 0], bg[:, -1]):
        keep[edge] = False
    new_id = np.cumsum(keep) * keep
    return new_id[bg], int(keep.sum())


def _main_run(mask: np.ndarray) -> np.ndarray:
    """Per column, keep only the longest vertical run of ``mask``.

    A bone's marrow is one long run per column between its cortices; a joint cartilage
    band or notch tissue of bone-like signal that touches the bone elsewhere (through a
    spine or a gap in the cortex line) is a shorter run beyond the cortex gap in that
    column and is dropped. Small holes (<= 16 px, 4 mm^2 at 0.5 mm) are filled first so
    marrow texture does not split a run. The largest 4-connected piece of what remains
    is returned.
    """
    holes, nh = _holes(mask)
    m = mask.copy()
    if nh:
        # small holes, and holes up to 25 mm^2 (at 0.5 mm) that are at most 4 mm wide
        # or not flat: noise and texture on a dark-marrow image; a cortex gap under a
        # cartilage band is a long, flat horizontal line and stays open
        size = np.bincount(holes.ravel())
        width = np.zeros(nh + 1, int)
        height = np.zeros(nh + 1, int)
        for k, sl_ in enumerate(ndi.find_objects(holes), start=1):
            if sl_ is not None:
                height[k] = sl_[0].stop - sl_[0].start
                width[k] = sl_[1].stop - sl_[1].start
        small = (size <= 16) | ((size <= 100) & ((width <= 8) | (height >= 0.35 * width)))
        small[0] = False
        m |= small[holes]
    mt = m.T  # (cols, rows): runs along axis 1
    starts = mt & ~np.concatenate([np.zeros((mt.shape[0], 1), bool), mt[:, :-1]], axis=1)
    ids = np.cumsum(starts.ravel()).reshape(mt.shape) * mt
    if ids.max() == 0:
        return m
    lens = np.bincount(ids.ravel())
    lens[0] = 0
    col_of = np.zeros(lens.size, int)
    col_of[ids.ravel()] = np.repeat(np.arange(mt.shape[0]), mt.shape[1])
    best_len = np.zeros(mt.shape[0], int)
    np.maximum.at(best_len, col_of[1:], lens[1:])
    keep_id = (lens == best_len[col_of]) & (lens > 0)
    out = keep_id[ids].T & m
    lab, n = ndi.label(out)
    if n > 1:
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        out = lab == int(np.argmax(sizes))
    return out


def find_bone_pair(
    iso: IsoImage, *, polarity: int | None = None, main_runs: bool = False
) -> BonePair | None:
    """Segment the femur and the tibia on an isotropic slice.

    Parameters
    ----------
    iso : IsoImage
        Slice on a square grid (typically 0.5–1 mm).
    polarity : {+1, -1, None}, keyword-only
        Marrow bright (+1) or dark (-1); ``None`` tries both and keeps the better.
    main_runs : bool, keyword-only
        Keep only the longest vertical run per column of each bone (drops a cartilage
        band or notch tissue attached to a bone; see :func:`_main_run`). Used for the
        landmarks; slice scoring keeps the raw masks.

    Returns
    -------
    BonePair or None
        ``None`` when no plausible femur/tibia pair exists.

    Notes
    -----
    Bone-like pixels are those above Otsu's threshold (within the body) of the
    polarity-corrected image, minus dark thin lines (cortex, ligaments); thin bridges
    (cartilage, menisci, ligaments) are cut by morphological opening of increasing
    radius (1, 2, 3 mm) until two bones stacked vertically with a 0.5–15 mm gap over at
    least 20 mm of width appear. A region running more than 10 mm along the body's
    2 mm outer rim has leaked into the soft tissue: its pair scores half and a wider
    opening is tried. Dark lines are pixels darker than their 3 mm neighbourhood; on
    dark-tissue images (fat-suppressed, DESS) with pixels <= 0.7 mm they come first from
    oriented line filters (:func:`line_valleys`), which find a 1 mm cortex in noise that
    the pixel test breaks into specks.
    """
    step = iso.step_mm
    norm = normalise(ndi.gaussian_filter(iso.data, 0.5 / step))
    body = _body_mask(norm, step)
    if body.sum() < 100:
        return None
    skin = body & ~binary_erosion_disk(body, max(1, int(round(_SKIN_MM / step))), border_value=1)
    # most tissue dark (as coarse._polarity): fat-suppressed / DESS contrast
    dark_image = float(np.median(norm[body & (norm > 0.08)])) <= 0.42 if body.any() else False
    fine_pixels = max(iso.row_spacing_mm, iso.col_spacing_mm) <= 0.7
    best: BonePair | None = None
    for pol in (1, -1) if polarity is None else (polarity,):
        bp = None
        if pol < 0 and dark_image and fine_pixels:
            # fat-suppressed marrow differs from fat by a few per cent: the cortex line
            # between them is found along its length, so noise does not riddle the masks
            # (not on coarse pixels, e.g. a 1.5 mm reformat axis: a 1 mm cortex across it
            # is blurred out of the 0.6 mm line filter)
            valley = line_valleys(normalise(iso.data), body, step_mm=step)
            bp = _pair_at_polarity(norm, body, skin, pol, step, valley)
        if bp is None:
            bp = _pair_at_polarity(norm, body, skin, pol, step, _pixel_valleys(norm, body, step))
        if bp is not None and (best is None or bp.score > best.score):
            best = bp
    if best is not None and main_runs:
        best = _clean_pair(best)
    return best


@lru_cache(maxsize=8)
def _line_kernels_fft(h: int, w: int, step_mm: float, along_mm: float, across_mm: float,
                      n_angles: int) -> np.ndarray:
    """rFFTs of the oriented line kernels for an (h, w) image padded by the kernel half."""
    sa, sc = along_mm / step_mm, across_mm / step_mm
    half = int(np.ceil(3.0 * sa))
    y, x = np.mgrid[-half : half + 1, -half : half + 1].astype(float)
    shape = (h + 2 * half, w + 2 * half)
    out = []
    for th in np.arange(n_angles) * np.pi / n_angles:
        u = x * np.cos(th) + y * np.sin(th)
        v = -x * np.sin(th) + y * np.cos(th)
        kern = (v**2 / sc**4 - 1.0 / sc**2) * np.exp(-0.5 * (u / sa) ** 2 - 0.5 * (v / sc) ** 2)
        kern -= kern.mean()
        kern /= np.abs(kern).sum()
        out.append(sp_fft.rfft2(kern[::-1, ::-1], s=shape))
    return np.array(out)


def line_valleys(image: np.ndarray, body: np.ndarray, *, step_mm: float,
                 along_mm: float = 2.0, across_mm: float = 0.6, n_angles: int = 8,
                 low: float = 2.0, high: float = 4.0) -> np.ndarray:
    """Dark thin lines (cortex, ligaments) found by oriented second-derivative filters.

    Parameters
    ----------
    image : ndarray, shape (M, N)
        Normalised image on a square grid of ``step_mm``.
    body : ndarray of bool, shape (M, N)
        Where the noise level of the response is estimated.
    step_mm, along_mm, across_mm : float, keyword-only
        Grid step and the Gaussian widths along and across the line (mm).
    n_angles : int, keyword-only
        Filter orientations over 180 deg.
    low, high : float, keyword-only
        Hysteresis thresholds in robust standard deviations of the response.

    Returns
    -------
    ndarray of bool, shape (M, N)

    Notes
    -----
    The response is the largest over orientations of the image convolved with the
    second derivative across an elongated Gaussian (zero mean). Integrating along the
    line gives a 1 mm cortex in fat-suppressed noise a usable signal where a pixel-wise
    valley test only finds specks; hysteresis keeps weak parts of lines that touch
    strong ones.
    """
    from skimage.filters import apply_hysteresis_threshold

    h, w = image.shape
    kf = _line_kernels_fft(h, w, step_mm, along_mm, across_mm, n_angles)
    half = (kf.shape[-2] - h) // 2
    pad = np.pad(np.asarray(image, float), half, mode="reflect")
    f = sp_fft.rfft2(pad)
    full = sp_fft.irfft2(kf * f[None], s=pad.shape)  # (n_angles, H, W), circular
    resp = full.max(axis=0)[2 * half : 2 * half + h, 2 * half : 2 * half + w]
    vals = resp[body]
    med = float(np.median(vals))
    mad = 1.4826 * float(np.median(np.abs(vals - med)))
    if mad <= 0:
        return np.zeros(image.shape, bool)
    return apply_hysteresis_threshold(resp - med, low * mad, high * mad)


def _pixel_valleys(norm: np.ndarray, body: np.ndarray, step: float) -> np.ndarray:
    """Dark thin lines (cortex, ligaments, menisci) that cut bone from soft tissue of
    similar signal (fat next to marrow): pixels clearly darker than their 3 mm
    neighbourhood."""
    closed = ndi.grey_closing(norm, footprint=_disk(max(1, int(round(1.5 / step)))))
    resid = norm - ndi.gaussian_filter(norm, 1.0)
    noise = 1.4826 * float(np.median(np.abs(resid[body] - np.median(resid[body]))))
    depth = closed - norm
    return (depth > 0.3 * closed) & (depth > 3.0 * noise)


def _pair_at_polarity(norm: np.ndarray, body: np.ndarray, skin: np.ndarray, pol: int,
                      step: float, valley: np.ndarray) -> BonePair | None:
    """Best femur/tibia pair of one polarity on one smoothed, normalised image."""
    best: BonePair | None = None
    b = norm if pol > 0 else 1.0 - norm
    cut = joint_side_cuts(norm, body, step) if pol < 0 else None
    vals = b[body][:: max(1, int(body.sum()) // 20000)]
    thresholds = [threshold_otsu(vals)]
    try:
        thresholds.append(threshold_multiotsu(vals, classes=3, nbins=64)[1])
    except ValueError:
        pass
    for thr in thresholds:
        mask = (b > thr) & body & ~valley
        if cut is not None:
            mask &= ~cut
        for r_mm in (1.0, 2.0, 3.0):
            r = max(1, int(round(r_mm / step)))
            opened = binary_opening_disk(mask, r)
            lab, n = ndi.label(opened)
            score, f, t, cols, fb, tt = _pair_from_labels(lab, n, step, skin=skin)
            if f and (best is None or score > best.score):
                best = BonePair(lab == f, lab == t, pol, norm, cols, fb, tt, score, step)
            if f and not _contact_mm(lab, n, skin, step)[[f, t]].max() > 10.0:
                break  # a pair that leaks into the soft tissue: try a wider opening
    return best


def _clean_pair(bp: BonePair) -> BonePair:
    """Drop bone-like tissue beyond each bone's cortex (see :func:`_main_run`)."""
    fem = _main_run(bp.femur)
    tib = _main_run(bp.tibia)
    h = tib.shape[0]
    fb = np.where(fem.any(axis=0), h - 1 - np.argmax(fem[::-1], axis=0), -1)
    tt = np.where(tib.any(axis=0), np.argmax(tib, axis=0), -1)
    gap = (tt - fb) * bp.step_mm
    ok = (fb >= 0) & (tt >= 0) & (gap > 0.5) & (gap < 15.0)
    cols = np.nonzero(ok)[0]
    if cols.size * bp.step_mm < 20.0:
        return bp
    return BonePair(fem, tib, bp.polarity, bp.norm, cols, fb[cols].astype(float),
                    tt[cols].astype(float), bp.score, bp.step_mm)
