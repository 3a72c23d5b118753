"""Time ``kneemeasure measure`` on one 24-slice coronal series.

Usage::

    python benchmarks/measure_time.py [SERIES_DIR] [--repeat 5]

Without SERIES_DIR it uses the real 24-slice coronal T1 in ../shared/realdata
when present, else a generated 24-slice phantom. It reports the wall time of
the whole command as a user runs it (a fresh process: Python start-up, imports,
discovery, decoding, detection, PNG and CSV) and the in-process time of
``run_measure`` split from start-up. Target (issue 2): under 2 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL_T1 = ROOT.parent / "shared" / "realdata" / "osirix_knee" / "T1_coronal"


def _series(arg: str | None, tmp: Path) -> Path:
    if arg:
        return Path(arg)
    if REAL_T1.is_dir():
        return REAL_T1
    sys.path.insert(0, str(ROOT))
    from kneemeasure.phantom import PhantomSpec, write_series

    spec = PhantomSpec(n_slices=24, rows=512, cols=512, row_spacing_mm=0.3125,
                       col_spacing_mm=0.3125)
    write_series(spec, tmp / "phantom24")
    return tmp / "phantom24"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("series", nargs="?")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        series = _series(args.series, tmp)
        n_files = sum(1 for p in series.iterdir() if p.is_file())
        walls = []
        for i in range(args.repeat):
            t0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "kneemeasure.cli", "measure", str(series), "-o",
                 str(tmp / f"out{i}"), "-q"],
                capture_output=True, text=True, cwd=ROOT,
            )
            walls.append(time.perf_counter() - t0)
            if proc.returncode not in (0, 1):
                sys.exit(f"measure failed ({proc.returncode}): {proc.stderr.strip()}")
        sys.path.insert(0, str(ROOT))
        from kneemeasure.pipeline import MeasureOptions, run_measure

        inproc = []
        for i in range(args.repeat):
            t0 = time.perf_counter()
            run_measure([series], tmp / f"in{i}", MeasureOptions())
            inproc.append(time.perf_counter() - t0)
        no_png = []
        for i in range(args.repeat):
            t0 = time.perf_counter()
            run_measure([series], tmp / f"np{i}", MeasureOptions(png=False, profile=False))
            no_png.append(time.perf_counter() - t0)
    print(f"series: {series} ({n_files} files)")
    print(f"kneemeasure measure (fresh process, end to end): median {statistics.median(walls):.2f} s"
          f"  min {min(walls):.2f} s  max {max(walls):.2f} s  over {args.repeat} runs")
    print(f"run_measure in-process (warm imports):            median {statistics.median(inproc):.2f} s")
    print(f"run_measure without PNG and slice profile:        median {statistics.median(no_png):.2f} s")
    print("target: < 2 s end to end")


if __name__ == "__main__":
    main()
