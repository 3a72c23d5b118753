"""Accuracy and timing of kneemeasure on the hard phantom suite.

Usage::

    python benchmarks/accuracy.py [-n 240] [--workers 2] [--out DIR] [--keep DIR]
                                  [--timing-series 12]

Generates the hard suite (:func:`kneemeasure.validate.hard_suite_specs`) into a
temporary folder (or ``--keep DIR``), runs :func:`kneemeasure.validate.validate_dir`
on it, prints the report (the same tables as ``kneemeasure validate``) and the
timings: suite generation, whole validation (wall), and the in-process
per-series time of ``measure_series`` with and without the slice profile on a
subset of series (decoding included, discovery and start-up excluded).
With ``--out DIR`` it also writes validation.csv / validation.json there.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kneemeasure.errors import KneeMeasureError  # noqa: E402
from kneemeasure.io import discover_series  # noqa: E402
from kneemeasure.pipeline import MeasureOptions, measure_series  # noqa: E402
from kneemeasure.validate import (  # noqa: E402
    format_report,
    hard_suite_specs,
    read_truth,
    validate_dir,
    write_report,
    write_suite,
)


def _per_series_times(truth_dir: Path, k: int) -> dict[str, list[float]]:
    """Time measure_series with and without the slice profile on ``k`` series (one per condition
    first, so the subset is varied)."""
    rows, _ = read_truth(truth_dir)
    picked, seen = [], set()
    for r in rows:
        if r["condition"] not in seen:
            seen.add(r["condition"])
            picked.append(r)
    picked += [r for r in rows if r not in picked]  # more cases if some fail
    picked = picked[: 2 * k]
    times: dict[str, list[float]] = {"profile": [], "no_profile": []}
    skipped = []
    for r in picked:
        got = {}
        for key, prof in (("no_profile", False), ("profile", True)):
            found, _ = discover_series([truth_dir / r["series_dir"]])
            opts = MeasureOptions(png=False, profile=prof)
            t0 = time.perf_counter()
            try:
                measure_series(found[0], opts)
            except KneeMeasureError:  # a failed series stops early: not a fair timing
                skipped.append(r["series_dir"])
                break
            got[key] = time.perf_counter() - t0
        if len(got) == 2:
            for key, v in got.items():
                times[key].append(v)
    if skipped:
        print(f"  (timing skipped {len(skipped)} series that failed: {', '.join(skipped)})")
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=240, help="suite size (default 240)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, help="write validation.csv / .json here")
    ap.add_argument("--keep", type=Path, help="generate the suite here instead of a temp folder")
    ap.add_argument("--timing-series", type=int, default=12,
                    help="series for the per-series profile timing (default 12)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as td:
        suite_dir = args.keep or Path(td) / "suite"
        specs = hard_suite_specs(args.n, seed=args.seed)
        t0 = time.perf_counter()
        reused = (suite_dir / "truth.csv").exists()
        if not reused:
            write_suite(suite_dir, specs, workers=args.workers)
        t_gen = time.perf_counter() - t0

        t0 = time.perf_counter()
        report = validate_dir(suite_dir, workers=args.workers)
        t_val = time.perf_counter() - t0
        print(format_report(report))
        if args.out:
            write_report(report, args.out)

        times = _per_series_times(suite_dir, args.timing_series)
        secs = [c["seconds"] for c in report.cases if c.get("seconds") is not None]
        print()
        print(f"timing ({args.workers} worker(s), {len(specs)} series)")
        if reused:
            print(f"  suite generation      (reused {suite_dir})")
        else:
            print(f"  suite generation      {t_gen:8.1f} s  "
                  f"({t_gen / len(specs):.2f} s/series wall)")
        print(f"  validation (wall)     {t_val:8.1f} s  ({t_val / len(specs):.2f} s/series wall)")
        if secs:
            print(f"  per series in worker  median {statistics.median(secs):.2f} s, "
                  f"max {max(secs):.2f} s (discovery + decode + measure + profile)")
        for key, label in (("no_profile", "without profile"), ("profile", "with profile")):
            v = times[key]
            if v:
                print(f"  measure_series {label:<16} median {statistics.median(v):.2f} s, "
                      f"mean {statistics.mean(v):.2f} s over {len(v)} series")


if __name__ == "__main__":
    main()
