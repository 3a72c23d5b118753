"""Validation against exact phantom truth: the hard suite, the harness and the report.

* :func:`hard_suite_specs` builds a deterministic list of ``(condition, spec)``
  pairs covering contrasts, pixel spacings, noise/bias, rotation, varus tilt,
  osteophytes, degeneration, effusion, negative and large extrusion and both knees.
* :func:`write_suite` renders them as DICOM series with ``truth.csv`` (with a
  ``condition`` column) and ``truth_slices.csv`` (per-slice truth extrusion).
* :func:`validate_dir` measures every series listed in a ``truth.csv`` with
  :func:`kneemeasure.pipeline.measure_series` (in a process pool), compares it
  with the truth and summarises per condition, per knee and overall.
* Ultrasound: :func:`us_suite` / :func:`write_us_suite` write the ultrasound
  phantom suite (one DICOM file per case, ``truth.csv`` with ``modality = US``,
  ``file``, ``condition`` and ``tags``); :func:`validate_dir` also reads
  ultrasound truth (those rows, or ``us_truth.csv``), measures each file with
  :func:`kneemeasure.pipeline.measure_one` and scores it with
  :func:`score_us_case` (frame choice instead of slice choice). A folder with
  both (``sample_dicoms/``) is reported per modality.
* :func:`format_report` prints the summary as fixed-width tables;
  :func:`write_report` writes ``validation.csv``, ``validation_cases.csv`` and
  ``validation.json``.

The harness reports; it does not judge. Conventions: points ``(row, col)`` in
pixels; landmark errors are Euclidean in mm using both pixel spacings; slice
errors are counted in slices along the position order (never raw Instance
Number differences, so reversed numbering is handled). Ultrasound landmark
errors are in full-image pixels of the stored frame (the truth rows include the
calibrated region's offset), converted with the region's Physical Delta X/Y.
"""

from __future__ import annotations

import csv
import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from kneemeasure import __version__
from kneemeasure.errors import KneeMeasureError, UsageError
from kneemeasure.phantom import TRUTH_COLUMNS, PhantomSpec, make_truth, write_series
from kneemeasure.pipeline import MeasureOptions

__all__ = [
    "CONDITIONS",
    "CASE_COLUMNS",
    "GROUP_COLUMNS",
    "US_CONDITIONS",
    "US_TAGS",
    "ValidationReport",
    "error_causes",
    "format_report",
    "hard_suite_specs",
    "landmark_error_mm",
    "read_truth",
    "read_us_truth",
    "score_case",
    "score_us_case",
    "slice_error",
    "summarize",
    "truth_instance_numbers",
    "us_condition",
    "us_suite",
    "validate_dir",
    "write_report",
    "write_suite",
    "write_us_suite",
]

#: Conditions of the hard suite, in report order.
CONDITIONS: tuple[str, ...] = (
    "baseline",
    "t1",
    "pd",
    "pdfs",
    "dess",
    "fine_spacing",
    "aniso_spacing",
    "noise_bias",
    "rotation",
    "varus_tilt",
    "osteophyte",
    "degenerated",
    "effusion",
    "negative_mme",
    "no_laterality_tag",
)

_CONTRASTS = ("t1", "pd", "pdfs", "dess")
_ANISO = ((0.3125, 0.6), (0.6, 0.3125), (0.4, 0.55), (0.55, 0.35), (0.25, 0.5), (0.5, 0.25))
_FINE = (0.25, 0.28, 0.3125, 0.35)


# --------------------------------------------------------------------------- suite
def hard_suite_specs(n: int = 240, *, seed: int = 0) -> list[tuple[str, PhantomSpec]]:
    """The hard validation suite: ``n`` phantom specs spread over :data:`CONDITIONS`.

    Every case starts from a moderate baseline (0.5-0.6 mm isotropic pixels,
    12-16 slices 3-4 mm apart, mild noise and bias, random knee offset and
    scale, instance numbering reversed in about half, columns flipped in some)
    and adds the nuisance its condition is about. Left and right knees
    alternate inside every condition; extrusion is stratified over 0-8 mm
    (-2.5..-0.2 mm for ``negative_mme``).

    Parameters
    ----------
    n : int
        Total number of series (default 240 = 16 per condition; >= 225 gives
        >= 15 per condition).
    seed : int, keyword-only
        Seeds parameters, noise and UIDs; the suite is deterministic.

    Returns
    -------
    list of (str, PhantomSpec)
        Condition name and spec; ``spec.name`` is unique (``<condition>_<k>``).
    """
    if n < 1:
        raise UsageError(f"hard suite size n={n}: use n >= 1 (>= 225 for 15 per condition)")
    counts = [n // len(CONDITIONS) + (1 if c < n % len(CONDITIONS) else 0)
              for c in range(len(CONDITIONS))]
    out: list[tuple[str, PhantomSpec]] = []
    for ci, (cond, count) in enumerate(zip(CONDITIONS, counts, strict=True)):
        rng = np.random.default_rng([seed, 3, ci])
        if cond == "negative_mme":
            extr = np.linspace(-2.5, -0.2, count)
        else:
            extr = np.linspace(0.0, 8.0, count)
        extr = extr[rng.permutation(count)] if count else extr
        for k in range(count):
            out.append((cond, _case_spec(cond, k, float(extr[k]), rng, seed=seed, ci=ci)))
    return out


def _case_spec(cond: str, k: int, extrusion: float, rng: np.random.Generator, *,
               seed: int, ci: int) -> PhantomSpec:
    """One spec: the moderate baseline plus the nuisance of ``cond``."""
    d = float(rng.choice([0.5, 0.55, 0.6]))
    dr = dc = d
    fov_r, fov_c = float(rng.uniform(126, 136)), float(rng.uniform(126, 136))
    kw: dict = {
        "laterality": "RL"[k % 2],
        "contrast": _CONTRASTS[(k // 2) % 4],
        "extrusion_mm": round(extrusion, 2),
        "lateral_extrusion_mm": round(float(rng.uniform(-1.0, 3.0)), 2),
        "n_slices": int(rng.integers(12, 17)),
        "slice_spacing_mm": float(rng.choice([3.0, 3.3, 3.5, 4.0])),
        "noise": round(float(rng.uniform(0.015, 0.04)), 3),
        "bias": round(float(rng.uniform(0.0, 0.15)), 3),
        "include_laterality_tag": True,
        "reverse_instances": bool(rng.random() < 0.5),
        "flip_columns": bool(rng.random() < 0.15),
        "knee_offset_mm": (round(float(rng.uniform(-6, 6)), 1),
                           round(float(rng.uniform(-5, 5)), 1)),
        "ref_offset": int(rng.integers(-1, 2)),
        "knee_scale": round(float(rng.uniform(0.94, 1.06)), 3),
        "meniscal_width_mm": round(float(rng.uniform(9.0, 11.0)), 2),
    }
    if cond in _CONTRASTS:
        kw["contrast"] = cond
    elif cond == "fine_spacing":
        dr = dc = _FINE[k % len(_FINE)]
        fov_r = fov_c = float(rng.uniform(118, 126))
    elif cond == "aniso_spacing":
        dr, dc = _ANISO[k % len(_ANISO)]
    elif cond == "noise_bias":
        kw["noise"] = round(float(rng.uniform(0.05, 0.09)), 3)
        kw["bias"] = round(float(rng.uniform(0.25, 0.4)), 3)
    elif cond == "rotation":
        kw["rotation_deg"] = round(float(rng.choice([-1, 1]) * rng.uniform(3.0, 10.0)), 2)
    elif cond == "varus_tilt":
        kw["plateau_tilt_deg"] = round(float(rng.uniform(2.0, 6.0)), 2)
    elif cond == "osteophyte":
        kw["osteophyte_mm"] = round(1.0 + 3.0 * ((k * 7) % 16) / 15.0, 2)
    elif cond == "degenerated":
        kw["degenerated"] = True
    elif cond == "effusion":
        kw["effusion"] = True
    elif cond == "no_laterality_tag":
        kw["include_laterality_tag"] = False
    kw.update(
        row_spacing_mm=dr,
        col_spacing_mm=dc,
        rows=int(round(fov_r / dr)),
        cols=int(round(fov_c / dc)),
        name=f"{cond}_{k:03d}",
        seed=seed * 100_000 + ci * 1000 + k,
    )
    return PhantomSpec(**kw)


def _fmt_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6f}"
    if isinstance(value, (list, tuple)):
        return " ".join(_fmt_cell(v) for v in value)
    return str(value)


def _write_one(task: tuple[str, PhantomSpec, str, str]) -> tuple[str, dict, list[dict]]:
    cond, spec, outdir, ts = task
    _, row = write_series(spec, Path(outdir) / spec.name, transfer_syntax=ts)
    row["series_dir"] = spec.name
    truth = make_truth(spec)
    slices = [
        {
            "series_instance_uid": row["series_instance_uid"],
            "index": i,
            "instance_number": truth.instance_numbers[i],
            "position_mm": truth.slice_positions_mm[i],
            "extrusion_mm": truth.slice_extrusion_mm[i],
            "reference": i == truth.ref_index,
        }
        for i in range(spec.n_slices)
    ]
    return cond, row, slices


SLICE_TRUTH_COLUMNS = (
    "series_instance_uid", "index", "instance_number", "position_mm", "extrusion_mm", "reference"
)


def _run_tasks(
    fn: Callable,
    tasks: Sequence,
    *,
    workers: int,
    progress: Callable[[int, int], None] | None = None,
) -> list:
    """``[fn(t) for t in tasks]`` in order, on a process pool when ``workers > 1``.

    ``progress(done, total)`` is called after each task.
    """
    results: list = [None] * len(tasks)
    if workers <= 1 or len(tasks) <= 1:
        for i, t in enumerate(tasks):
            results[i] = fn(t)
            if progress:
                progress(i + 1, len(tasks))
        return results
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(fn, t): i for i, t in enumerate(tasks)}
        for done, fut in enumerate(as_completed(futures), 1):
            results[futures[fut]] = fut.result()
            if progress:
                progress(done, len(tasks))
    return results


def write_suite(
    outdir: Path,
    specs: Sequence[tuple[str, PhantomSpec]],
    *,
    workers: int = 1,
    transfer_syntax: str = "explicit",
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write ``(condition, spec)`` phantoms as DICOM series with exact truth.

    Parameters
    ----------
    outdir : Path
        Created; gets one folder per spec (``spec.name``), ``truth.csv``
        (``condition`` + :data:`kneemeasure.phantom.TRUTH_COLUMNS`, ``series_dir``
        relative to ``outdir``) and ``truth_slices.csv`` (per-slice truth
        extrusion in mm, empty where a slice has no meniscal body).
    specs : sequence of (str, PhantomSpec)
        E.g. from :func:`hard_suite_specs`; names must be unique.
    workers : int, keyword-only
        Processes used for rendering (1 = in this process).
    transfer_syntax : str, keyword-only
        Passed to :func:`kneemeasure.phantom.write_series`.
    progress : callable (done, total), optional

    Returns
    -------
    Path
        The ``truth.csv`` path.
    """
    outdir = Path(outdir)
    names = [s.name for _, s in specs]
    if len(set(names)) != len(names):
        raise UsageError("write_suite: spec names must be unique (they name the series folders)")
    outdir.mkdir(parents=True, exist_ok=True)
    tasks = [(c, s, str(outdir), transfer_syntax) for c, s in specs]
    results = _run_tasks(_write_one, tasks, workers=workers, progress=progress)
    truth_path = outdir / "truth.csv"
    with truth_path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["condition", *TRUTH_COLUMNS], lineterminator="\n")
        w.writeheader()
        for cond, row, _ in results:  # type: ignore[misc]
            w.writerow({"condition": cond, **{k: _fmt_cell(row[k]) for k in TRUTH_COLUMNS}})
    with (outdir / "truth_slices.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(SLICE_TRUTH_COLUMNS), lineterminator="\n")
        w.writeheader()
        for _, _, slices in results:  # type: ignore[misc]
            for s in slices:
                w.writerow({k: _fmt_cell(s[k]) for k in SLICE_TRUTH_COLUMNS})
    return truth_path


# --------------------------------------------------------------------------- US suite
#: Conditions of the ultrasound suite, in report order (one per file, exclusive):
#: multi-frame cine, RGB single frame, and grey single frames by speckle level.
US_CONDITIONS: tuple[str, ...] = ("speckle_low", "speckle_mid", "speckle_high", "rgb", "cine")
#: Facets of the ultrasound suite (a file may carry several), reported as extra groups.
US_TAGS: tuple[str, ...] = (
    "speckle_low", "speckle_mid", "speckle_high", "proximal_left", "proximal_right", "deep",
    "tilted", "aniso_spacing",
)
#: Tibial margin at least this deep below the skin (mm) is tagged ``deep``.
US_DEEP_MM = 17.0
#: Tibial cortex tilted at least this much against the rows (degrees) is tagged ``tilted``.
US_TILT_DEG = 5.0


def us_condition(truth: Mapping[str, object]) -> tuple[str, list[str]]:
    """Condition and facet tags of one ultrasound truth row (or spec-like mapping).

    Parameters
    ----------
    truth : mapping
        A row as written by :func:`kneemeasure.phantom_us.write_us_dicom`
        (``spec_n_frames``, ``spec_rgb``, ``spec_speckle``, ``proximal``,
        ``spec_tibial_depth_mm``, ``spec_tilt_deg``, ``row_spacing_mm``,
        ``col_spacing_mm``); strings or numbers.

    Returns
    -------
    condition : str
        ``cine`` (more than one frame), else ``rgb``, else ``speckle_low``
        (speckle <= 0.5), ``speckle_mid`` (< 0.85) or ``speckle_high``; the file
        stem when the row has no spec columns.
    tags : list of str
        From :data:`US_TAGS`: the speckle level, ``proximal_left/right`` (femur
        side), ``deep`` (tibial margin >= :data:`US_DEEP_MM` below the skin),
        ``tilted`` (``|tilt| >=`` :data:`US_TILT_DEG`), ``aniso_spacing``.
    """
    speckle = _f(truth.get("spec_speckle"))
    tags: list[str] = []
    level = None
    if speckle is not None:
        level = "speckle_low" if speckle <= 0.5 else "speckle_mid" if speckle < 0.85 else (
            "speckle_high")
        tags.append(level)
    prox = str(truth.get("proximal") or "")
    if prox in ("image-left", "image-right"):
        tags.append("proximal_" + prox.split("-")[1])
    depth = _f(truth.get("spec_tibial_depth_mm"))
    if depth is not None and depth >= US_DEEP_MM:
        tags.append("deep")
    tilt = _f(truth.get("spec_tilt_deg"))
    if tilt is not None and abs(tilt) >= US_TILT_DEG:
        tags.append("tilted")
    rs, cs = _f(truth.get("row_spacing_mm")), _f(truth.get("col_spacing_mm"))
    if rs is not None and cs is not None and abs(rs - cs) > 1e-9:
        tags.append("aniso_spacing")
    frames = _f(truth.get("spec_n_frames"))
    if frames is not None and frames > 1:
        cond = "cine"
    elif _b(truth.get("spec_rgb", "")):
        cond = "rgb"
    elif level is not None:
        cond = level
    else:
        cond = Path(str(truth.get("file") or "us")).stem
    return cond, tags


def us_suite(n: int = 100, *, seed: int = 0) -> list[tuple[str, object]]:
    """The ultrasound validation suite: ``(condition, UsPhantomSpec)`` pairs.

    The specs are :func:`kneemeasure.phantom_us.us_suite_specs` (extrusion
    spread over 0-7 mm; speckle 0.4-1.0, imaged depth 25-40 mm, square and
    non-square spacing, tilt up to 8 degrees, both probe orientations, every
    4th RGB, every 5th a 3-frame cine); the condition is :func:`us_condition`.

    Parameters
    ----------
    n : int
        Number of files (>= 1).
    seed : int, keyword-only
        Suite seed; the suite is deterministic.

    Returns
    -------
    list of (str, UsPhantomSpec)
    """
    from kneemeasure.phantom_us import us_suite_specs

    if n < 1:
        raise UsageError(f"ultrasound suite size n={n}: use n >= 1 (100 covers every condition)")
    return [(us_condition(_us_spec_row(s))[0], s) for s in us_suite_specs(n, seed=seed)]


def _us_spec_row(spec) -> dict:
    """The spec fields :func:`us_condition` reads, named as in a truth row."""
    return {
        "spec_speckle": spec.speckle,
        "spec_n_frames": spec.n_frames,
        "spec_rgb": spec.rgb,
        "spec_tibial_depth_mm": spec.tibial_depth_mm,
        "spec_tilt_deg": spec.tilt_deg,
        "proximal": spec.proximal,
        "row_spacing_mm": spec.spacing_mm[0],
        "col_spacing_mm": spec.spacing_mm[1],
    }


def _write_us_one(task: tuple[str, object, str]) -> dict:
    from kneemeasure.phantom_us import write_us_dicom

    name, spec, outdir = task
    row = write_us_dicom(spec, Path(outdir) / name)
    cond, tags = us_condition(row)
    return {"modality": "US", "condition": cond, "tags": " ".join(tags), **row}


def write_us_suite(
    outdir: Path,
    specs: Sequence[tuple[str, object]],
    *,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write ultrasound phantoms as DICOM files with a ``truth.csv`` for :func:`validate_dir`.

    Parameters
    ----------
    outdir : Path
        Created; gets ``us_<i>_<condition>.dcm`` per spec and ``truth.csv`` with
        ``modality`` (``US``), ``condition``, ``tags`` (space-separated
        :data:`US_TAGS`), ``file`` (relative to ``outdir``) and the truth row of
        :func:`kneemeasure.phantom_us.write_us_dicom` (tibial and femorotibial
        extrusion in mm, ``truth_frame``, landmarks in full-image pixels,
        spacing in mm, spec parameters).
    specs : sequence of (str, UsPhantomSpec)
        E.g. from :func:`us_suite`.
    workers : int, keyword-only
        Processes used for rendering (1 = in this process).
    progress : callable (done, total), optional

    Returns
    -------
    Path
        The ``truth.csv`` path.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    tasks = [(f"us_{i:03d}_{cond}.dcm", spec, str(outdir)) for i, (cond, spec) in enumerate(specs)]
    results = _run_tasks(_write_us_one, tasks, workers=workers, progress=progress)
    truth_path = outdir / "truth.csv"
    columns = list(results[0]) if results else ["modality", "condition", "tags", "file"]
    with truth_path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        for row in results:
            w.writerow({k: _fmt_cell(row.get(k)) for k in columns})  # type: ignore[union-attr]
    return truth_path


# --------------------------------------------------------------------------- truth
def read_truth(truth_dir: Path) -> tuple[list[dict], dict[str, list[dict]]]:
    """Read ``truth.csv`` (and ``truth_slices.csv`` when present) from ``truth_dir``.

    Rows with ``modality = US`` (ultrasound truth, see :func:`read_us_truth`)
    are left out.

    Returns
    -------
    rows : list of dict
        One per MR series, values as strings, ``modality`` set to ``MR``;
        ``condition`` filled from the ``series_dir`` name when the CSV has no
        ``condition`` column.
    slices : dict
        ``series_instance_uid`` -> per-slice truth rows (position order); empty
        when there is no ``truth_slices.csv``.
    """
    truth_dir = Path(truth_dir)
    path = truth_dir / "truth.csv"
    if not path.is_file():
        raise UsageError(
            f"{truth_dir}: no truth.csv here; write one with `kneemeasure samples DIR` or "
            "`kneemeasure suite DIR`"
        )
    with path.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if not _is_us_row(r)]
    needed = {"series_dir", "series_instance_uid", "extrusion_mm", "ref_index"}
    if rows and not needed <= set(rows[0]):
        missing = ", ".join(sorted(needed - set(rows[0])))
        raise UsageError(f"{path}: missing column(s) {missing}; is this a kneemeasure truth.csv?")
    for r in rows:
        r["modality"] = "MR"
    for r in rows:
        if not r.get("condition"):
            r["condition"] = Path(r["series_dir"]).name
    slices: dict[str, list[dict]] = {}
    spath = truth_dir / "truth_slices.csv"
    if spath.is_file():
        with spath.open(newline="") as fh:
            for s in csv.DictReader(fh):
                slices.setdefault(s["series_instance_uid"], []).append(s)
        for v in slices.values():
            v.sort(key=lambda s: int(s["index"]))
    return rows, slices


def _is_us_row(row: Mapping[str, object]) -> bool:
    return str(row.get("modality") or "").strip().upper() == "US"


def read_us_truth(truth_dir: Path) -> list[dict]:
    """Read the ultrasound truth of ``truth_dir``.

    Sources: the ``modality = US`` rows of ``truth.csv`` (as written by
    :func:`write_us_suite`) and every row of ``us_truth.csv`` (as in
    ``sample_dicoms/``). Both need a ``file`` column (relative to ``truth_dir``
    or absolute) and ``extrusion_mm``.

    Returns
    -------
    list of dict
        One per file, values as strings, ``modality`` set to ``US``;
        ``condition`` and ``tags`` filled by :func:`us_condition` when missing.
        Empty when the folder holds no ultrasound truth.
    """
    truth_dir = Path(truth_dir)
    rows: list[dict] = []
    for name, only_us in (("truth.csv", True), ("us_truth.csv", False)):
        path = truth_dir / name
        if not path.is_file():
            continue
        with path.open(newline="") as fh:
            got = [r for r in csv.DictReader(fh) if not only_us or _is_us_row(r)]
        needed = {"file", "extrusion_mm"}
        if got and not needed <= set(got[0]):
            missing = ", ".join(sorted(needed - set(got[0])))
            raise UsageError(
                f"{path}: ultrasound truth needs column(s) {missing}; "
                "write it with `kneemeasure suite DIR --modality us`"
            )
        rows += got
    for r in rows:
        r["modality"] = "US"
        cond, tags = us_condition(r)
        if not r.get("condition"):
            r["condition"] = cond
        if r.get("tags") is None:
            r["tags"] = " ".join(tags)
    return rows


def _f(value: object) -> float | None:
    """A float from a CSV cell or number; None for empty / missing / NaN."""
    if value is None or value == "":
        return None
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _b(value: object) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")


def truth_instance_numbers(truth: dict, slices: Sequence[dict] | None = None) -> list[int]:
    """Instance Numbers of a truth series in position order.

    From ``truth_slices.csv`` rows when given, else rebuilt from ``n_slices`` and
    ``reverse_instances`` (1..n, or n..1 when reversed) as the phantom writes them.
    """
    if slices:
        return [int(s["instance_number"]) for s in slices]
    n = int(float(truth["n_slices"]))
    numbers = list(range(1, n + 1))
    return numbers[::-1] if _b(truth.get("reverse_instances", "false")) else numbers


def slice_error(
    chosen_instance: int | None, truth_instances: Sequence[int], ref_index: int
) -> int | None:
    """Distance in slices between the chosen slice and the truth reference slice.

    Parameters
    ----------
    chosen_instance : int or None
        Instance Number the measurement used.
    truth_instances : sequence of int
        Instance Numbers in position order (either end may be 1).
    ref_index : int
        Position-order index of the truth reference (spine-apex) slice.

    Returns
    -------
    int or None
        ``|index(chosen) - ref_index|``; None when the instance is unknown.
    """
    if chosen_instance is None:
        return None
    numbers = list(truth_instances)
    if chosen_instance not in numbers:
        return None
    return abs(numbers.index(chosen_instance) - int(ref_index))


def landmark_error_mm(
    pred_rc: tuple[float, float] | None,
    truth_rc: tuple[float, float] | None,
    *,
    row_spacing_mm: float,
    col_spacing_mm: float,
) -> float | None:
    """Euclidean distance (mm) between two ``(row, col)`` pixel points.

    ``sqrt((drow * row_spacing)^2 + (dcol * col_spacing)^2)``; None when either is missing.
    """
    if pred_rc is None or truth_rc is None or None in (*pred_rc, *truth_rc):
        return None
    dr = (float(pred_rc[0]) - float(truth_rc[0])) * row_spacing_mm
    dc = (float(pred_rc[1]) - float(truth_rc[1])) * col_spacing_mm
    return float(math.hypot(dr, dc))


# --------------------------------------------------------------------------- per case
#: Columns of ``validation_cases.csv``.
CASE_COLUMNS: tuple[str, ...] = (
    "condition", "series_dir", "series_instance_uid", "side", "laterality", "status", "error",
    "confidence", "truth_mme_mm", "mme_mm", "error_mm", "abs_error_mm", "margin_error_mm",
    "meniscus_error_mm", "truth_instance", "chosen_instance", "slice_error", "truth_extruded",
    "extruded", "flag_agree", "clear_of_threshold", "truth_max_mme_mm", "max_mme_mm",
    "max_error_mm", "max_slice_error", "profile_n", "profile_truth_n", "profile_mae_mm",
    "seconds", "modality", "tags", "us_reference", "n_frames", "truth_frame", "chosen_frame",
    "frame_agree",
)


def score_case(
    truth: dict,
    measured: dict,
    *,
    threshold_mm: float = 3.0,
    clear_mm: float = 0.5,
    truth_slices: Sequence[dict] | None = None,
) -> dict:
    """Compare one measurement with its truth row.

    Parameters
    ----------
    truth : dict
        A ``truth.csv`` row (strings or numbers) plus ``condition``.
    measured : dict
        Keys ``side``, ``status``, ``error``, ``extrusion_mm``, ``instance_number``,
        ``plateau_rc``, ``meniscus_rc``, ``confidence``, ``max_extrusion_mm``,
        ``max_extrusion_instance``, ``profile`` (list of ``(instance, mm, status)``),
        ``seconds``; as produced by the harness worker.
    threshold_mm : float, keyword-only
        Extruded when MME >= threshold (inclusive), for truth and measurement alike.
    clear_mm : float, keyword-only
        A case is "clear of the threshold" when ``|truth - threshold| >= clear_mm``.
    truth_slices : sequence of dict, optional
        ``truth_slices.csv`` rows of this series (position order).

    Returns
    -------
    dict
        Keys :data:`CASE_COLUMNS` (None where not applicable) plus
        ``profile_abs_sum`` for pooling.
    """
    side = measured.get("side", "medial")
    pre = "lateral_" if side == "lateral" else ""
    rs, cs = float(truth["row_spacing_mm"]), float(truth["col_spacing_mm"])
    t_mme = _f(truth[f"{pre}extrusion_mm"])
    t_plat = (_f(truth[f"{pre}plateau_row_px"]), _f(truth[f"{pre}plateau_col_px"]))
    t_men = (_f(truth[f"{pre}meniscus_row_px"]), _f(truth[f"{pre}meniscus_col_px"]))
    numbers = truth_instance_numbers(truth, truth_slices)
    ref_index = int(float(truth["ref_index"]))
    status = measured.get("status", "error")
    ok = status in ("ok", "review")
    mme = _f(measured.get("extrusion_mm")) if ok else None
    out: dict = {k: None for k in CASE_COLUMNS}
    out.update(
        condition=truth.get("condition", ""),
        modality="MR",
        series_dir=truth.get("series_dir", ""),
        series_instance_uid=truth.get("series_instance_uid", ""),
        side=side,
        laterality=truth.get("laterality", ""),
        status=status,
        error=" ".join(str(measured.get("error", "")).split()),
        confidence=_f(measured.get("confidence")),
        truth_mme_mm=t_mme,
        truth_instance=numbers[ref_index] if 0 <= ref_index < len(numbers) else None,
        seconds=_f(measured.get("seconds")),
        profile_abs_sum=None,
    )
    if t_mme is not None:
        out["truth_extruded"] = t_mme >= threshold_mm
        out["clear_of_threshold"] = abs(t_mme - threshold_mm) >= clear_mm
    if side == "medial":
        out["truth_max_mme_mm"] = _f(truth.get("max_extrusion_mm"))
    if not ok or mme is None:
        return out
    out["mme_mm"] = mme
    out["chosen_instance"] = measured.get("instance_number")
    out["slice_error"] = slice_error(measured.get("instance_number"), numbers, ref_index)
    out["margin_error_mm"] = landmark_error_mm(
        measured.get("plateau_rc"), t_plat, row_spacing_mm=rs, col_spacing_mm=cs
    )
    out["meniscus_error_mm"] = landmark_error_mm(
        measured.get("meniscus_rc"), t_men, row_spacing_mm=rs, col_spacing_mm=cs
    )
    out["extruded"] = mme >= threshold_mm
    if t_mme is not None:
        out["error_mm"] = mme - t_mme
        out["abs_error_mm"] = abs(mme - t_mme)
        out["flag_agree"] = out["extruded"] == out["truth_extruded"]
    if side == "medial":
        mx = _f(measured.get("max_extrusion_mm"))
        out["max_mme_mm"] = mx
        if mx is not None and out["truth_max_mme_mm"] is not None:
            out["max_error_mm"] = mx - out["truth_max_mme_mm"]
        t_max_inst = _f(truth.get("max_extrusion_instance"))
        if t_max_inst is not None and measured.get("max_extrusion_instance") is not None:
            t_idx = numbers.index(int(t_max_inst)) if int(t_max_inst) in numbers else None
            if t_idx is not None:
                out["max_slice_error"] = slice_error(
                    measured["max_extrusion_instance"], numbers, t_idx
                )
        if truth_slices:
            t_by_inst = {int(s["instance_number"]): _f(s["extrusion_mm"]) for s in truth_slices}
            out["profile_truth_n"] = sum(v is not None for v in t_by_inst.values())
            diffs = [
                abs(float(mm) - t_by_inst[int(inst)])
                for inst, mm, _st in measured.get("profile", [])
                if mm is not None and t_by_inst.get(int(inst)) is not None
            ]
            out["profile_n"] = len(diffs)
            if diffs:
                out["profile_abs_sum"] = float(sum(diffs))
                out["profile_mae_mm"] = float(np.mean(diffs))
            # per-slice detections by status: does confidence mean something slice by slice?
            by_status: dict[str, list[float]] = {"ok": [], "review": []}
            for inst, mm, st in measured.get("profile", []):
                if mm is not None and t_by_inst.get(int(inst)) is not None and st in by_status:
                    by_status[st].append(abs(float(mm) - t_by_inst[int(inst)]))
            out["profile_status_abs"] = by_status
    return out


#: Truth column of each ultrasound reference line (``--us-reference``).
US_TRUTH_MME = {"tibial": "extrusion_mm", "femorotibial": "femorotibial_extrusion_mm"}


def score_us_case(
    truth: dict,
    measured: dict,
    *,
    threshold_mm: float = 3.0,
    clear_mm: float = 0.5,
    reference: str = "tibial",
) -> dict:
    """Compare one ultrasound measurement with its truth row.

    Parameters
    ----------
    truth : dict
        An ultrasound truth row (see :func:`read_us_truth`): ``file``,
        ``extrusion_mm`` / ``femorotibial_extrusion_mm``, ``truth_frame``,
        ``tibial_margin_row_px`` / ``_col_px``, ``meniscus_row_px`` / ``_col_px``
        (full-image pixels), ``row_spacing_mm``, ``col_spacing_mm``,
        ``spec_n_frames`` (optional).
    measured : dict
        As for :func:`score_case`, plus ``frame`` (0-based frame measured);
        ``plateau_rc`` is the tibial reference point (the tibial margin, for
        either reference line), ``meniscus_rc`` the most superficial meniscal point.
    threshold_mm, clear_mm : float, keyword-only
        As for :func:`score_case`.
    reference : {"tibial", "femorotibial"}, keyword-only
        Which truth extrusion to compare with (the reference line measured).

    Returns
    -------
    dict
        Keys :data:`CASE_COLUMNS`: ``margin_error_mm`` is the tibial reference
        point error and ``meniscus_error_mm`` the meniscal point error (mm,
        Euclidean with both spacings); ``frame_agree`` (chosen frame = truth
        frame) only for multi-frame files; slice and profile keys are None.

    Notes
    -----
    The truth meniscal point is the most superficial point relative to the
    tibial line; with ``reference="femorotibial"`` the detector picks the point
    farthest from the femorotibial line, which can sit elsewhere on the flat
    meniscal base, so the point error is larger there while the MME is not.
    """
    if reference not in US_TRUTH_MME:
        raise UsageError(f"--us-reference {reference!r} is not one of tibial, femorotibial")
    key = US_TRUTH_MME[reference]
    rs, cs = _f(truth.get("row_spacing_mm")), _f(truth.get("col_spacing_mm"))
    t_mme = _f(truth.get(key))
    t_ref = (_f(truth.get("tibial_margin_row_px")), _f(truth.get("tibial_margin_col_px")))
    t_men = (_f(truth.get("meniscus_row_px")), _f(truth.get("meniscus_col_px")))
    t_frame = _f(truth.get("truth_frame"))
    n_frames = _f(truth.get("spec_n_frames"))
    status = measured.get("status", "error")
    ok = status in ("ok", "review")
    mme = _f(measured.get("extrusion_mm")) if ok else None
    out: dict = {k: None for k in CASE_COLUMNS}
    out.update(
        condition=truth.get("condition", ""),
        modality="US",
        tags=truth.get("tags", ""),
        us_reference=reference,
        series_dir=truth.get("file", ""),
        series_instance_uid=measured.get("series_instance_uid", ""),
        side=measured.get("side", "medial"),
        laterality="",
        status=status,
        error=" ".join(str(measured.get("error", "")).split()),
        confidence=_f(measured.get("confidence")),
        truth_mme_mm=t_mme,
        n_frames=int(n_frames) if n_frames is not None else None,
        truth_frame=int(t_frame) if t_frame is not None else None,
        seconds=_f(measured.get("seconds")),
        profile_abs_sum=None,
    )
    if t_mme is not None:
        out["truth_extruded"] = t_mme >= threshold_mm
        out["clear_of_threshold"] = abs(t_mme - threshold_mm) >= clear_mm
    if not ok or mme is None:
        return out
    out["mme_mm"] = mme
    out["extruded"] = mme >= threshold_mm
    frame = measured.get("frame")
    out["chosen_frame"] = int(frame) if frame is not None else None
    if out["n_frames"] is not None and out["n_frames"] > 1 and out["truth_frame"] is not None:
        out["frame_agree"] = out["chosen_frame"] == out["truth_frame"]
    if rs is not None and cs is not None:
        out["margin_error_mm"] = landmark_error_mm(
            measured.get("plateau_rc"), t_ref, row_spacing_mm=rs, col_spacing_mm=cs
        )
        out["meniscus_error_mm"] = landmark_error_mm(
            measured.get("meniscus_rc"), t_men, row_spacing_mm=rs, col_spacing_mm=cs
        )
    if t_mme is not None:
        out["error_mm"] = mme - t_mme
        out["abs_error_mm"] = abs(mme - t_mme)
        out["flag_agree"] = out["extruded"] == out["truth_extruded"]
    return out


# --------------------------------------------------------------------------- summary
#: Columns of ``validation.csv`` (one row per group).
GROUP_COLUMNS: tuple[str, ...] = (
    "group", "n_total", "n_measured", "n_ok", "n_review", "n_error", "mae_mm",
    "max_abs_error_mm", "bias_mm", "margin_error_mean_mm", "margin_error_max_mm",
    "meniscus_error_mean_mm", "meniscus_error_max_mm", "slice_error_mean", "slice_exact_frac",
    "slice_error_max", "flag_n", "flag_agreement", "flag_clear_n", "flag_clear_agreement",
    "ok_mae_mm", "review_mae_mm", "profile_slices", "profile_coverage", "profile_mae_mm",
    "profile_ok_n", "profile_ok_mae_mm", "profile_review_n", "profile_review_mae_mm",
    "max_mme_mae_mm",
    "max_mme_n", "seconds_mean", "modality", "frame_n", "frame_agreement",
)


def _mean(v: list[float]) -> float | None:
    return float(np.mean(v)) if v else None


def summarize(cases: Sequence[dict], *, group: str = "overall") -> dict:
    """Aggregate scored cases (from :func:`score_case`) into one group row.

    Returns
    -------
    dict
        Keys :data:`GROUP_COLUMNS`. MAE / bias / max are in mm over measured
        cases with truth; agreement values are fractions in [0, 1]; None when a
        metric has no cases. ``profile_mae_mm`` pools every profile slice that
        has a truth value; ``profile_coverage`` = those slices / truth slices
        with a meniscus (horns included, so < 1 even for a perfect body profile).
        ``frame_agreement`` is over measured multi-frame ultrasound files;
        ``modality`` is ``MR``, ``US`` or ``all`` (mixed).
    """
    meas = [c for c in cases if c.get("status") in ("ok", "review") and c.get("mme_mm") is not None]
    errs = [c["abs_error_mm"] for c in meas if c.get("abs_error_mm") is not None]
    signed = [c["error_mm"] for c in meas if c.get("error_mm") is not None]
    margin = [c["margin_error_mm"] for c in meas if c.get("margin_error_mm") is not None]
    men = [c["meniscus_error_mm"] for c in meas if c.get("meniscus_error_mm") is not None]
    sl = [c["slice_error"] for c in meas if c.get("slice_error") is not None]
    flags = [c["flag_agree"] for c in meas if c.get("flag_agree") is not None]
    clear = [c["flag_agree"] for c in meas
             if c.get("flag_agree") is not None and c.get("clear_of_threshold")]
    ok_e = [c["abs_error_mm"] for c in meas
            if c["status"] == "ok" and c.get("abs_error_mm") is not None]
    rev_e = [c["abs_error_mm"] for c in meas
             if c["status"] == "review" and c.get("abs_error_mm") is not None]
    prof_n = sum(int(c.get("profile_n") or 0) for c in meas)
    prof_sum = sum(float(c.get("profile_abs_sum") or 0.0) for c in meas)
    prof_truth = sum(int(c.get("profile_truth_n") or 0) for c in meas)
    prof_ok = [e for c in meas for e in (c.get("profile_status_abs") or {}).get("ok", [])]
    prof_rev = [e for c in meas for e in (c.get("profile_status_abs") or {}).get("review", [])]
    mx = [abs(c["max_error_mm"]) for c in meas if c.get("max_error_mm") is not None]
    secs = [c["seconds"] for c in cases if c.get("seconds") is not None]
    frames = [c["frame_agree"] for c in meas if c.get("frame_agree") is not None]
    mods = {c.get("modality") or "MR" for c in cases}
    return {
        "group": group,
        "modality": mods.pop() if len(mods) == 1 else "all",
        "frame_n": len(frames),
        "frame_agreement": _mean([float(a) for a in frames]),
        "n_total": len(cases),
        "n_measured": len(meas),
        "n_ok": sum(c.get("status") == "ok" for c in cases),
        "n_review": sum(c.get("status") == "review" for c in cases),
        "n_error": sum(c.get("status") not in ("ok", "review") for c in cases),
        "mae_mm": _mean(errs),
        "max_abs_error_mm": float(max(errs)) if errs else None,
        "bias_mm": _mean(signed),
        "margin_error_mean_mm": _mean(margin),
        "margin_error_max_mm": float(max(margin)) if margin else None,
        "meniscus_error_mean_mm": _mean(men),
        "meniscus_error_max_mm": float(max(men)) if men else None,
        "slice_error_mean": _mean([float(s) for s in sl]),
        "slice_exact_frac": _mean([float(s == 0) for s in sl]),
        "slice_error_max": int(max(sl)) if sl else None,
        "flag_n": len(flags),
        "flag_agreement": _mean([float(a) for a in flags]),
        "flag_clear_n": len(clear),
        "flag_clear_agreement": _mean([float(a) for a in clear]),
        "ok_mae_mm": _mean(ok_e),
        "review_mae_mm": _mean(rev_e),
        "profile_slices": prof_n,
        "profile_coverage": prof_n / prof_truth if prof_truth else None,
        "profile_mae_mm": prof_sum / prof_n if prof_n else None,
        "profile_ok_n": len(prof_ok),
        "profile_ok_mae_mm": _mean(prof_ok),
        "profile_review_n": len(prof_rev),
        "profile_review_mae_mm": _mean(prof_rev),
        "max_mme_mae_mm": _mean(mx),
        "max_mme_n": len(mx),
        "seconds_mean": _mean(secs),
    }


def _modality_groups(cases: Sequence[dict], *, overall: str) -> list[dict]:
    """Per condition, per knee, per facet tag (``+tag``: every case with it), per side,
    then ``overall``, for the cases of one modality."""
    order: list[str] = []
    for c in cases:
        if c["condition"] not in order:
            order.append(c["condition"])
    order.sort(key=lambda g: US_CONDITIONS.index(g) if g in US_CONDITIONS else len(US_CONDITIONS))
    rows = [summarize([c for c in cases if c["condition"] == g], group=g) for g in order]
    for lat in ("L", "R"):
        sub = [c for c in cases if c.get("laterality") == lat]
        if sub and len(order) > 1:
            rows.append(summarize(sub, group=f"knee {lat}"))
    tags: list[str] = list(US_TAGS)
    for c in cases:
        tags += [t for t in str(c.get("tags") or "").split() if t not in tags]
    for t in tags:
        sub = [c for c in cases if t in str(c.get("tags") or "").split()]
        if sub and len(cases) > 1:
            rows.append(summarize(sub, group=f"+{t}"))
    sides = sorted({c["side"] for c in cases})
    if len(sides) > 1:
        rows += [summarize([c for c in cases if c["side"] == s], group=f"side {s}") for s in sides]
    rows.append(summarize(cases, group=overall))
    return rows


def _groups(cases: Sequence[dict]) -> list[dict]:
    """Group rows; with MR and US cases: each modality's groups (``overall MR``,
    ``overall US``), then ``overall`` over all cases."""
    mods: list[str] = []
    for c in cases:
        m = c.get("modality") or "MR"
        if m not in mods:
            mods.append(m)
    if len(mods) <= 1:
        return _modality_groups(cases, overall="overall")
    rows: list[dict] = []
    for m in mods:
        sub = [c for c in cases if (c.get("modality") or "MR") == m]
        rows += _modality_groups(sub, overall=f"overall {m}")
    rows.append(summarize(cases, group="overall"))
    return rows


# --------------------------------------------------------------------------- harness
@dataclass
class ValidationReport:
    """Result of :func:`validate_dir`.

    Attributes
    ----------
    truth_dir : str
    options : dict
        The :class:`~kneemeasure.pipeline.MeasureOptions` used.
    cases : list of dict
        One per series and side (keys :data:`CASE_COLUMNS`).
    groups : list of dict
        Per condition, per knee, (per side) and ``overall`` (keys :data:`GROUP_COLUMNS`).
    seconds : float
        Wall time of the whole validation.
    workers : int
    """

    truth_dir: str
    options: dict
    cases: list[dict] = field(default_factory=list)
    groups: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 1
    kneemeasure_version: str = __version__

    @property
    def overall(self) -> dict:
        """The ``overall`` group row."""
        return next(g for g in self.groups if g["group"] == "overall")

    @property
    def confidence_honest(self) -> bool | None:
        """True when ok rows have a lower MAE than review rows; None when not testable."""
        o = self.overall
        if o["ok_mae_mm"] is None or o["review_mae_mm"] is None:
            return None
        return bool(o["ok_mae_mm"] < o["review_mae_mm"])

    @property
    def confidence_honest_slices(self) -> bool | None:
        """The same test over every slice-profile detection (MR); None when not testable."""
        o = self.overall
        if o.get("profile_ok_mae_mm") is None or o.get("profile_review_mae_mm") is None:
            return None
        return bool(o["profile_ok_mae_mm"] < o["profile_review_mae_mm"])

    def to_dict(self) -> dict:
        d = asdict(self)
        d["confidence_honest"] = self.confidence_honest
        d["confidence_honest_slices"] = self.confidence_honest_slices
        for c in d["cases"]:
            c.pop("profile_abs_sum", None)
            c.pop("profile_status_abs", None)
        return d


def _measure_case(series_dir: str, uid: str, options: MeasureOptions) -> list[dict]:
    """Measure one truth series (runs in a worker process); never raises KneeMeasureError."""
    from kneemeasure.io import discover_series
    from kneemeasure.pipeline import error_row, measure_one

    t0 = time.perf_counter()
    try:
        found, errors = discover_series([series_dir])
        match = [s for s in found if s.series_instance_uid == uid]
        if not match:
            why = errors[0].error if errors else "no series with this SeriesInstanceUID"
            raise KneeMeasureError(f"truth series not found ({why})", source=series_dir)
        rows = measure_one(match[0], options)
    except KneeMeasureError as exc:
        rows = [error_row(exc, options=options)]
    out = []
    seconds = time.perf_counter() - t0
    for m in rows:
        out.append(
            {
                "side": m.side,
                "status": m.status,
                "error": m.error,
                "extrusion_mm": m.extrusion_mm,
                "instance_number": m.instance_number,
                "plateau_rc": (m.plateau_row_px, m.plateau_col_px),
                "meniscus_rc": (m.meniscus_row_px, m.meniscus_col_px),
                "confidence": m.confidence,
                "max_extrusion_mm": m.max_extrusion_mm,
                "max_extrusion_instance": m.max_extrusion_instance,
                "profile": [
                    (e["instance_number"], e["extrusion_mm"], e["status"]) for e in m.slice_profile
                ],
                "seconds": seconds,
            }
        )
    return out


def _measure_us_case(path: str, options: MeasureOptions) -> list[dict]:
    """Measure one ultrasound truth file (runs in a worker process), as ``kneemeasure measure``
    does (:func:`kneemeasure.pipeline.measure_one`); never raises KneeMeasureError."""
    from kneemeasure.io import discover_series
    from kneemeasure.pipeline import error_row, measure_one

    t0 = time.perf_counter()
    uid = ""
    try:
        if not Path(path).is_file():
            raise KneeMeasureError(
                "ultrasound truth file not found; check the `file` column of the truth CSV",
                source=path,
            )
        found, errors = discover_series([path])
        us = [s for s in found if s.modality == "US"]
        if not us:
            why = errors[0].error if errors else "Modality (0008,0060) is not US"
            raise KneeMeasureError(f"no ultrasound image in this file ({why})", source=path)
        uid = us[0].series_instance_uid
        rows = measure_one(us[0], options)
    except KneeMeasureError as exc:
        rows = [error_row(exc, options=options)]
    seconds = time.perf_counter() - t0
    return [
        {
            "side": m.side,
            "status": m.status,
            "error": m.error,
            "extrusion_mm": m.extrusion_mm,
            "frame": m.frame,
            "plateau_rc": (m.plateau_row_px, m.plateau_col_px),
            "meniscus_rc": (m.meniscus_row_px, m.meniscus_col_px),
            "confidence": m.confidence,
            "series_instance_uid": m.series_instance_uid or uid,
            "seconds": seconds,
        }
        for m in rows
    ]


def _run_task(task: tuple[str, str, str, MeasureOptions]) -> list[dict]:
    kind, path, uid, options = task
    if kind == "US":
        return _measure_us_case(path, options)
    return _measure_case(path, uid, options)


def validate_dir(
    truth_dir: Path,
    *,
    options: MeasureOptions | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> ValidationReport:
    """Measure every series / file listed in the truth of ``truth_dir`` and compare.

    Parameters
    ----------
    truth_dir : Path
        Folder with ``truth.csv`` and/or ``us_truth.csv``. MR rows of
        ``truth.csv`` (``series_dir`` relative to the folder or absolute), as
        written by ``kneemeasure samples`` or :func:`write_suite`; an optional
        ``truth_slices.csv`` enables the slice-profile comparison. Ultrasound
        rows (``modality = US`` in ``truth.csv``, from :func:`write_us_suite`, or
        any row of ``us_truth.csv``) name a DICOM ``file`` each.
    options : MeasureOptions, keyword-only, optional
        Measurement options (PNG output is always off here). ``side`` may be
        ``"medial"``, ``"lateral"`` or ``"both"`` (MR; ultrasound is medial);
        ``threshold_mm`` sets the flag; ``us_reference`` (``"tibial"`` or
        ``"femorotibial"``) is the ultrasound reference line measured and the
        truth column compared (``extrusion_mm`` / ``femorotibial_extrusion_mm``).
    workers : int, keyword-only
        Processes (``concurrent.futures.ProcessPoolExecutor``); 1 = in-process.
    progress : callable (done, total), optional
        Called after each series / file.

    Returns
    -------
    ValidationReport
        Cases and groups of both modalities (see :func:`_groups`).
    """
    t0 = time.perf_counter()
    truth_dir = Path(truth_dir)
    has_mr_file = (truth_dir / "truth.csv").is_file()
    if not has_mr_file and not (truth_dir / "us_truth.csv").is_file():
        raise UsageError(
            f"{truth_dir}: no truth.csv or us_truth.csv here; write one with "
            "`kneemeasure samples DIR` or `kneemeasure suite DIR [--modality us]`"
        )
    rows, slices = read_truth(truth_dir) if has_mr_file else ([], {})
    us_rows = read_us_truth(truth_dir)
    options = replace(options or MeasureOptions(), png=False)
    options.validate()
    if options.us_reference not in US_TRUTH_MME:
        raise UsageError(
            f"--us-reference {options.us_reference!r} is not one of tibial, femorotibial"
        )
    if workers < 1:
        raise UsageError(f"--workers {workers}: use 1 or more")
    key = US_TRUTH_MME[options.us_reference]
    if us_rows and key not in us_rows[0]:
        raise UsageError(
            f"{truth_dir}: the ultrasound truth has no {key} column for "
            f"--us-reference {options.us_reference}; regenerate it with "
            "`kneemeasure suite DIR --modality us`"
        )
    if not rows and not us_rows:
        raise UsageError(f"{truth_dir}: the truth CSV lists no series or files")
    tasks: list[tuple[str, str, str, MeasureOptions]] = []
    for r in rows:
        sd = Path(r["series_dir"])
        sd = sd if sd.is_absolute() else truth_dir / sd
        tasks.append(("MR", str(sd), r["series_instance_uid"], options))
    for r in us_rows:
        f = Path(r["file"])
        tasks.append(("US", str(f if f.is_absolute() else truth_dir / f), "", options))
    results = _run_tasks(_run_task, tasks, workers=workers, progress=progress)
    cases = []
    for r, res in zip([*rows, *us_rows], results, strict=True):
        for meas in res or []:
            if r["modality"] == "US":
                cases.append(
                    score_us_case(
                        r, meas, threshold_mm=options.threshold_mm,
                        reference=options.us_reference,
                    )
                )
                continue
            cases.append(
                score_case(
                    r,
                    meas,
                    threshold_mm=options.threshold_mm,
                    truth_slices=slices.get(r["series_instance_uid"]),
                )
            )
    return ValidationReport(
        truth_dir=str(truth_dir),
        options=asdict(options),
        cases=cases,
        groups=_groups(cases),
        seconds=time.perf_counter() - t0,
        workers=workers,
    )


# --------------------------------------------------------------------------- output
def _cell(value: object, fmt: str) -> str:
    """``format(value, fmt)``, or ``-`` padded to the width ``fmt`` asks for."""
    if value is None:
        width = re.match(r"[+<>^ ]*(\d*)", fmt).group(1)  # type: ignore[union-attr]
        return "-".rjust(int(width or 1))
    return format(value, fmt)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def error_causes(cases: Sequence[dict]) -> dict[str, tuple[int, list[str]]]:
    """Distinct error messages (series path removed) -> (count, conditions), most common first."""
    found: dict[str, list[str]] = {}
    for c in cases:
        if c.get("status") in ("ok", "review"):
            continue
        msg = str(c.get("error") or "unknown error")
        sd = str(c.get("series_dir") or "")
        if sd and sd in msg:
            msg = msg.split(sd, 1)[1].lstrip(": ")
        found.setdefault(msg, []).append(str(c.get("condition", "")))
    ranked = sorted(found.items(), key=lambda kv: -len(kv[1]))
    return {m: (len(cs), list(dict.fromkeys(cs))) for m, cs in ranked}


def _is_overall(group: str) -> bool:
    return group == "overall" or group.startswith("overall ")


def _accuracy_table(groups: Sequence[dict], *, us: bool, w: int) -> list[str]:
    """Table 1: counts, MME error, landmark errors, slice (MR) or frame (US) choice."""
    if us:
        lm = f"{'ref':>6} {'r.max':>6} {'point':>6} {'p.max':>6} {'frame':>5} {'multi':>5}"
        caption = (
            "MME accuracy (mm); landmark errors (mm, Euclidean): tibial reference point (ref),\n"
            "meniscus point (point); frame: chosen = truth frame, over multi-frame files;\n"
            "+tag rows: every file with that facet (speckle_* conditions: grey single-frame only)"
        )
    else:
        lm = f"{'margin':>6} {'m.max':>6} {'edge':>6} {'e.max':>6} {'slice':>5} {'exact':>5}"
        caption = (
            "MME accuracy (mm); landmark errors (mm, Euclidean); "
            "slice error (slices from spine apex)"
        )
    h1 = (
        f"{'condition':<{w}} {'measured':>9} {'ok/rev/err':>10} {'MAE':>6} {'max':>6} "
        f"{'bias':>6} {lm}"
    )
    lines = [*caption.splitlines(), h1, "-" * len(h1)]
    for g in groups:
        if _is_overall(g["group"]):
            lines.append("-" * len(h1))
        if us:
            tail = f"{_pct(g['frame_agreement']):>5} {g['frame_n']:>5}"
        else:
            tail = f"{_cell(g['slice_error_mean'], '5.2f')} {_pct(g['slice_exact_frac']):>5}"
        lines.append(
            f"{g['group']:<{w}} {g['n_measured']:>4}/{g['n_total']:<4} "
            f"{g['n_ok']:>3}/{g['n_review']:>2}/{g['n_error']:>2}  "
            f"{_cell(g['mae_mm'], '6.2f')} {_cell(g['max_abs_error_mm'], '6.2f')} "
            f"{_cell(g['bias_mm'], '+6.2f')} {_cell(g['margin_error_mean_mm'], '6.2f')} "
            f"{_cell(g['margin_error_max_mm'], '6.2f')} "
            f"{_cell(g['meniscus_error_mean_mm'], '6.2f')} "
            f"{_cell(g['meniscus_error_max_mm'], '6.2f')} {tail}"
        )
    return lines


def _flag_table(groups: Sequence[dict], *, us: bool, w: int, thr: float) -> list[str]:
    """Table 2: flag agreement, ok-vs-review MAE, (MR) slice profile and max MME, time."""
    h2 = f"{'condition':<{w}} {'flag agr':>10} {'|t-thr|>=.5':>12} {'ok MAE':>7} {'rev MAE':>7} "
    if us:
        h2 += f"{'s/file':>8}"
        caption = f"Flag (MME >= {thr:g} mm) agreement; ok-vs-review MAE (mm)"
    else:
        h2 += f"{'prof MAE':>8} {'slices':>6} {'max MAE':>7} {'s/series':>8}"
        caption = (
            f"Flag (MME >= {thr:g} mm) agreement; ok-vs-review MAE (mm); slice profile (mm)"
        )
    lines = [caption, h2, "-" * len(h2)]
    for g in groups:
        if _is_overall(g["group"]):
            lines.append("-" * len(h2))
        line = (
            f"{g['group']:<{w}} {_pct(g['flag_agreement']):>5} n={g['flag_n']:<3} "
            f"{_pct(g['flag_clear_agreement']):>5} n={g['flag_clear_n']:<4} "
            f"{_cell(g['ok_mae_mm'], '7.2f')} {_cell(g['review_mae_mm'], '7.2f')} "
        )
        if us:
            line += f"{_cell(g['seconds_mean'], '8.2f')}"
        else:
            line += (
                f"{_cell(g['profile_mae_mm'], '8.2f')} {g['profile_slices']:>6} "
                f"{_cell(g['max_mme_mae_mm'], '7.2f')} {_cell(g['seconds_mean'], '8.2f')}"
            )
        lines.append(line)
    return lines


def _confidence_line(o: dict, label: str) -> str:
    lines = [_ok_vs_review(o["ok_mae_mm"], o["n_ok"], o["review_mae_mm"], o["n_review"],
                           f"{label}", "rows")]  # fmt: skip
    if o.get("profile_ok_n") or o.get("profile_review_n"):
        lines.append(_ok_vs_review(
            o["profile_ok_mae_mm"], o["profile_ok_n"], o["profile_review_mae_mm"],
            o["profile_review_n"], f"{label} (every slice-profile detection)", "slices",
        ))  # fmt: skip
    return "\n".join(lines)


def _ok_vs_review(ok: float | None, n_ok: int, rev: float | None, n_rev: int, label: str,
                  what: str) -> str:  # fmt: skip
    if ok is None or rev is None:
        verdict = f"not testable (no ok or no review {what} with truth)"
    elif ok < rev:
        verdict = f"ok {what} are more accurate than review {what}"
    else:
        verdict = f"ok {what} are NOT more accurate than review {what}"
    return (
        f"{label}: ok MAE {_cell(ok, '.2f')} mm (n={n_ok}) vs review MAE "
        f"{_cell(rev, '.2f')} mm (n={n_rev}): {verdict}"
    )


def format_report(report: ValidationReport) -> str:
    """The report as fixed-width text tables (accuracy; flags, confidence and profile).

    One block of two tables per modality: MR reports slice choice and the slice
    profile, ultrasound (US) reports frame choice; a folder with both ends with
    a pooled ``overall`` line.

    Returns
    -------
    str
        Several lines, no trailing newline.
    """
    thr = report.options.get("threshold_mm", 3.0)
    w = max([len(g["group"]) for g in report.groups] + [9])
    mods = [m for m in ("MR", "US") if any(g.get("modality", "MR") == m for g in report.groups)]
    mixed = len(mods) > 1
    head = (
        f"kneemeasure validate: {report.truth_dir}  side={report.options.get('side')}  "
        f"threshold={thr:g} mm"
    )
    if "US" in mods:
        head += f"  us-reference={report.options.get('us_reference', 'tibial')}"
    lines = [head + f"  ({report.seconds:.1f} s, {report.workers} worker(s))"]
    for m in mods:
        groups = [g for g in report.groups if g.get("modality", "MR") == m]
        us = m == "US"
        o = groups[-1]
        if mixed or us:
            unit = "file(s)" if us else "series"
            lines += ["", f"== {m}: {o['n_total']} {unit} =="]
        lines += ["", *_accuracy_table(groups, us=us, w=w)]
        lines += ["", *_flag_table(groups, us=us, w=w, thr=thr)]
    if mixed:
        o = report.overall
        lines += [
            "",
            f"overall (MR + US): measured {o['n_measured']}/{o['n_total']}, "
            f"ok/review/error {o['n_ok']}/{o['n_review']}/{o['n_error']}, "
            f"MAE {_cell(o['mae_mm'], '.2f')} mm, max {_cell(o['max_abs_error_mm'], '.2f')} mm, "
            f"flag agreement {_pct(o['flag_agreement'])} (n={o['flag_n']}), "
            f"|t-thr|>=.5 {_pct(o['flag_clear_agreement'])} (n={o['flag_clear_n']})",
        ]
    causes = error_causes(report.cases)
    if causes:
        lines += ["", "error causes (count  condition(s)  message):"]
        for msg, (count, conds) in list(causes.items())[:8]:
            shown = ", ".join(conds[:4]) + (", ..." if len(conds) > 4 else "")
            lines.append(f"  {count:>4}  {shown}: {msg[:110]}")
    lines.append("")
    if mixed:
        for m in mods:
            o = next(g for g in report.groups if g["group"] == f"overall {m}")
            lines.append(_confidence_line(o, f"confidence {m}"))
    lines.append(_confidence_line(report.overall, "confidence"))
    return "\n".join(lines)


def write_report(report: ValidationReport, outdir: Path) -> dict[str, Path]:
    """Write ``validation.csv`` (groups), ``validation_cases.csv`` and ``validation.json``.

    Returns
    -------
    dict
        ``{"csv": ..., "cases_csv": ..., "json": ..., "txt": ...}`` paths.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = {
        "csv": outdir / "validation.csv",
        "cases_csv": outdir / "validation_cases.csv",
        "json": outdir / "validation.json",
        "txt": outdir / "validation.txt",
    }

    def cell(v: object) -> str:
        if isinstance(v, float):
            return "" if not math.isfinite(v) else f"{v:.4f}"
        return _fmt_cell(v)

    with paths["csv"].open("w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=list(GROUP_COLUMNS), lineterminator="\n")
        wr.writeheader()
        for g in report.groups:
            wr.writerow({k: cell(g[k]) for k in GROUP_COLUMNS})
    with paths["cases_csv"].open("w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=list(CASE_COLUMNS), lineterminator="\n")
        wr.writeheader()
        for c in report.cases:
            wr.writerow({k: cell(c.get(k)) for k in CASE_COLUMNS})
    paths["json"].write_text(json.dumps(report.to_dict(), indent=1, default=str) + "\n")
    paths["txt"].write_text(format_report(report) + "\n")
    return paths
