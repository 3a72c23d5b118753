"""Ultrasound rows for the pipeline: one measurement per ultrasound image file.

The measurement itself lives in :mod:`kneemeasure.us` (calibration region,
frame choice, detection, point-to-line distance); this module turns its result
into :class:`~kneemeasure.models.Measurement` rows like the MRI path does.
"""

from __future__ import annotations

from kneemeasure import __version__
from kneemeasure.errors import KneeMeasureError
from kneemeasure.models import Landmarks, Measurement, Series


def measure_us_series(series: Series, options) -> list[Measurement]:
    """Measure every ultrasound image file of ``series`` (one row each).

    A file that fails becomes an error row; the others are still measured.
    """
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
            source=str(ref.path) if len(series.frames) > 1 else series.source,
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
        m.image = r.full_image if getattr(r, "full_image", None) is not None else None
        rows.append(m)
    return rows
