"""``kneemeasure inspect``: describe what was found under some paths, measure nothing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kneemeasure.errors import KneeMeasureError
from kneemeasure.models import Series


def _mm(value: float | None) -> str:
    return "uncalibrated" if value is None else f"{value:.6g}"


def _fmt_spacing(s: Series) -> str:
    if s.row_spacing_mm is None or s.col_spacing_mm is None:
        return "spacing: none (pass --spacing-mm ROW COL)"
    return (
        f"spacing: row {s.row_spacing_mm:.6g} mm x col {s.col_spacing_mm:.6g} mm "
        f"({s.spacing_source})"
    )


def _which_slice(s: Series) -> str:
    """The slice the automatic path would measure (decodes the series)."""
    from kneemeasure.detect import infer_fibula_side, select_reference_slice
    from kneemeasure.io.geometry import laterality_from_fibula, side_col_sign
    from kneemeasure.pipeline import _prepare_series

    s = _prepare_series(s)
    volume = s.load_volume()
    rs, cs = float(s.row_spacing_mm), float(s.col_spacing_mm)
    iop = s.iop or (1, 0, 0, 0, 0, -1)
    lat, src = s.laterality, s.laterality_source
    extra = ""
    if lat is None:
        sign, conf = infer_fibula_side(volume, row_spacing_mm=rs, col_spacing_mm=cs)
        lat, src = laterality_from_fibula(sign, iop), "anatomy"
        extra = f" (fibular head, confidence {conf:.2f})"
    medial = side_col_sign(lat, iop, "medial")
    choice = select_reference_slice(
        volume, row_spacing_mm=rs, col_spacing_mm=cs, medial_col_sign=medial
    )
    f = s.frames[choice.index]
    side = "image-right" if medial > 0 else "image-left"
    return (
        f"laterality: {lat} ({src}){extra}; medial side: {side}\n"
        f"  would measure: instance {f.instance_number} (slice {choice.index + 1} of "
        f"{s.n_slices}, slice confidence {choice.confidence:.2f})"
    )


def describe_series(s: Series) -> list[str]:
    """Human-readable lines about one series (no patient data)."""
    lines = [
        f"{s.source}",
        f"  series {s.series_instance_uid}  modality {s.modality}  '{s.description}'",
        f"  plane: {s.plane}  slices/frames: {s.n_slices}  size {s.rows}x{s.cols}  {s.photometric}",
    ]
    if s.modality != "US":  # ultrasound calibration is per region, listed below
        lines.append(f"  {_fmt_spacing(s)}")
    if s.modality == "US":
        from kneemeasure.io.us_regions import choose_image_region

        for r in s.us_regions:
            lines.append(
                f"  US region {r.get('index')}: cols {r.get('x0')}..{r.get('x1')} rows "
                f"{r.get('y0')}..{r.get('y1')} format {r.get('spatial_format')} type "
                f"{r.get('data_type')} -> {_mm(r.get('row_spacing_mm'))} x "
                f"{_mm(r.get('col_spacing_mm'))} mm/px"
            )
        try:
            r = choose_image_region(s.us_regions)
            lines.append(
                f"  uses region {r['index']}: {r['row_spacing_mm']:.6g} mm/px (rows) x "
                f"{r['col_spacing_mm']:.6g} mm/px (cols)"
            )
        except KneeMeasureError as exc:
            lines.append(f"  calibration: {exc.message}")
        return lines
    lat = f"{s.laterality} ({s.laterality_source})" if s.laterality else "not in header"
    lines.append(f"  laterality (header): {lat}")
    from kneemeasure.pipeline import is_candidate

    if not is_candidate(s):
        lines.append(f"  not measured: {s.plane} series (kneemeasure measures coronal series)")
        return lines
    try:
        lines.append("  " + _which_slice(s))
    except KneeMeasureError as exc:
        lines.append(f"  would fail: {exc.message}")
    return lines


def describe_paths(
    paths: Sequence[str | Path], *, spacing_mm: tuple[float, float] | None = None
) -> tuple[list[str], bool]:
    """Lines describing every series under ``paths``; ``failed`` when some input is unreadable."""
    from kneemeasure.io import discover_series

    series, errors = discover_series(list(paths), spacing_mm=spacing_mm)
    lines: list[str] = []
    for s in series:
        lines.extend(describe_series(s))
    for e in errors:
        lines.append(f"{e.source}\n  unreadable: {e.error}")
    if not series and not errors:
        lines.append("no DICOM series found")
    return lines, bool(errors) or not series
