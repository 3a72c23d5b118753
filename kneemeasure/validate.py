"""Validation against exact phantom truth: the hard suite, the harness and the report.

* :func:`hard_suite_specs` builds a deterministic list of ``(condition, spec)``
  pairs covering contrasts, pixel spacings, noise/bias, rotation, varus tilt,
  osteophytes, degeneration, effusion, negative and large extrusion and both knees.
* :func:`write_suite` renders them as DICOM series with ``truth.csv`` (with a
  ``condition`` column) and ``truth_slices.csv`` (per-slice truth extrusion).
* :func:`validate_dir` measures every series listed in a ``truth.csv`` with
  :func:`kneemeasure.pipeline.measure_series` (in a process pool), compares it
  with the truth and summarises per condition, per knee and overall.
* :func:`format_report` prints the summary as fixed-width tables;
  :func:`write_report` writes ``validation.csv``, ``validation_cases.csv`` and
  ``validation.json``.

The harness reports; it does not judge. Conventions: points ``(row, col)`` in
pixels; landmark errors are Euclidean in mm using both pixel spacings; slice
errors are counted in slices along the position order (never raw Instance
Number differences, so reversed numbering is handled).
"""

from __future__ import annotations

import csv
import json
import math
import re
import time
from collections.abc import Callable, Sequence
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
    "ValidationReport",
    "error_causes",
    "format_report",
    "hard_suite_specs",
    "landmark_error_mm",
    "read_truth",
    "score_case",
    "slice_error",
    "summarize",
    "truth_instance_numbers",
    "validate_dir",
    "write_report",
    "write_suite",
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
    results: list[tuple[str, dict, list[dict]] | None] = [None] * len(tasks)
    if workers <= 1:
        for i, t in enumerate(tasks):
            results[i] = _write_one(t)
            if progress:
                progress(i + 1, len(tasks))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(_write_one, t): i for i, t in enumerate(tasks)}
            for done, fut in enumerate(as_completed(futures), 1):
                results[futures[fut]] = fut.result()
                if progress:
                    progress(done, len(tasks))
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


# --------------------------------------------------------------------------- truth
def read_truth(truth_dir: Path) -> tuple[list[dict], dict[str, list[dict]]]:
    """Read ``truth.csv`` (and ``truth_slices.csv`` when present) from ``truth_dir``.

    Returns
    -------
    rows : list of dict
        One per series, values as strings; ``condition`` filled from the
        ``series_dir`` name when the CSV has no ``condition`` column.
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
        rows = list(csv.DictReader(fh))
    needed = {"series_dir", "series_instance_uid", "extrusion_mm", "ref_index"}
    if rows and not needed <= set(rows[0]):
        missing = ", ".join(sorted(needed - set(rows[0])))
        raise UsageError(f"{path}: missing column(s) {missing}; is this a kneemeasure truth.csv?")
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
    "seconds",
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
    return out


# --------------------------------------------------------------------------- summary
#: Columns of ``validation.csv`` (one row per group).
GROUP_COLUMNS: tuple[str, ...] = (
    "group", "n_total", "n_measured", "n_ok", "n_review", "n_error", "mae_mm",
    "max_abs_error_mm", "bias_mm", "margin_error_mean_mm", "margin_error_max_mm",
    "meniscus_error_mean_mm", "meniscus_error_max_mm", "slice_error_mean", "slice_exact_frac",
    "slice_error_max", "flag_n", "flag_agreement", "flag_clear_n", "flag_clear_agreement",
    "ok_mae_mm", "review_mae_mm", "profile_slices", "profile_coverage", "profile_mae_mm",
    "max_mme_mae_mm",
    "max_mme_n", "seconds_mean",
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
    mx = [abs(c["max_error_mm"]) for c in meas if c.get("max_error_mm") is not None]
    secs = [c["seconds"] for c in cases if c.get("seconds") is not None]
    return {
        "group": group,
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
        "max_mme_mae_mm": _mean(mx),
        "max_mme_n": len(mx),
        "seconds_mean": _mean(secs),
    }


def _groups(cases: Sequence[dict]) -> list[dict]:
    order: list[str] = []
    for c in cases:
        if c["condition"] not in order:
            order.append(c["condition"])
    rows = [summarize([c for c in cases if c["condition"] == g], group=g) for g in order]
    for lat in ("L", "R"):
        sub = [c for c in cases if c.get("laterality") == lat]
        if sub and len(order) > 1:
            rows.append(summarize(sub, group=f"knee {lat}"))
    sides = sorted({c["side"] for c in cases})
    if len(sides) > 1:
        rows += [summarize([c for c in cases if c["side"] == s], group=f"side {s}") for s in sides]
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

    def to_dict(self) -> dict:
        d = asdict(self)
        d["confidence_honest"] = self.confidence_honest
        for c in d["cases"]:
            c.pop("profile_abs_sum", None)
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


def validate_dir(
    truth_dir: Path,
    *,
    options: MeasureOptions | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> ValidationReport:
    """Measure every series listed in ``truth_dir/truth.csv`` and compare with the truth.

    Parameters
    ----------
    truth_dir : Path
        Folder with ``truth.csv`` (``series_dir`` relative to it or absolute) as
        written by ``kneemeasure samples`` or :func:`write_suite`; an optional
        ``truth_slices.csv`` enables the slice-profile comparison.
    options : MeasureOptions, keyword-only, optional
        Measurement options (PNG output is always off here). ``side`` may be
        ``"medial"``, ``"lateral"`` or ``"both"``; ``threshold_mm`` sets the flag.
    workers : int, keyword-only
        Processes (``concurrent.futures.ProcessPoolExecutor``); 1 = in-process.
    progress : callable (done, total), optional
        Called after each series.

    Returns
    -------
    ValidationReport
    """
    t0 = time.perf_counter()
    truth_dir = Path(truth_dir)
    rows, slices = read_truth(truth_dir)
    options = replace(options or MeasureOptions(), png=False)
    options.validate()
    if workers < 1:
        raise UsageError(f"--workers {workers}: use 1 or more")
    tasks = []
    for r in rows:
        sd = Path(r["series_dir"])
        sd = sd if sd.is_absolute() else truth_dir / sd
        tasks.append((str(sd), r["series_instance_uid"]))
    results: list[list[dict] | None] = [None] * len(tasks)
    if workers == 1 or len(tasks) <= 1:
        for i, (sd, uid) in enumerate(tasks):
            results[i] = _measure_case(sd, uid, options)
            if progress:
                progress(i + 1, len(tasks))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {
                pool.submit(_measure_case, sd, uid, options): i for i, (sd, uid) in enumerate(tasks)
            }
            for done, fut in enumerate(as_completed(futures), 1):
                results[futures[fut]] = fut.result()
                if progress:
                    progress(done, len(tasks))
    cases = []
    for r, res in zip(rows, results, strict=True):
        for meas in res or []:
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


def format_report(report: ValidationReport) -> str:
    """The report as fixed-width text tables (accuracy; flags, confidence and profile).

    Returns
    -------
    str
        Several lines, no trailing newline.
    """
    thr = report.options.get("threshold_mm", 3.0)
    w = max([len(g["group"]) for g in report.groups] + [9])
    h1 = (
        f"{'condition':<{w}} {'measured':>9} {'ok/rev/err':>10} {'MAE':>6} {'max':>6} "
        f"{'bias':>6} {'margin':>6} {'m.max':>6} {'edge':>6} {'e.max':>6} "
        f"{'slice':>5} {'exact':>5}"
    )
    lines = [
        f"kneemeasure validate: {report.truth_dir}  side={report.options.get('side')}  "
        f"threshold={thr:g} mm  ({report.seconds:.1f} s, {report.workers} worker(s))",
        "",
        "MME accuracy (mm); landmark errors (mm, Euclidean); slice error (slices from spine apex)",
        h1,
        "-" * len(h1),
    ]
    for g in report.groups:
        if g["group"] == "overall":
            lines.append("-" * len(h1))
        lines.append(
            f"{g['group']:<{w}} {g['n_measured']:>4}/{g['n_total']:<4} "
            f"{g['n_ok']:>3}/{g['n_review']:>2}/{g['n_error']:>2}  "
            f"{_cell(g['mae_mm'], '6.2f')} {_cell(g['max_abs_error_mm'], '6.2f')} "
            f"{_cell(g['bias_mm'], '+6.2f')} {_cell(g['margin_error_mean_mm'], '6.2f')} "
            f"{_cell(g['margin_error_max_mm'], '6.2f')} "
            f"{_cell(g['meniscus_error_mean_mm'], '6.2f')} "
            f"{_cell(g['meniscus_error_max_mm'], '6.2f')} {_cell(g['slice_error_mean'], '5.2f')} "
            f"{_pct(g['slice_exact_frac']):>5}"
        )
    h2 = (
        f"{'condition':<{w}} {'flag agr':>10} {'|t-thr|>=.5':>12} {'ok MAE':>7} {'rev MAE':>7} "
        f"{'prof MAE':>8} {'slices':>6} {'max MAE':>7} {'s/series':>8}"
    )
    lines += [
        "",
        f"Flag (MME >= {thr:g} mm) agreement; ok-vs-review MAE (mm); slice profile (mm)",
        h2,
        "-" * len(h2),
    ]
    for g in report.groups:
        if g["group"] == "overall":
            lines.append("-" * len(h2))
        lines.append(
            f"{g['group']:<{w}} {_pct(g['flag_agreement']):>5} n={g['flag_n']:<3} "
            f"{_pct(g['flag_clear_agreement']):>5} n={g['flag_clear_n']:<4} "
            f"{_cell(g['ok_mae_mm'], '7.2f')} {_cell(g['review_mae_mm'], '7.2f')} "
            f"{_cell(g['profile_mae_mm'], '8.2f')} {g['profile_slices']:>6} "
            f"{_cell(g['max_mme_mae_mm'], '7.2f')} {_cell(g['seconds_mean'], '8.2f')}"
        )
    causes = error_causes(report.cases)
    if causes:
        lines += ["", "error causes (count  condition(s)  message):"]
        for msg, (count, conds) in list(causes.items())[:8]:
            shown = ", ".join(conds[:4]) + (", ..." if len(conds) > 4 else "")
            lines.append(f"  {count:>4}  {shown}: {msg[:110]}")
    o = report.overall
    honest = report.confidence_honest
    verdict = {True: "ok rows are more accurate than review rows",
               False: "ok rows are NOT more accurate than review rows",
               None: "not testable (no ok or no review rows with truth)"}[honest]
    lines += [
        "",
        f"confidence: ok MAE {_cell(o['ok_mae_mm'], '.2f')} mm (n={o['n_ok']}) vs review MAE "
        f"{_cell(o['review_mae_mm'], '.2f')} mm (n={o['n_review']}): {verdict}",
    ]
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
