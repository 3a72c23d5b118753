"""Manual landmarks inside the pipeline: ``--points``, ``--points-file``, ``--interactive``.

:func:`measure_series_manual` is what :func:`kneemeasure.pipeline.measure_series`
calls when ``MeasureOptions.points`` is set; it returns the same
:class:`Measurement` rows as the automatic path, with ``method`` = ``"manual"``
or ``"auto+corrected"`` where the landmarks came from a person, and
``"auto"`` rows (identical to the automatic path) for series and sides
without manual points, skipped sessions, or automatic landmarks accepted unchanged.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

from kneemeasure.errors import DetectionError, KneeMeasureError, LateralityError, UsageError
from kneemeasure.interactive.points import (
    MANUAL_METHODS,
    ManualPoints,
    check_inside,
    landmarks_from_points,
    points_for,
    write_points_file,
)
from kneemeasure.models import Landmarks, Measurement, Series

log = logging.getLogger("kneemeasure")


def _index_of_instance(series: Series, instance: int, what: str) -> int:
    numbers = [f.instance_number for f in series.frames]
    if instance not in numbers:
        known = sorted(n for n in numbers if n is not None)
        have = f"{known[0]}..{known[-1]}" if known else "no Instance Numbers"
        raise UsageError(
            f"{what} {instance}: no such Instance Number in this series (it has {have})",
            source=series.source,
        )
    return numbers.index(instance)


def measure_series_manual(series: Series, options) -> list[Measurement]:
    """Measure one MR series with manual (or interactively corrected) landmarks.

    Parameters
    ----------
    series : Series
        Header-level series (coronal, or reformattable to coronal).
    options : kneemeasure.pipeline.MeasureOptions
        ``options.points`` is the dict from
        :func:`~kneemeasure.interactive.points.build_points_option`.

    Returns
    -------
    list of Measurement
        One per requested side, carrying ``landmarks`` and ``image`` for the PNG.
    """
    from kneemeasure import pipeline as pl

    opt = options.points or {}
    interactive = bool(opt.get("interactive"))
    no_auto = bool(opt.get("no_auto"))
    sides = options.sides()
    given = {side: points_for(opt, series.series_instance_uid, side) for side in sides}
    if not interactive and all(p is None for p in given.values()):
        if no_auto:
            raise UsageError(
                f"--no-auto: the points file has no row for series {series.series_instance_uid}",
                source=series.source,
            )
        # a --points-file only overrides the series it lists
        return pl.measure_series(series, dataclasses.replace(options, points=None))
    if interactive:
        from kneemeasure.interactive.window import check_display

        check_display()

    if options.spacing_mm is not None:
        series.row_spacing_mm, series.col_spacing_mm = options.spacing_mm
        series.spacing_source = "user"
    series = pl._prepare_series(series)
    pl._check_measurable(series, allow_single=True)
    rs, cs = float(series.row_spacing_mm), float(series.col_spacing_mm)
    volume = series.load_volume()
    pl._constant_check(volume, series.source)
    n = volume.shape[0]

    laterality, lat_source = pl._resolve_laterality(series, options)
    iop = series.iop or (1, 0, 0, 0, 0, -1)
    from kneemeasure.io.geometry import laterality_from_fibula, side_col_sign

    if laterality is None:
        from kneemeasure.detect import infer_fibula_side

        try:
            fib_sign, _ = infer_fibula_side(volume, row_spacing_mm=rs, col_spacing_mm=cs)
        except KneeMeasureError as exc:
            raise LateralityError(
                f"knee side unknown: no Laterality (0020,0060) and the fibular head was not "
                f"found ({exc.message}); pass --laterality left|right",
                source=series.source,
            ) from None
        laterality = laterality_from_fibula(fib_sign, iop)
        lat_source = "anatomy"
    medial_sign = side_col_sign(laterality, iop, "medial")

    # the slice: --slice, else the automatic choice, else (no detection) ask
    body: list[int] = []
    slice_conf = 1.0
    forced = options.slice_instance is not None
    # the automatic slice choice is only needed where no slice is named
    named = all(p is not None and p.instance_number is not None for p in given.values())
    if forced:
        index = _index_of_instance(series, options.slice_instance, "--slice")
    elif n == 1:
        index = 0
    elif named and not interactive:
        index = -1  # every side names its slice
    elif not no_auto:
        from kneemeasure.detect import select_reference_slice

        choice = select_reference_slice(
            volume, row_spacing_mm=rs, col_spacing_mm=cs, medial_col_sign=medial_sign
        )
        index, body, slice_conf = choice.index, list(choice.body_indices), float(choice.confidence)
    elif interactive:
        index = n // 2
    else:
        index = -1  # must come from the points file (checked per side below)

    detect_cache: dict[tuple[int, str], Landmarks | None] = {}

    def detect(i: int, side: str, outer: int) -> Landmarks | None:
        if no_auto:
            return None
        if (i, side) not in detect_cache:
            from kneemeasure.detect import detect_landmarks

            try:
                detect_cache[(i, side)] = detect_landmarks(
                    volume[i], row_spacing_mm=rs, col_spacing_mm=cs, outer_col_sign=outer, side=side
                )
            except DetectionError as exc:
                log.info("%s: no automatic landmarks on slice %d: %s", series.source, i, exc)
                detect_cache[(i, side)] = None
        return detect_cache[(i, side)]

    rows: list[Measurement] = []
    for side in sides:
        outer = medial_sign if side == "medial" else -medial_sign
        mp = given[side]
        i0 = index
        if mp is not None and mp.instance_number is not None and not forced:
            i0 = _index_of_instance(series, mp.instance_number, "points file instance_number")
        if i0 < 0:
            raise UsageError(
                "--no-auto on a multi-slice series: say which slice with --slice N "
                "(or an instance_number in the points file)",
                source=series.source,
            )
        m = pl._base_row(series, options, side)
        m.laterality, m.laterality_source = laterality, lat_source
        m.medial_image_side = pl._image_side(medial_sign)
        needs_detection = (
            interactive
            or mp is None
            or mp.inner_from_detection
            or (mp.surface_rc is None and mp.direction_source != "image-row")
        )
        auto = detect(i0, side, outer) if needs_detection else None

        def auto_row(
            m: Measurement = m,
            auto: Landmarks | None = auto,
            i: int = i0,
            side: str = side,
            outer: int = outer,
        ) -> None:
            if auto is None:
                raise DetectionError(
                    "automatic detection found no landmarks on this slice; "
                    "measure it with --interactive or --points",
                    source=series.source,
                )
            lm = dataclasses.replace(auto, notes=list(auto.notes))
            if slice_conf < 1.0:
                lm.confidence = float(lm.confidence) * (0.6 + 0.4 * slice_conf)
            if lat_source == "anatomy":
                lm.notes.append("laterality inferred from anatomy (fibular head)")
            _set_frame(m, series, i)
            m.method = "auto"
            pl._fill_from_landmarks(m, lm, series, options)
            m.image = volume[i]
            if options.profile and not forced and len(body) > 1:
                pl._slice_profile(m, volume, series, body, side=side, outer=outer)

        try:
            if interactive:
                from kneemeasure.interactive.window import run_session

                res = run_session(
                    volume,
                    index=i0,
                    row_spacing_mm=rs,
                    col_spacing_mm=cs,
                    outer_col_sign=outer,
                    auto=auto,
                    detect=None if no_auto else (lambda i, s=side, o=outer: detect(i, s, o)),
                    instance_numbers=[f.instance_number for f in series.frames],
                    threshold_mm=options.threshold_mm,
                    side=side,
                    medial_image_side=m.medial_image_side,
                    title=Path(series.source).name,
                )
                if res.action == "skip" and auto is None:
                    raise KneeMeasureError(
                        "not measured: skipped in the interactive session", source=series.source
                    )
                if res.action == "skip" or res.method == "auto":
                    auto_row()
                else:
                    _manual_row(m, series, options, res.index, res.landmarks, res.method)
                    m.image = volume[res.index]
            elif mp is None:
                auto_row()
            else:
                check_inside(mp, volume.shape[1:], where=series.source)
                lm = landmarks_from_points(
                    mp,
                    row_spacing_mm=rs,
                    col_spacing_mm=cs,
                    outer_col_sign=outer,
                    detected=auto,
                )
                _manual_row(m, series, options, i0, lm, mp.method)
                m.image = volume[i0]
        except UsageError:
            raise
        except KneeMeasureError as exc:
            if not exc.source:
                exc.source = series.source
            m = pl.error_row(exc, series=series, options=options, side=side)
            m.image = volume[i0]
        rows.append(m)
    return rows


def _set_frame(m: Measurement, series: Series, index: int) -> None:
    frame = series.frames[index]
    m.sop_instance_uid = frame.sop_instance_uid
    m.instance_number = frame.instance_number


def _manual_row(
    m: Measurement, series: Series, options, index: int, lm: Landmarks, method: str
) -> None:
    from kneemeasure import pipeline as pl

    _set_frame(m, series, index)
    m.method = method
    pl._fill_from_landmarks(m, lm, series, options)


def corrections_from_rows(rows: Sequence[Measurement]) -> list[ManualPoints]:
    """The manual / corrected rows of a run as :class:`ManualPoints` (for a corrections file)."""
    out = []
    for m in rows:
        if m.method not in MANUAL_METHODS or m.status == "error" or m.plateau_row_px is None:
            continue
        lm = m.landmarks
        surface = lm.plateau_surface_rc if lm is not None else None
        if m.plateau_direction_source != "points":
            surface = None
        out.append(
            ManualPoints(
                plateau_rc=(m.plateau_row_px, m.plateau_col_px),
                meniscus_rc=(m.meniscus_row_px, m.meniscus_col_px),
                surface_rc=surface,
                series_instance_uid=m.series_instance_uid,
                side=m.side,
                instance_number=m.instance_number,
                method=m.method,
                frame=m.frame,
                direction_source=m.plateau_direction_source,
                meniscus_inner_rc=None if lm is None else lm.meniscus_inner_rc,
                inner_from_detection=False,
            )
        )
    return out


def save_corrections(path: str | Path, rows: Sequence[Measurement]) -> Path | None:
    """Write the corrections of a run to ``path`` (``None`` when there were none).

    The file is a ``--points-file``: replaying it reproduces the corrected rows.
    """
    entries = corrections_from_rows(rows)
    if not entries:
        log.warning("no corrections to save (every row automatic, skipped or failed)")
        return None
    return write_points_file(path, entries)


__all__ = [
    "corrections_from_rows",
    "measure_series_manual",
    "save_corrections",
]
