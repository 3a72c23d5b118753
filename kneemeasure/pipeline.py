"""The measurement pipeline: load -> detect -> measure -> report.

``measure_series`` measures one series (raises :class:`KneeMeasureError` on
failure); ``run_measure`` measures every series under some paths, turns
per-input failures into error rows, and writes the CSV, PNGs and ``run.json``.
The CLI is a thin wrapper around ``run_measure``.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from kneemeasure import __version__
from kneemeasure.errors import (
    KneeMeasureError,
    LateralityError,
    MissingSpacingError,
    UnsupportedImageError,
    UsageError,
    WrongPlaneError,
)
from kneemeasure.measure import measure_construction
from kneemeasure.models import InputError, Landmarks, Measurement, Series
from kneemeasure.parallel import map_ordered, series_executor

log = logging.getLogger("kneemeasure")

SIDES = ("medial", "lateral")


@dataclass
class MeasureOptions:
    """Options of one measurement run (all physical values in mm).

    Attributes
    ----------
    side : {"medial", "lateral", "both"}
    threshold_mm : float
        ``extruded = MME >= threshold_mm``.
    slice_instance : int or None
        Force the measured slice (Instance Number).
    laterality : {"L", "R"} or None
        Override the knee side (``laterality_source = "user"``).
    spacing_mm : (float, float) or None
        ``(row, col)`` pixel spacing to use when the header has none (or to override).
    confidence_threshold : float
        Rows below it get ``status = "review"``.
    profile : bool
        Measure every slice with a meniscal body (slice profile, max extrusion).
    png : bool
        Write annotated PNGs.
    workers : int
        Processes used inside one series (decoding, slice detection, PNG) by
        :func:`run_measure`; 1 runs everything in-process. Batch and validation
        runs parallelise over series instead and keep 1.
    """

    side: str = "medial"
    threshold_mm: float = 3.0
    slice_instance: int | None = None
    laterality: str | None = None
    spacing_mm: tuple[float, float] | None = None
    confidence_threshold: float = 0.5
    profile: bool = True
    png: bool = True
    us_reference: str = "tibial"
    us_frame: int | None = None
    us_proximal: str | None = None
    points: dict | None = None
    debug: bool = False
    workers: int = 1

    def sides(self) -> tuple[str, ...]:
        return SIDES if self.side == "both" else (self.side,)

    def validate(self) -> None:
        if self.side not in ("medial", "lateral", "both"):
            raise UsageError(f"--side must be medial, lateral or both, not {self.side!r}")
        if self.laterality not in (None, "L", "R"):
            raise UsageError(f"--laterality must be left or right, not {self.laterality!r}")
        if not (np.isfinite(self.threshold_mm)):
            raise UsageError(f"--threshold-mm must be a number, not {self.threshold_mm!r}")
        if self.spacing_mm is not None and not all(
            np.isfinite(v) and v > 0 for v in self.spacing_mm
        ):
            raise UsageError(
                f"--spacing-mm needs two positive numbers (ROW COL), got {self.spacing_mm}"
            )


@dataclass
class RunResult:
    """What ``run_measure`` produced."""

    measurements: list[Measurement] = field(default_factory=list)
    csv_path: Path | None = None
    manifest_path: Path | None = None
    skipped: list[dict] = field(default_factory=list)

    @property
    def n_failed(self) -> int:
        return sum(m.status == "error" for m in self.measurements)


# --------------------------------------------------------------------------- helpers


def _image_side(col_sign: int) -> str:
    return "image-right" if col_sign > 0 else "image-left"


def _resolve_laterality(series: Series, options: MeasureOptions) -> tuple[str | None, str]:
    if options.laterality:
        return options.laterality, "user"
    if series.laterality in ("L", "R"):
        return series.laterality, "header"
    return None, "none"


def _check_measurable(series: Series, *, allow_single: bool = False) -> None:
    name = series_label(series) or (str(series.frames[0].path) if series.frames else "?")
    if series.samples_per_pixel != 1:
        raise UnsupportedImageError(
            f"colour image ({series.photometric}, {series.samples_per_pixel} samples/pixel) "
            "in an MR series; kneemeasure measures grayscale MR — export the original series",
            source=name,
        )
    if series.row_spacing_mm is None or series.col_spacing_mm is None:
        raise MissingSpacingError(
            "no pixel spacing: Pixel Spacing (0028,0030) is missing or invalid; "
            "pass --spacing-mm ROW COL (mm) if you know it",
            source=name,
        )
    if series.n_slices < 2 and not allow_single:
        raise UnsupportedImageError(
            "single-slice series: the spine-apex slice is chosen among the coronal slices; "
            "pass the whole coronal series folder (or --points to measure this slice by hand)",
            source=name,
        )


def _constant_check(image: np.ndarray, name: str) -> None:
    # min and max propagate NaN and keep +-inf: no boolean copy of a 25 MB stack
    lo, hi = float(np.min(image)), float(np.max(image))
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi == lo:
        raise UnsupportedImageError("constant (blank) image: nothing to measure", source=name)


def series_label(series: Series) -> str:
    """Where a series lives: its folder (or file) when that is unambiguous, else the user path."""
    parent = getattr(series, "parent", None)  # a coronal reformat of a 3D series
    if isinstance(parent, Series):
        return series_label(parent)
    parents = {f.path.parent for f in series.frames}
    files = {f.path for f in series.frames}
    if len(files) == 1:
        return str(next(iter(files)))
    if len(parents) == 1:
        return str(next(iter(parents)))
    return series.source


def _base_row(series: Series, options: MeasureOptions, side: str) -> Measurement:
    return Measurement(
        source=series_label(series),
        study_instance_uid=series.study_instance_uid,
        series_instance_uid=series.series_instance_uid,
        modality=series.modality,
        side=side,
        threshold_mm=options.threshold_mm,
        row_spacing_mm=series.row_spacing_mm,
        col_spacing_mm=series.col_spacing_mm,
        spacing_source=series.spacing_source,
        kneemeasure_version=__version__,
    )


def _fill_from_landmarks(
    m: Measurement, lm: Landmarks, series: Series, options: MeasureOptions
) -> None:
    r = measure_construction(
        lm.plateau_rc,
        lm.meniscus_rc,
        meniscus_inner_rc=lm.meniscus_inner_rc,
        plateau_dir_rc=lm.plateau_dir_rc,
        row_spacing_mm=series.row_spacing_mm,
        col_spacing_mm=series.col_spacing_mm,
        threshold_mm=options.threshold_mm,
    )
    m.plateau_row_px, m.plateau_col_px = (float(v) for v in lm.plateau_rc)
    m.meniscus_row_px, m.meniscus_col_px = (float(v) for v in lm.meniscus_rc)
    m.extrusion_mm = r.extrusion_mm
    m.meniscal_width_mm = r.meniscal_width_mm
    m.relative_extrusion_pct = r.relative_extrusion_pct
    m.extruded = r.extruded
    m.confidence = float(np.clip(lm.confidence, 0.0, 1.0))
    m.plateau_direction_source = lm.plateau_direction_source
    m.landmarks = lm
    m.status = "ok" if m.confidence >= options.confidence_threshold else "review"
    if m.status == "review" and lm.notes:
        m.error = "review: " + "; ".join(lm.notes)[:300]


# --------------------------------------------------------------------------- MRI


def _prepare_series(series: Series) -> Series:
    """Reformat a thin-slice sagittal 3D series to coronal; reject other planes."""
    if series.plane == "coronal":
        return series
    from kneemeasure.io import reformat

    if reformat.is_reformattable(series):
        return reformat.reformat_to_coronal(series)
    iop = "none" if series.iop is None else ", ".join(f"{v:.2f}" for v in series.iop)
    raise WrongPlaneError(
        f"{series.plane} series (Image Orientation (Patient) (0020,0037) = {iop}); "
        "MME is measured on coronal slices — give the coronal series "
        "(or a 3D sagittal series with slices <= 1.6 mm, which is reformatted)",
        source=series_label(series),
    )


def measure_series(
    series: Series,
    options: MeasureOptions | None = None,
    *,
    executor: Executor | None = None,
) -> list[Measurement]:
    """Measure meniscal extrusion on one coronal (or reformattable) MR series.

    Parameters
    ----------
    series : Series
        Header-level series from :func:`kneemeasure.io.discover_series`.
    options : MeasureOptions, optional
    executor : concurrent.futures.Executor, optional, keyword-only
        Worker processes (:func:`kneemeasure.parallel.series_executor`) for the
        decoding and the per-slice detections; ``None`` runs in-process. The
        results are the same either way.

    Returns
    -------
    list of Measurement
        One per requested side; each carries ``landmarks`` and ``image`` for the PNG.

    Raises
    ------
    KneeMeasureError
        When the series cannot be measured at all (the message says why and the fix).
    """
    options = options or MeasureOptions()
    if options.points:  # manual / interactive landmarks (issue 4)
        from kneemeasure.interactive.session import measure_series_manual

        return measure_series_manual(series, options)
    if options.spacing_mm is not None:
        series.row_spacing_mm, series.col_spacing_mm = options.spacing_mm
        series.spacing_source = "user"
    series = _prepare_series(series)
    _check_measurable(series)
    rs, cs = float(series.row_spacing_mm), float(series.col_spacing_mm)

    # --slice forces the measured slice
    forced = None
    if options.slice_instance is not None:
        numbers = [f.instance_number for f in series.frames]
        if options.slice_instance not in numbers:
            known = sorted(n for n in numbers if n is not None)
            have = f"{known[0]}..{known[-1]}" if known else "no Instance Numbers"
            raise UsageError(
                f"--slice {options.slice_instance}: no such Instance Number in this series "
                f"(it has {have})",
                source=series_label(series),
            )
        forced = numbers.index(options.slice_instance)

    # decode only what the measurement needs: with a forced slice and a known knee
    # side (header or --laterality) that is one slice; otherwise the slice choice and
    # the fibular-head search look at the whole series
    need_all = forced is None or _resolve_laterality(series, options)[0] is None
    decoded = list(range(series.n_slices)) if need_all else [forced]
    clock = _PhaseClock()
    with _start_loading(series, decoded, executor) as loading:
        # imported while a worker decodes (the first time: scipy and scikit-image, ~0.4 s)
        from kneemeasure.detect import infer_fibula_side, select_reference_slice
        from kneemeasure.detect.coarse import analyse_knee
        from kneemeasure.io.geometry import laterality_from_fibula, side_col_sign, slice_normal

        clock.lap("imports")
        volume, coarse_grid = loading()  # coarse_grid: the stack on the coarse pass's grid
        clock.lap("decode")
    _constant_check(volume, series_label(series))

    # one coarse 1 mm pass, shared by the fibula search and the slice choice
    positions = np.array([f.position_mm for f in series.frames], dtype=float)
    steps = np.abs(np.diff(positions))
    slice_spacing = float(np.median(steps)) if steps.size and np.isfinite(steps).all() else None
    posterior = None
    if series.iop is not None:
        try:
            ny = float(slice_normal(series.iop)[1])
            posterior = 1 if ny > 0.5 else (-1 if ny < -0.5 else None)
        except ValueError:
            posterior = None
    coarse = None
    # the coarse pass's per-slice bone segmentation runs on the workers
    per_slice = functools.partial(map_ordered, executor) if executor is not None else None
    laterality, lat_source = _resolve_laterality(series, options)
    if laterality is None:
        # thin planes (reformatted 3D) are analysed about every 2 mm
        coarse = analyse_knee(volume, row_spacing_mm=rs, col_spacing_mm=cs,
                              slice_spacing_mm=slice_spacing, map_slices=per_slice,
                              downsampled=coarse_grid)  # fmt: skip
        fib_sign, fib_conf = infer_fibula_side(
            volume, row_spacing_mm=rs, col_spacing_mm=cs, posterior_sign=posterior, coarse=coarse
        )
        if fib_sign not in (1, -1):
            raise LateralityError(
                "no Laterality (0020,0060) / Image Laterality (0020,0062) in the header and "
                "the fibular head was not found to tell the side; pass --laterality left|right",
                source=series_label(series),
            )
        laterality = laterality_from_fibula(fib_sign, series.iop or (1, 0, 0, 0, 0, -1))
        lat_source = "anatomy"
        clock.lap("laterality")
        log.info(
            "%s: laterality %s inferred from the fibular head (confidence %.2f)",
            series_label(series),
            laterality,
            fib_conf,
        )
    medial_sign = side_col_sign(laterality, series.iop or (1, 0, 0, 0, 0, -1), "medial")

    if forced is None:
        if coarse is None:
            coarse = analyse_knee(volume, row_spacing_mm=rs, col_spacing_mm=cs,
                                  medial_col_sign=medial_sign, slice_spacing_mm=slice_spacing,
                                  map_slices=per_slice, downsampled=coarse_grid)  # fmt: skip
        choice = select_reference_slice(
            volume,
            row_spacing_mm=rs,
            col_spacing_mm=cs,
            medial_col_sign=medial_sign,
            slice_spacing_mm=slice_spacing,
            coarse=coarse,
        )
        clock.lap("slice_choice")
        index = choice.index
        body = list(choice.body_indices)
        slice_conf = float(choice.confidence)
        polarity = int(choice.polarity)
    else:
        index, body, slice_conf = forced, [forced], 1.0
        polarity = int(np.sign(coarse.polarity)) if coarse is not None else 0
    rows: list[Measurement] = []
    for side in options.sides():
        outer = medial_sign if side == "medial" else -medial_sign
        m = _base_row(series, options, side)
        m.laterality, m.laterality_source = laterality, lat_source
        m.medial_image_side = _image_side(medial_sign)
        m.method = "auto"
        tried: dict[int, Landmarks | KneeMeasureError] = {}
        ref = decoded.index(index)  # volume index (== series index unless --slice)
        if executor is not None:
            # the slices this side will need (the reference and the profile, which
            # holds the reference's neighbours on a clinical series) are detected up
            # front by the workers; anything else is detected on demand, as in-process
            wanted = {ref}
            if forced is None and options.profile and len(body) > 1:
                wanted |= set(_profile_plan(series, body, ref))
            tried = _prefetch(executor, volume, sorted(wanted, key=lambda i: abs(i - ref)),
                              (rs, cs, outer, side, polarity))  # fmt: skip
        side_index, lm = _detect_reference(
            volume,
            ref,
            tried=tried,
            neighbours=[] if forced is not None else body,
            row_spacing_mm=rs,
            col_spacing_mm=cs,
            outer_col_sign=outer,
            side=side,
            threshold=options.confidence_threshold,
            series=series,
            polarity=polarity,
        )
        frame = series.frames[decoded[side_index]]
        image = volume[side_index]
        m.sop_instance_uid = frame.sop_instance_uid
        m.instance_number = frame.instance_number
        if slice_conf < 1.0:
            lm.confidence = float(lm.confidence) * (0.6 + 0.4 * slice_conf)
        if lat_source == "anatomy":
            lm.notes.append("laterality inferred from anatomy (fibular head)")
        _fill_from_landmarks(m, lm, series, options)
        m.image = image
        clock.lap("detect")
        if options.profile and forced is None and len(body) > 1:
            _slice_profile(
                m,
                volume,
                series,
                body,
                side=side,
                outer=outer,
                reference_index=side_index,
                confidence_threshold=options.confidence_threshold,
                known=tried,
                executor=executor,
                polarity=polarity,
            )
            clock.lap("profile")
        m.timings = dict(clock.laps)
        rows.append(m)
    return rows


class _PhaseClock:
    """Seconds spent per phase of one measurement (``laps``, summed per name)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(self.laps.get(name, 0.0) + now - self._t, 3)
        self._t = now


def _detect_reference(
    volume: np.ndarray,
    index: int,
    *,
    neighbours: Sequence[int],
    row_spacing_mm: float,
    col_spacing_mm: float,
    outer_col_sign: int,
    side: str,
    threshold: float,
    series: Series,
    tried: dict[int, Landmarks | KneeMeasureError] | None = None,
    polarity: int = 0,
) -> tuple[int, Landmarks]:
    """Landmarks on the spine-apex slice, or on a neighbour when the apex slice is unsure.

    Slices are 3-4 mm apart, so the neighbouring slices still show the meniscal
    body next to the eminence. When detection on the chosen slice fails or its
    confidence is below ``threshold``, the two neighbours (if they are body
    slices) are tried and the most confident result is kept, with a note saying
    so; a forced slice (``--slice``) passes no neighbours and is never moved.
    Every detection made is recorded in ``tried`` (index -> landmarks or error) so
    that the slice profile does not repeat it; detections already in ``tried``
    (made up front by worker processes) are reused.
    """
    tried = {} if tried is None else tried

    def detect(i: int) -> Landmarks:
        if i not in tried:
            tried[i] = detect_task(
                volume[i], row_spacing_mm, col_spacing_mm, outer_col_sign, side, polarity
            )
        found = tried[i]
        if isinstance(found, KneeMeasureError):
            raise found
        return copy.deepcopy(found)  # the caller adjusts the chosen one's confidence

    try:
        best: tuple[int, Landmarks] | None = (index, detect(index))
        first_error: KneeMeasureError | None = None
    except KneeMeasureError as exc:
        best, first_error = None, exc
    if best is not None and (best[1].confidence >= threshold or not neighbours):
        return best
    if best is None and not neighbours:
        raise first_error
    for j in (index - 1, index + 1):
        if j not in neighbours or not 0 <= j < volume.shape[0]:
            continue
        try:
            lm = detect(j)
        except KneeMeasureError:
            continue
        if best is None or lm.confidence > best[1].confidence:
            best = (j, lm)
    if best is None:
        raise first_error
    if best[0] != index:
        apex = series.frames[index].instance_number
        best[1].notes.append(
            f"spine-apex slice (instance {apex}) was uncertain; measured its neighbour"
        )
    return best


def profile_indices(
    body: Sequence[int], reference_index: int | None = None, *, step: int = 1
) -> list[int]:
    """Slices of the slice profile: the contiguous run that contains the meniscal body.

    The detector's body slices may have gaps (a slice where the joint looked
    narrow); the meniscal body is one contiguous run of coronal slices, so every
    slice between the first and the last body slice is measured, and the
    reference slice is always included.

    Parameters
    ----------
    body : sequence of int
        Body slice indices (position order) from the slice selection.
    reference_index : int, optional
        Index of the reference (spine-apex) slice.
    step : int
        Take every ``step``-th slice (counted from the reference slice), for
        thin-slice reformats where neighbouring planes are < 1 mm apart.

    Returns
    -------
    list of int
        Sorted indices (contiguous when ``step == 1``).
    """
    idx = [int(i) for i in body]
    if reference_index is not None:
        idx.append(int(reference_index))
    if not idx:
        return []
    anchor = int(reference_index) if reference_index is not None else min(idx)
    step = max(1, int(step))
    return [i for i in range(min(idx), max(idx) + 1) if (i - anchor) % step == 0]


def _profile_plan(series: Series, body: Sequence[int], reference_index: int | None) -> list[int]:
    """Slice indices of the profile (:func:`profile_indices` with the right step).

    Planes of a thin-slice reformat are ~0.3 mm apart: they are sampled ~2 mm
    apart, like a clinical coronal series (and 6x faster).
    """
    positions = [f.position_mm for f in series.frames]
    pitch = float(np.nanmedian(np.abs(np.diff(positions)))) if len(positions) > 1 else 0.0
    step = int(round(2.0 / pitch)) if np.isfinite(pitch) and 0 < pitch < 1.0 else 1
    return profile_indices(body, reference_index, step=step)


def detect_task(
    image: np.ndarray,
    row_spacing_mm: float,
    col_spacing_mm: float,
    outer_col_sign: int,
    side: str,
    polarity: int = 0,
) -> Landmarks | KneeMeasureError:
    """Landmarks on one slice, or the :class:`KneeMeasureError` that says why not.

    A plain module-level function of its arguments, so it runs the same in a
    worker process (the error is returned, not raised, to travel back intact).
    """
    from kneemeasure.detect import detect_landmarks

    try:
        return detect_landmarks(
            image,
            row_spacing_mm=row_spacing_mm,
            col_spacing_mm=col_spacing_mm,
            outer_col_sign=outer_col_sign,
            side=side,
            polarity=polarity,
        )
    except KneeMeasureError as exc:
        return exc


def _prefetch(
    executor: Executor, volume: np.ndarray, indices: Sequence[int], args: tuple
) -> dict[int, Landmarks | KneeMeasureError]:
    """Detections of ``indices`` made by the workers (``detect_task(volume[i], *args)``).

    A slice whose detection failed with anything but a :class:`KneeMeasureError`
    (a bug) is left out: it is detected again in-process only if the measurement
    needs it, so the outcome is the same as without workers.
    """
    futures = {i: executor.submit(detect_task, volume[i], *args) for i in indices}
    done: dict[int, Landmarks | KneeMeasureError] = {}
    for i, fut in futures.items():
        try:
            done[i] = fut.result()
        except Exception:  # noqa: BLE001 - re-raised by the in-process detection if needed
            log.debug("worker detection of slice %d failed", i, exc_info=True)
    return done


def _decode_task(series: Series, indices: list[int]) -> np.ndarray:
    return series.load_volume(indices)


#: The stack being decoded for the first series: an anonymous shared mapping and a
#: shared "next frame" counter, made before the decoding process is forked.
_SHARED_STACK: dict[str, Any] = {}


def _decode_shared_task(series: Series, indices: list[int]) -> bool:
    """Decode frames of ``indices`` into ``_SHARED_STACK["buffer"]`` until none is left.

    Runs in the forked decoding process and, once its imports are done, in the
    parent too: each takes the next frame from the shared counter, so both cores
    decode and the stack never goes through a pipe (25 MB for 24 slices of
    512 x 512, ~0.1 s pickled). Each frame is also resampled to the coarse pass's
    1 mm grid (``_SHARED_STACK["coarse"]``), the same values as resampling the whole
    stack later. False when a frame's shape differs from the header's (the parent
    then decodes in-process and raises the usual error).
    """
    from kneemeasure.detect.grid import downsample_volume  # numpy only

    out = np.frombuffer(_SHARED_STACK["buffer"], np.float32)
    out = out.reshape(len(indices), series.rows, series.cols)
    coarse = _SHARED_STACK.get("coarse")  # the coarse pass's 1 mm grid, made here too
    if coarse is not None:
        coarse = np.frombuffer(coarse, np.float32).reshape(len(indices), *_SHARED_STACK["shape"])
    spacing = {"row_spacing_mm": series.row_spacing_mm, "col_spacing_mm": series.col_spacing_mm}
    counter = _SHARED_STACK["next"]
    while True:
        with counter.get_lock():
            k = counter.value
            counter.value = k + 1
        if k >= len(indices):
            return True
        frame = series.load_frame(indices[k])
        if frame.shape != out.shape[1:]:
            return False
        out[k] = frame
        if coarse is not None:
            coarse[k] = downsample_volume(out[k : k + 1], **spacing)[0]


def _detection_imported() -> bool:
    """Whether this process has imported the detection code (scipy, scikit-image) yet:
    it does so for the first series of a run (``measure_series`` imports the coarse pass)."""
    import sys

    return "kneemeasure.detect.coarse" in sys.modules


@contextlib.contextmanager
def _start_loading(
    series: Series, indices: list[int], executor: Executor | None
) -> Iterator[Callable[[], tuple[np.ndarray, np.ndarray | None]]]:
    """Start decoding ``indices`` of ``series``; yields a function that returns the stack
    and, when it was made while decoding, the stack on the coarse pass's 1 mm grid
    (else None).

    The decoders hold the GIL, so only another process decodes alongside this one.
    With workers (``executor`` not None) and at least 8 slices:

    - the first series of a run: the detection code (scipy, scikit-image) is not
      imported yet, so a short-lived forked process decodes slices while this
      process imports it, and this process joins in when its imports are done
      (the two share the stack and a next-frame counter). The detection pool forks
      later and inherits the imports.
    - later series: half the slices are decoded by a worker of ``executor``, the
      other half here.

    Otherwise (or for a reformatted series) the stack is decoded here when asked for.
    """

    from kneemeasure.io.reformat import ReformattedSeries

    if executor is None or len(indices) < 8 or isinstance(series, ReformattedSeries):
        yield lambda: (series.load_volume(indices), None)
        return
    if not _detection_imported():
        import mmap
        import multiprocessing

        from kneemeasure.detect.grid import coarse_shape

        shape = (len(indices), int(series.rows), int(series.cols))
        buffer = mmap.mmap(-1, max(1, int(np.prod(shape)) * 4))  # MAP_SHARED | ANONYMOUS
        grid = coarse_shape(shape[1], shape[2], row_spacing_mm=float(series.row_spacing_mm),
                            col_spacing_mm=float(series.col_spacing_mm))  # fmt: skip
        coarse = mmap.mmap(-1, max(1, len(indices) * grid[0] * grid[1] * 4))
        # inherited by the process forked below
        _SHARED_STACK.update(buffer=buffer, coarse=coarse, shape=grid,
                             next=multiprocessing.get_context("fork").Value("l", 0))  # fmt: skip
        try:
            decoder = series_executor(1)
            if decoder is not None:
                with decoder:
                    theirs = decoder.submit(_decode_shared_task, series, indices)

                    def shared() -> tuple[np.ndarray, np.ndarray | None]:
                        # the imports are done: decode what the other process has not
                        # taken yet; any failure is raised by the plain in-order decode,
                        # so the error is the same as without workers
                        try:
                            ok = _decode_shared_task(series, indices)
                        except Exception:  # noqa: BLE001 - re-raised by the in-order decode
                            ok = False
                        try:
                            ok = theirs.result() and ok
                        except Exception:  # noqa: BLE001 - likewise (or a killed process)
                            ok = False
                        if ok:
                            stack = np.frombuffer(buffer, np.float32).reshape(shape)
                            iso = np.frombuffer(coarse, np.float32).reshape(len(indices), *grid)
                            return stack, iso
                        return series.load_volume(indices), None

                    yield shared
                return
        finally:
            _SHARED_STACK.clear()
    half = len(indices) // 2
    second = executor.submit(_decode_task, series, indices[half:])
    yield lambda: (np.concatenate([series.load_volume(indices[:half]), second.result()]), None)


def _slice_profile(
    m: Measurement,
    volume: np.ndarray,
    series: Series,
    body: Sequence[int],
    *,
    side: str,
    outer: int,
    reference_index: int | None = None,
    confidence_threshold: float = 0.5,
    known: dict[int, Landmarks | KneeMeasureError] | None = None,
    executor: Executor | None = None,
    polarity: int = 0,
) -> None:
    """Measure every slice of the meniscal body; fill ``slice_profile`` and the maximum.

    The reference slice reuses the main measurement of ``m`` (so the profile and
    the main number agree exactly); slices in ``known`` (detected while choosing the
    reference) are reused, the others are detected here.
    ``max_extrusion_mm`` / ``max_extrusion_instance`` are taken over the slices
    with status ``ok`` (confidence >= ``confidence_threshold``); they stay
    ``None`` when no slice is ok.
    """
    rs, cs = float(series.row_spacing_mm), float(series.col_spacing_mm)
    indices = _profile_plan(series, body, reference_index)
    todo = [
        i
        for i in indices
        if not (i == reference_index and m.landmarks is not None and m.extrusion_mm is not None)
    ]
    detected = {i: known[i] for i in todo if known and i in known}  # already detected
    todo = [i for i in todo if i not in detected]
    args = [(volume[i], rs, cs, outer, side, polarity) for i in todo]
    detected.update(zip(todo, map_ordered(executor, detect_task, args), strict=True))
    profile = []
    for i in indices:
        f = series.frames[i]
        entry = {
            "index": i,
            "instance_number": f.instance_number,
            "sop_instance_uid": f.sop_instance_uid,
            "position_mm": f.position_mm,
            "extrusion_mm": None,
            "confidence": None,
            "status": "error",
            "error": "",
            "reference": i == reference_index,
        }
        try:
            if i == reference_index and m.landmarks is not None and m.extrusion_mm is not None:
                lm = m.landmarks
                extrusion, conf = float(m.extrusion_mm), float(m.confidence or 0.0)
            else:
                lm = detected[i]
                if isinstance(lm, KneeMeasureError):
                    raise lm
                r = measure_construction(
                    lm.plateau_rc,
                    lm.meniscus_rc,
                    plateau_dir_rc=lm.plateau_dir_rc,
                    row_spacing_mm=rs,
                    col_spacing_mm=cs,
                )
                extrusion, conf = float(r.extrusion_mm), float(np.clip(lm.confidence, 0, 1))
            entry.update(
                extrusion_mm=extrusion,
                confidence=conf,
                status="ok" if conf >= confidence_threshold else "review",
                plateau_row_px=float(lm.plateau_rc[0]),
                plateau_col_px=float(lm.plateau_rc[1]),
                meniscus_row_px=float(lm.meniscus_rc[0]),
                meniscus_col_px=float(lm.meniscus_rc[1]),
            )
        except KneeMeasureError as exc:
            entry["error"] = " ".join(exc.message.split())
        profile.append(entry)
    m.slice_profile = profile
    good = [e for e in profile if e["extrusion_mm"] is not None and e["status"] == "ok"]
    if good:
        best = max(good, key=lambda e: e["extrusion_mm"])
        m.max_extrusion_mm = float(best["extrusion_mm"])
        m.max_extrusion_instance = best["instance_number"]


# --------------------------------------------------------------------------- runs


def error_row(
    err: InputError | KneeMeasureError,
    *,
    series: Series | None = None,
    options: MeasureOptions | None = None,
    side: str = "medial",
) -> Measurement:
    """A ``status=error`` row for an input that could not be measured."""
    options = options or MeasureOptions()
    if series is not None:
        m = _base_row(series, options, side)
    else:
        m = Measurement(
            source="", threshold_mm=options.threshold_mm, kneemeasure_version=__version__, side=side
        )
    if isinstance(err, InputError):
        m.source = err.source
        m.series_instance_uid = m.series_instance_uid or err.series_instance_uid
        m.study_instance_uid = m.study_instance_uid or err.study_instance_uid
        m.sop_instance_uid = err.sop_instance_uid
        m.modality = m.modality or err.modality
        m.error = err.error
    else:
        m.error = str(err) if (err.source or not m.source) else f"{m.source}: {err.message}"
    m.error = " ".join(m.error.split())  # one line, whatever the cause said
    m.status = "error"
    m.method = ""
    return m


def _png_name(m: Measurement, used: set[str]) -> str:
    stem = Path(m.source).stem or "input"
    uid = m.series_instance_uid.replace(".", "")[-6:]
    base = f"{stem}_{uid}" if uid else stem
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base)[-60:]
    return unique_png_name(base, m.side, used)


def unique_png_name(base: str, side: str, used: set[str]) -> str:
    """``{base}_{side}.png``, or with ``_2``, ``_3`` ... when taken; added to ``used``."""
    name = f"{base}_{side}.png"
    k = 2
    while name in used:
        name = f"{base}_{side}_{k}.png"
        k += 1
    used.add(name)
    return name


def _preview_image(series: Series) -> np.ndarray | None:
    """The middle frame, for error PNGs; None when it cannot be decoded."""
    try:
        if not series.frames:
            return None
        img = series.load_frame(len(series.frames) // 2)
        return img if img.ndim == 2 else None
    except KneeMeasureError:
        return None


def is_candidate(series: Series) -> bool:
    """A series kneemeasure can measure: coronal MR, reformattable 3D, or ultrasound."""
    if series.modality == "US":
        return True
    if series.plane == "coronal":
        return True
    from kneemeasure.io import reformat

    return reformat.is_reformattable(series)


def measure_one(
    series: Series, options: MeasureOptions, *, executor: Executor | None = None
) -> list[Measurement]:
    """Measure one series, never raising a KneeMeasureError: failures become error rows."""
    try:
        if series.modality == "US":
            from kneemeasure.us_pipeline import measure_us_series

            return measure_us_series(series, options)
        return measure_series(series, options, executor=executor)
    except UsageError:
        raise
    except KneeMeasureError as exc:
        if not exc.source:
            exc.source = series_label(series)
        m = error_row(exc, series=series, options=options)
    except Exception as exc:  # a bug must not lose the other inputs' results
        if options.debug:
            raise
        log.debug("internal error on %s", series_label(series), exc_info=True)
        m = error_row(
            KneeMeasureError(
                f"internal error ({type(exc).__name__}: {str(exc)[:200]}); "
                "rerun with --debug for the traceback and report it",
                source=series_label(series),
            ),
            series=series,
            options=options,
        )
    if options.png:
        m.image = _preview_image(series)
    return [m]



def _warm_png() -> None:
    """Import the PNG renderer (Pillow) and draw a throw-away figure while the parent works."""
    import os

    # lower priority: the renderer's imports then take the cores when decoding and
    # detection leave one idle, instead of slowing them down
    os.nice(10)
    from kneemeasure.report.png import warm_up

    warm_up()


def _png_written(
    m: Measurement, debug: bool, render: Callable[..., bool], *args: object
) -> bool:
    """Run a PNG render (or collect its result); a failed PNG never loses the CSV row."""
    try:
        return bool(render(*args))
    except Exception as exc:  # noqa: BLE001 - Pillow/OS errors, a killed renderer
        if debug:
            raise
        log.warning("PNG for %s not written (%s: %s)", m.source, type(exc).__name__, exc)
        return False


def render_row_png(image: np.ndarray | None, m: Measurement, path: Path, label: str) -> bool:
    """The PNG of one row: the annotated measurement, or why it failed; False if none.

    Used by ``measure`` (in-process or in the renderer process) and by ``batch``.
    """
    from kneemeasure.report import render_error_png, render_measurement_png

    if m.status == "error":
        return render_error_png(image, m.error, path, title=f"not measured: {label}") is not None
    render_measurement_png(image, m, path, source_label=label)
    return True


def _measure_paths(
    paths: Sequence[str | Path],
    outdir: Path,
    options: MeasureOptions,
    executor: Executor | None,
    renderer: Executor | None,
    result: RunResult,
    inputs: list[dict],
    used_png: set[str],
    slice_rows: list[dict],
    progress: Callable[[str], None] | None,
) -> list[tuple[Measurement, Future]]:
    """The per-input loop of :func:`run_measure`; returns the PNGs still being rendered."""
    from kneemeasure.io import discover_series

    pending: list[tuple[Measurement, Future]] = []
    for path in paths:
        series_list, errors = discover_series([path], spacing_mm=options.spacing_mm)
        for err in errors:
            result.measurements.append(error_row(err, options=options))
            inputs.append(
                {"source": err.source, "status": "error", "error": err.error, "seconds": 0.0}
            )
        if not series_list and not errors:
            msg = "no DICOM files found under this path"
            result.measurements.append(
                error_row(InputError(source=str(path), error=f"{path}: {msg}"), options=options)
            )
            inputs.append({"source": str(path), "status": "error", "error": msg, "seconds": 0.0})
        candidates = [s for s in series_list if is_candidate(s)]
        for s in series_list:
            if candidates and s not in candidates:
                result.skipped.append(
                    {
                        "source": series_label(s),
                        "series_instance_uid": s.series_instance_uid,
                        "plane": s.plane,
                        "reason": f"{s.plane} series skipped "
                        "(a coronal series was found under the same path)",
                    }
                )
                continue
            t1 = time.perf_counter()
            if progress:
                progress(f"measuring {series_label(s)} ({s.n_slices} slices, {s.plane})")
            rows = measure_one(s, options, executor=executor)
            for m in rows:
                if options.png:
                    m.png = _png_name(m, used_png)
                    label = Path(series_label(s)).name
                    image, m.image = m.image, None
                    task = (image, copy.copy(m), outdir / m.png, label)
                    if renderer is None:
                        written = _png_written(m, options.debug, render_row_png, *task)
                        m.png = m.png if written else ""
                    else:
                        pending.append((m, renderer.submit(render_row_png, *task)))
                m.image = None
                for e in m.slice_profile:
                    slice_rows.append(
                        {
                            "series_instance_uid": m.series_instance_uid,
                            "side": m.side,
                            **{k: e.get(k) for k in SLICE_COLUMNS[2:]},
                        }
                    )
                result.measurements.append(m)
            inputs.append(
                {
                    "source": series_label(s),
                    "series_instance_uid": s.series_instance_uid,
                    "plane": s.plane,
                    "slices": s.n_slices,
                    "status": ",".join(sorted({m.status for m in rows})),
                    "error": "; ".join(m.error for m in rows if m.status == "error"),
                    "notes": sorted(
                        {n for m in rows if m.landmarks is not None for n in m.landmarks.notes}
                    ),
                    "seconds": round(time.perf_counter() - t1, 3),
                    "phase_seconds": rows[0].timings if rows else {},
                }
            )

    return pending


def run_measure(
    paths: Sequence[str | Path],
    outdir: Path,
    options: MeasureOptions | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    command: str = "measure",
) -> RunResult:
    """Measure every knee series under ``paths`` and write the outputs to ``outdir``.

    Writes ``measurements.csv`` (one row per series and side), one PNG per row,
    ``slices.csv`` (per-slice profile) and ``run.json``. Failures of single
    inputs become ``status=error`` rows; other inputs are still measured.
    """
    from kneemeasure.report import write_manifest, write_rows

    options = options or MeasureOptions()
    options.validate()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    result = RunResult()
    inputs: list[dict] = []
    used_png: set[str] = set()
    slice_rows: list[dict] = []
    # worker processes for one series at a time: decoding and slice detection, and
    # one more that imports the PNG renderer while the others work and draws the PNGs;
    # --debug keeps everything in-process so tracebacks stay plain
    n = 1 if options.debug else options.workers
    pool = series_executor(n) if n > 1 else None
    renderer = series_executor(1, warm=_warm_png) if pool is not None and options.png else None
    with pool or contextlib.nullcontext(), renderer or contextlib.nullcontext():
        pngs = _measure_paths(
            paths, outdir, options, pool, renderer, result, inputs, used_png, slice_rows, progress
        )
        for m, fut in pngs:  # PNGs rendered by the renderer process
            m.png = m.png if _png_written(m, options.debug, fut.result) else ""

    result.csv_path = write_rows(outdir / "measurements.csv", result.measurements)
    if options.points and options.points.get("save_corrections"):
        from kneemeasure.interactive.session import save_corrections

        save_corrections(options.points["save_corrections"], result.measurements)
    outputs = {
        "measurements_csv": "measurements.csv",
        "png": [m.png for m in result.measurements if m.png],
    }
    if slice_rows:
        write_rows(
            outdir / "slices.csv", [_fmt_slice(r) for r in slice_rows], columns=SLICE_COLUMNS
        )
        outputs["slices_csv"] = "slices.csv"
    opts = asdict(options)
    result.manifest_path = write_manifest(
        outdir / "run.json",
        command=command,
        options=opts,
        inputs=inputs + [{**s, "status": "skipped"} for s in result.skipped],
        outputs=outputs,
        started=started,
        elapsed_s=time.perf_counter() - t0,
    )
    return result


SLICE_COLUMNS = (
    "series_instance_uid",
    "side",
    "index",
    "instance_number",
    "sop_instance_uid",
    "position_mm",
    "plateau_row_px",
    "plateau_col_px",
    "meniscus_row_px",
    "meniscus_col_px",
    "extrusion_mm",
    "confidence",
    "status",
    "error",
    "reference",
)


def _fmt_slice(row: dict) -> dict[str, str]:
    out = {}
    for k in SLICE_COLUMNS:
        v = row.get(k)
        if v is None:
            out[k] = ""
        elif isinstance(v, bool):
            out[k] = "true" if v else "false"
        else:
            out[k] = f"{v:.3f}" if isinstance(v, float) else str(v)
    return out
