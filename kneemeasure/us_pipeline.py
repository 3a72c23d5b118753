"""Ultrasound rows for the pipeline: one measurement per ultrasound image file.

The measurement itself lives in :mod:`kneemeasure.us` (calibration region,
frame choice, detection, point-to-line distance); this module turns its result
into :class:`~kneemeasure.models.Measurement` rows like the MRI path does.
"""

from __future__ import annotations

import time

import numpy as np

from kneemeasure import __version__
from kneemeasure.errors import KneeMeasureError
from kneemeasure.models import Landmarks, Measurement, Series


def measure_us_series(series: Series, options) -> list[Measurement]:
    """Measure every ultrasound image file of ``series`` (one row each).

    A file that fails becomes an error row; the others are still measured.
    """
    from kneemeasure.interactive.points import points_for
    from kneemeasure.pipeline import error_row
    from kneemeasure.us import measure_us_file

    rows: list[Measurement] = []
    seen: set[str] = set()
    for ref in series.frames:
        key = str(ref.path)
        if key in seen:
            continue
        seen.add(key)
        m = Measurement(
            source=str(ref.path),
            study_instance_uid=series.study_instance_uid,
            series_instance_uid=series.series_instance_uid,
            sop_instance_uid=ref.sop_instance_uid,
            instance_number=ref.instance_number,
            modality="US",
            side="medial",
            threshold_mm=options.threshold_mm,
            us_reference=options.us_reference,
            kneemeasure_version=__version__,
        )
        pts = points_for(options.points, series.series_instance_uid, "medial")
        if pts is not None:
            try:
                rows.append(_manual_us_row(m, ref.path, pts, options))
            except KneeMeasureError as exc:
                if not exc.source:
                    exc.source = str(ref.path)
                rows.append(error_row(exc, options=options))
            continue
        t0 = time.perf_counter()
        try:
            r = measure_us_file(
                ref.path,
                frame=options.us_frame,
                reference=options.us_reference,
                proximal=options.us_proximal,
                spacing_mm=options.spacing_mm,
                threshold_mm=options.threshold_mm,
            )
        except KneeMeasureError as exc:
            if not exc.source:
                exc.source = str(ref.path)
            err = error_row(exc, options=options)
            err.source, err.modality = m.source, "US"
            err.study_instance_uid, err.series_instance_uid = (
                m.study_instance_uid, m.series_instance_uid)
            err.sop_instance_uid, err.instance_number = m.sop_instance_uid, m.instance_number
            rows.append(err)
            continue
        m.timings = {"decode_and_detect": round(time.perf_counter() - t0, 3)}
        lm = r.landmarks
        m.plateau_row_px, m.plateau_col_px = (float(v) for v in lm.reference_point_rc)
        m.meniscus_row_px, m.meniscus_col_px = (float(v) for v in lm.meniscus_rc)
        m.extrusion_mm = r.extrusion_mm
        m.extruded = r.extruded
        m.confidence = r.confidence
        m.status = "ok" if r.confidence >= options.confidence_threshold else "review"
        m.method = "auto"
        m.frame = r.frame
        m.row_spacing_mm, m.col_spacing_mm = r.row_spacing_mm, r.col_spacing_mm
        m.spacing_source = r.spacing_source
        m.laterality, m.laterality_source = series.laterality or "", series.laterality_source
        m.medial_image_side = "image-top (skin)"
        m.plateau_direction_source = "detected"
        m.landmarks = Landmarks(
            plateau_rc=tuple(lm.reference_point_rc),
            meniscus_rc=tuple(lm.meniscus_rc),
            meniscus_inner_rc=None,
            plateau_dir_rc=tuple(lm.reference_dir_rc),
            confidence=r.confidence,
            notes=list(lm.notes),
        )
        m.image = _full_frame(r, series)
        if r.notes and m.status == "review":
            m.error = "review: " + "; ".join(r.notes)[:300]
        rows.append(m)
    return rows


def _full_frame(result, series: Series) -> np.ndarray:
    """The measured region pasted into a frame of the stored size (rest black).

    Landmarks are in full-image pixel coordinates, so the PNG draws them on an
    image of the stored size; only the calibrated region (no burned-in text or
    UI chrome) is shown.
    """
    crop = np.asarray(result.image, dtype=np.float32)
    r0, c0 = (int(v) for v in result.region_offset_rc)
    rows = max(series.rows, r0 + crop.shape[0])
    cols = max(series.cols, c0 + crop.shape[1])
    full = np.full((rows, cols), float(np.min(crop)), dtype=np.float32)
    full[r0 : r0 + crop.shape[0], c0 : c0 + crop.shape[1]] = crop
    return full


def _manual_us_row(m: Measurement, path, pts, options) -> Measurement:
    """An ultrasound row from given points (``--points`` / ``--points-file``).

    ``pts.plateau_rc`` is the tibial reference point and ``pts.meniscus_rc`` the
    most superficial meniscal point (full-image pixels). The reference line runs
    through the tibial point along the two surface points (on the tibial
    cortex) when given, else along the image row. Calibration comes from the
    header's ultrasound region (or ``--spacing-mm``).
    """
    from kneemeasure.measure import to_mm, unit
    from kneemeasure.us import measure_us_points, points_calibration, read_us_frame

    t = tuple(float(v) for v in pts.plateau_rc)
    if pts.surface_rc is not None:
        (a, b) = pts.surface_rc
        d = (b[0] - a[0], b[1] - a[1])
        direction_source = "points"
    else:
        d = (0.0, 10.0)
        direction_source = "image-row"
    t2 = (t[0] + d[0], t[1] + d[1])
    frame = pts.frame if pts.frame is not None else (options.us_frame or 0)
    mme = measure_us_points(path, tibial_a_rc=t, tibial_b_rc=t2, meniscus_rc=pts.meniscus_rc,
                            frame=frame, spacing_mm=options.spacing_mm)
    rsp, csp, source = points_calibration(path, (t, t2, pts.meniscus_rc),
                                          spacing_mm=options.spacing_mm)
    m.plateau_row_px, m.plateau_col_px = t
    m.meniscus_row_px, m.meniscus_col_px = (float(v) for v in pts.meniscus_rc)
    m.extrusion_mm = mme
    m.extruded = bool(mme >= options.threshold_mm)
    m.confidence, m.status, m.method = 1.0, "ok", pts.method or "manual"
    m.frame = frame
    m.row_spacing_mm, m.col_spacing_mm, m.spacing_source = rsp, csp, source
    m.plateau_direction_source = direction_source
    m.medial_image_side = "image-top (skin)"
    m.landmarks = Landmarks(
        plateau_rc=t,
        meniscus_rc=tuple(float(v) for v in pts.meniscus_rc),
        meniscus_inner_rc=None,
        plateau_dir_rc=tuple(unit(to_mm(d, row_spacing_mm=rsp, col_spacing_mm=csp))),
        confidence=1.0,
        plateau_direction_source=direction_source,
    )
    m.image = read_us_frame(path, frame)
    return m
