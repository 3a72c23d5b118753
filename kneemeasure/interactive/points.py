"""Landmarks given by hand: ``--points`` strings, ``--points-file`` CSVs, corrections files.

A manual measurement is the reproducible form of a correction: the tibial
margin and the meniscal edge as ``(row, col)`` pixels of the stored image (the
same convention as the ``plateau_*_px`` / ``meniscus_*_px`` CSV columns), and
optionally two points on the plateau surface that give the plateau direction.

The plateau direction comes from, in this order: the two surface points
(``plateau_direction_source = "points"``), the automatic detection on the same
slice (``"detected"``), or the image row direction (``"image-row"``).

Ultrasound (``modality="US"``): the two points are the tibial reference point
and the most superficial point of the meniscal body; the direction is the
tibial cortex line (surface points = two points on the cortex) and MME is the
signed perpendicular distance toward the skin (smaller row).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kneemeasure.errors import KneeMeasureError, UsageError
from kneemeasure.measure import (
    plateau_direction_from_points,
    signed_distance_to_line,
    unit,
)
from kneemeasure.models import Landmarks

Point = tuple[float, float]

#: Columns of a corrections / ``--points-file`` CSV. The first seven are required.
POINTS_COLUMNS: tuple[str, ...] = (
    "series_instance_uid",
    "side",
    "instance_number",
    "plateau_row_px",
    "plateau_col_px",
    "meniscus_row_px",
    "meniscus_col_px",
    "surface1_row_px",
    "surface1_col_px",
    "surface2_row_px",
    "surface2_col_px",
    "meniscus_inner_row_px",
    "meniscus_inner_col_px",
    "plateau_direction_source",
    "method",
    "frame",
)
REQUIRED_COLUMNS = POINTS_COLUMNS[:7]
MANUAL_METHODS = ("manual", "auto+corrected")

#: Decimals kept for manual coordinates (1/1000 pixel); the interactive session
#: rounds to the same grid so a corrections file replays bit-identically.
COORD_DECIMALS = 3


@dataclass
class ManualPoints:
    """Hand-placed landmarks for one slice (and optionally one series and side).

    Attributes
    ----------
    plateau_rc : (float, float)
        Tibial margin (US: tibial reference point), ``(row, col)`` pixels.
    meniscus_rc : (float, float)
        Outer edge of the meniscal body (US: most superficial point), pixels.
    surface_rc : ((float, float), (float, float)) or None
        Two points on the plateau surface (US: on the tibial cortex) giving the
        plateau direction; ``None`` to use detection or the image row.
    series_instance_uid : str
        Series the points belong to; ``""`` means every series (``--points``).
    side : str
        ``"medial"`` or ``"lateral"``; ``""`` means every requested side.
    instance_number : int or None
        Instance Number (0020,0013) of the slice; ``None`` = the automatic / ``--slice`` one.
    method : str
        ``"manual"`` or ``"auto+corrected"`` (how the points were obtained).
    frame : int or None
        Ultrasound cine frame (0-based).
    direction_source : str
        ``""`` (decide: surface points, else detection, else image row),
        ``"image-row"`` (never use detection for the direction), ``"detected"``
        (detection required) or ``"points"`` (the surface points).
    meniscus_inner_rc : (float, float) or None
        Inner apex of the meniscal body (for the width), when given.
    inner_from_detection : bool
        ``True``: take the inner apex from detection (when it ran); ``False``:
        use ``meniscus_inner_rc`` as given, ``None`` meaning no width.
    """

    plateau_rc: Point
    meniscus_rc: Point
    surface_rc: tuple[Point, Point] | None = None
    series_instance_uid: str = ""
    side: str = ""
    instance_number: int | None = None
    method: str = "manual"
    frame: int | None = None
    direction_source: str = ""
    meniscus_inner_rc: Point | None = None
    inner_from_detection: bool = True

    def to_dict(self) -> dict:
        """Plain JSON-friendly dict (used in :class:`MeasureOptions.points` and run.json)."""
        return {
            "plateau_rc": list(self.plateau_rc),
            "meniscus_rc": list(self.meniscus_rc),
            "surface_rc": None if self.surface_rc is None else [list(p) for p in self.surface_rc],
            "series_instance_uid": self.series_instance_uid,
            "side": self.side,
            "instance_number": self.instance_number,
            "method": self.method,
            "frame": self.frame,
            "direction_source": self.direction_source,
            "meniscus_inner_rc": None
            if self.meniscus_inner_rc is None
            else list(self.meniscus_inner_rc),
            "inner_from_detection": self.inner_from_detection,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ManualPoints:
        surface = d.get("surface_rc")
        return cls(
            plateau_rc=tuple(float(v) for v in d["plateau_rc"]),
            meniscus_rc=tuple(float(v) for v in d["meniscus_rc"]),
            surface_rc=None
            if surface is None
            else tuple(tuple(float(v) for v in p) for p in surface),
            series_instance_uid=d.get("series_instance_uid", "") or "",
            side=d.get("side", "") or "",
            instance_number=d.get("instance_number"),
            method=d.get("method", "manual") or "manual",
            frame=d.get("frame"),
            direction_source=d.get("direction_source", "") or "",
            meniscus_inner_rc=None
            if d.get("meniscus_inner_rc") is None
            else tuple(float(v) for v in d["meniscus_inner_rc"]),
            inner_from_detection=bool(d.get("inner_from_detection", True)),
        )


def _round_point(p: Sequence[float]) -> Point:
    return (round(float(p[0]), COORD_DECIMALS), round(float(p[1]), COORD_DECIMALS))


def _float(text: str, what: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{where}: {what} {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise UsageError(f"{where}: {what} {text.strip()!r} is not a finite number")
    return value


def parse_points(text: str) -> ManualPoints:
    """Parse a ``--points`` string.

    Parameters
    ----------
    text : str
        ``"PLATEAU_ROW,PLATEAU_COL;MENISCUS_ROW,MENISCUS_COL"``, optionally followed by
        ``";S1_ROW,S1_COL;S2_ROW,S2_COL"`` (two points on the plateau surface).
        Pixel coordinates, 0-based, ``(row, col)`` as in measurements.csv.

    Returns
    -------
    ManualPoints

    Raises
    ------
    UsageError
        On a malformed string (the message shows the expected form).

    Examples
    --------
    >>> parse_points("120.5,80;118,72").meniscus_rc
    (118.0, 72.0)
    """
    form = (
        "expected --points 'PLATEAU_ROW,PLATEAU_COL;MENISCUS_ROW,MENISCUS_COL"
        "[;S1_ROW,S1_COL;S2_ROW,S2_COL]'"
    )
    parts = [p.strip() for p in text.strip().strip(";").split(";")]
    if len(parts) not in (2, 4):
        raise UsageError(f"--points {text!r}: {len(parts)} point(s) given; {form}")
    pts: list[Point] = []
    for k, part in enumerate(parts):
        xy = part.split(",")
        if len(xy) != 2:
            raise UsageError(f"--points {text!r}: point {k + 1} ({part!r}) is not ROW,COL; {form}")
        pts.append(
            _round_point(
                (
                    _float(xy[0], f"row of point {k + 1}", "--points"),
                    _float(xy[1], f"col of point {k + 1}", "--points"),
                )
            )
        )
    surface = (pts[2], pts[3]) if len(pts) == 4 else None
    if surface is not None and surface[0] == surface[1]:
        raise UsageError(
            f"--points {text!r}: the two plateau surface points coincide; give two distinct points"
        )
    return ManualPoints(plateau_rc=pts[0], meniscus_rc=pts[1], surface_rc=surface)


def read_points_file(path: str | Path) -> list[ManualPoints]:
    """Read a ``--points-file`` / corrections CSV.

    Parameters
    ----------
    path : str or Path
        CSV with a header line and the columns ``series_instance_uid, side,
        instance_number, plateau_row_px, plateau_col_px, meniscus_row_px,
        meniscus_col_px`` (required) and optionally ``surface1_row_px,
        surface1_col_px, surface2_row_px, surface2_col_px`` (empty cells = no
        surface points), ``method`` and ``frame``. Other columns are ignored,
        so a ``measurements.csv`` can be edited into a corrections file.

    Returns
    -------
    list of ManualPoints
        One per data row.

    Raises
    ------
    UsageError
        Missing file or column, a malformed number, or a duplicated (series, side).
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--points-file {path}: no such file")
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise UsageError(
                f"--points-file {path}: missing column(s) {', '.join(missing)}; "
                f"the header must contain {', '.join(REQUIRED_COLUMNS)}"
            )
        rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
    out: list[ManualPoints] = []
    seen: set[tuple[str, str]] = set()
    for n, r in enumerate(rows, start=2):
        where = f"--points-file {path} line {n}"
        if not any(r.values()):
            continue
        side = r["side"].lower()
        if side not in ("medial", "lateral"):
            raise UsageError(f"{where}: side must be medial or lateral, not {r['side']!r}")
        uid = r["series_instance_uid"]
        if not uid:
            raise UsageError(f"{where}: empty series_instance_uid")
        if (uid, side) in seen:
            raise UsageError(f"{where}: second row for series {uid} {side}; keep one per side")
        seen.add((uid, side))
        inst = r["instance_number"]
        instance = None
        if inst:
            try:
                instance = int(float(inst))
            except ValueError:
                raise UsageError(f"{where}: instance_number {inst!r} is not an integer") from None

        def pt(prefix: str, row: dict = r, where: str = where) -> Point:
            return _round_point(
                (
                    _float(row[f"{prefix}_row_px"], f"{prefix}_row_px", where),
                    _float(row[f"{prefix}_col_px"], f"{prefix}_col_px", where),
                )
            )

        surface = None
        scells = [r.get(f"surface{i}_{a}_px", "") for i in (1, 2) for a in ("row", "col")]
        if any(scells):
            if not all(scells):
                raise UsageError(
                    f"{where}: give all four surface1/surface2 row/col cells or none of them"
                )
            surface = (pt("surface1"), pt("surface2"))
            if surface[0] == surface[1]:
                raise UsageError(f"{where}: the two plateau surface points coincide")
        inner = None
        has_inner = "meniscus_inner_row_px" in header and "meniscus_inner_col_px" in header
        if has_inner and (r["meniscus_inner_row_px"] or r["meniscus_inner_col_px"]):
            inner = pt("meniscus_inner")
        source = r.get("plateau_direction_source", "")
        if source not in ("", "points", "detected", "image-row"):
            raise UsageError(
                f"{where}: plateau_direction_source must be points, detected or image-row, "
                f"not {source!r}"
            )
        if source == "points" and surface is None:
            raise UsageError(
                f"{where}: plateau_direction_source=points needs the surface1/surface2 cells"
            )
        method = r.get("method", "") or "manual"
        if method not in MANUAL_METHODS:
            raise UsageError(
                f"{where}: method must be one of {', '.join(MANUAL_METHODS)}, not {method!r}"
            )
        frame = r.get("frame", "")
        out.append(
            ManualPoints(
                plateau_rc=pt("plateau"),
                meniscus_rc=pt("meniscus"),
                surface_rc=surface,
                series_instance_uid=uid,
                side=side,
                instance_number=instance,
                method=method,
                frame=int(float(frame)) if frame else None,
                direction_source=source,
                meniscus_inner_rc=inner,
                inner_from_detection=not has_inner,
            )
        )
    return out


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{float(v):.{COORD_DECIMALS}f}"


def write_points_file(path: str | Path, entries: Iterable[ManualPoints]) -> Path:
    """Write corrections as a ``--points-file`` CSV (atomic; columns :data:`POINTS_COLUMNS`)."""
    from kneemeasure.report.csvout import write_rows

    rows = []
    for e in entries:
        s1, s2 = e.surface_rc if e.surface_rc is not None else ((None, None), (None, None))
        inner = e.meniscus_inner_rc if e.meniscus_inner_rc is not None else (None, None)
        rows.append(
            {
                "series_instance_uid": e.series_instance_uid,
                "side": e.side,
                "instance_number": "" if e.instance_number is None else str(e.instance_number),
                "plateau_row_px": _fmt(e.plateau_rc[0]),
                "plateau_col_px": _fmt(e.plateau_rc[1]),
                "meniscus_row_px": _fmt(e.meniscus_rc[0]),
                "meniscus_col_px": _fmt(e.meniscus_rc[1]),
                "surface1_row_px": _fmt(s1[0]),
                "surface1_col_px": _fmt(s1[1]),
                "surface2_row_px": _fmt(s2[0]),
                "surface2_col_px": _fmt(s2[1]),
                "meniscus_inner_row_px": _fmt(inner[0]),
                "meniscus_inner_col_px": _fmt(inner[1]),
                "plateau_direction_source": e.direction_source,
                "method": e.method,
                "frame": "" if e.frame is None else str(e.frame),
            }
        )
    return write_rows(Path(path), rows, columns=POINTS_COLUMNS)


def landmarks_from_points(
    points: ManualPoints,
    *,
    row_spacing_mm: float,
    col_spacing_mm: float,
    outer_col_sign: int,
    detected: Landmarks | None = None,
    modality: str = "MR",
) -> Landmarks:
    """Turn hand-placed points into :class:`Landmarks` (the plateau direction decided here).

    Parameters
    ----------
    points : ManualPoints
        The margin and meniscus points (pixels), optionally two plateau surface points.
    row_spacing_mm, col_spacing_mm : float
        Pixel spacing (mm); the direction is computed in physical space.
    outer_col_sign : {+1, -1}
        +1 when the measured compartment's outer edge is toward increasing column
        (MRI); orients the plateau direction outward.
    detected : Landmarks, optional
        Automatic landmarks on the same slice: their plateau direction is used
        when no surface points are given (unless ``points.direction_source ==
        "image-row"``), and their inner meniscal apex gives the meniscal width
        (unless ``points.inner_from_detection`` is false).
    modality : {"MR", "US"}
        For ``"US"`` the image-row fallback is the row direction ``(0, 1)``
        (the cortex runs roughly parallel to the skin).

    Returns
    -------
    Landmarks
        ``confidence = 1.0`` (a person placed the points) and
        ``plateau_direction_source`` in ``{"points", "detected", "image-row"}``.
    """
    notes = []
    if points.direction_source == "detected" and points.surface_rc is None and detected is None:
        raise KneeMeasureError(
            "the points say the plateau direction was detected, but there is no automatic "
            "result on this slice (--no-auto or detection failed); add surface points"
        )
    if points.surface_rc is not None:
        direction = plateau_direction_from_points(
            points.surface_rc[0],
            points.surface_rc[1],
            row_spacing_mm=row_spacing_mm,
            col_spacing_mm=col_spacing_mm,
            outer_col_sign=outer_col_sign if modality != "US" else 1,
        )
        source = "points"
    elif detected is not None and points.direction_source != "image-row":
        direction = unit(detected.plateau_dir_rc)
        source = "detected"
    else:
        direction = np.array([0.0, float(outer_col_sign if modality != "US" else 1)])
        source = "image-row"
        notes.append("plateau direction = image row (no surface points, no detection)")
    if points.inner_from_detection:
        inner = detected.meniscus_inner_rc if detected is not None else None
    else:
        inner = points.meniscus_inner_rc
    return Landmarks(
        plateau_rc=(float(points.plateau_rc[0]), float(points.plateau_rc[1])),
        meniscus_rc=(float(points.meniscus_rc[0]), float(points.meniscus_rc[1])),
        meniscus_inner_rc=inner,
        plateau_dir_rc=(float(direction[0]), float(direction[1])),
        confidence=1.0,
        plateau_direction_source=source,
        notes=notes,
        plateau_surface_rc=points.surface_rc,
    )


def measure_from_points(
    points: ManualPoints,
    *,
    row_spacing_mm: float,
    col_spacing_mm: float,
    outer_col_sign: int = 1,
    detected: Landmarks | None = None,
    modality: str = "MR",
) -> tuple[Landmarks, float]:
    """Extrusion (mm) from hand-placed points, without any window.

    Parameters
    ----------
    points, row_spacing_mm, col_spacing_mm, outer_col_sign, detected, modality
        As in :func:`landmarks_from_points`.

    Returns
    -------
    landmarks : Landmarks
    extrusion_mm : float
        MRI: Kanagawa construction (distance between the line through the margin
        perpendicular to the plateau and its parallel through the meniscus point,
        positive outward). US: signed perpendicular distance from the meniscus
        point to the tibial reference line, positive toward the skin (smaller row).

    Examples
    --------
    >>> lm, mme = measure_from_points(ManualPoints((10, 10), (12, 16)),
    ...                               row_spacing_mm=0.5, col_spacing_mm=0.5)
    >>> round(mme, 3), lm.plateau_direction_source
    (3.0, 'image-row')
    """
    from kneemeasure.measure import extrusion_mm

    lm = landmarks_from_points(
        points,
        row_spacing_mm=row_spacing_mm,
        col_spacing_mm=col_spacing_mm,
        outer_col_sign=outer_col_sign,
        detected=detected,
        modality=modality,
    )
    if modality == "US":
        mme = signed_distance_to_line(
            lm.meniscus_rc,
            lm.plateau_rc,
            line_dir_rc=lm.plateau_dir_rc,
            positive_rc=(-1.0, 0.0),
            row_spacing_mm=row_spacing_mm,
            col_spacing_mm=col_spacing_mm,
        )
    else:
        mme = extrusion_mm(
            lm.plateau_rc,
            lm.meniscus_rc,
            plateau_dir_rc=lm.plateau_dir_rc,
            row_spacing_mm=row_spacing_mm,
            col_spacing_mm=col_spacing_mm,
        )
    return lm, mme


def check_inside(points: ManualPoints, shape: tuple[int, int], *, where: str) -> None:
    """Raise :class:`KneeMeasureError` when a point lies outside an image of ``shape``."""
    named = [("plateau", points.plateau_rc), ("meniscus", points.meniscus_rc)]
    if points.surface_rc is not None:
        named += [("surface1", points.surface_rc[0]), ("surface2", points.surface_rc[1])]
    for name, (r, c) in named:
        if not (-0.5 <= r <= shape[0] - 0.5 and -0.5 <= c <= shape[1] - 0.5):
            raise KneeMeasureError(
                f"{name} point ({r:g}, {c:g}) lies outside the {shape[0]}x{shape[1]} image; "
                "points are (row, col) pixels, 0-based — check the order and the slice",
                source=where,
            )


# --------------------------------------------------------------------- the option


def build_points_option(
    *,
    points: str | None = None,
    points_file: str | Path | None = None,
    interactive: bool = False,
    no_auto: bool = False,
    save_corrections: str | Path | None = None,
) -> dict | None:
    """Validate the manual-landmark CLI options into ``MeasureOptions.points``.

    Returns ``None`` when none is given (fully automatic run); else a plain,
    JSON-friendly dict ``{"given": dict|None, "entries": [dict], "file": str|None,
    "interactive": bool, "no_auto": bool, "save_corrections": str|None}``.
    Parsing happens here so that a bad option fails before any image is read.
    """
    if points is not None and points_file is not None:
        raise UsageError("give either --points or --points-file, not both")
    if not (points or points_file or interactive or no_auto or save_corrections):
        return None
    if save_corrections is not None and not interactive:
        raise UsageError(
            "--save-corrections is written by an --interactive session; "
            "add --interactive (a --points-file is already a corrections file)"
        )
    if no_auto and not (interactive or points or points_file):
        raise UsageError(
            "--no-auto needs landmarks from somewhere: add --interactive, --points or --points-file"
        )
    if interactive and (points is not None or points_file is not None):
        raise UsageError(
            "--interactive starts from the automatic landmarks; "
            "use it without --points / --points-file (replay those without a window)"
        )
    given = parse_points(points) if points is not None else None
    entries = read_points_file(points_file) if points_file is not None else []
    if points_file is not None and not entries:
        raise UsageError(f"--points-file {points_file}: no data rows")
    return {
        "given": None if given is None else given.to_dict(),
        "entries": [e.to_dict() for e in entries],
        "file": None if points_file is None else str(points_file),
        "interactive": bool(interactive),
        "no_auto": bool(no_auto),
        "save_corrections": None if save_corrections is None else str(save_corrections),
    }


def points_for(option: dict | None, series_instance_uid: str, side: str) -> ManualPoints | None:
    """The manual points that apply to one series and side (``None``: measure automatically)."""
    if not option:
        return None
    if option.get("given"):
        mp = ManualPoints.from_dict(option["given"])
        mp.series_instance_uid, mp.side = series_instance_uid, side
        return mp
    for d in option.get("entries", []):
        if d["series_instance_uid"] == series_instance_uid and d["side"] == side:
            return ManualPoints.from_dict(d)
    return None
