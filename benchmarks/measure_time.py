"""Time ``kneemeasure measure`` on one 24-slice coronal series.

Usage::

    python benchmarks/measure_time.py [SERIES_DIR] [--repeat 5]

Without SERIES_DIR it times the real 24-slice coronal T1 in ../shared/realdata
(512 x 512, JPEG 2000, no laterality tag: the side comes from the fibular head)
when present, and always a generated 24-slice phantom (512 x 512, uncompressed,
laterality in the header). Each variant runs the command as a user runs it, in
a fresh process (Python start-up, imports, discovery, decoding, detection, PNG,
CSV), and reports the median wall time; ``run_measure`` in a warm process is
shown too, to separate start-up/import cost from the work. Target (issue 2):
under 2 s end to end.

The package is byte-compiled first (``compileall``, into the git-ignored
``__pycache__`` folders), as ``pip install .`` does: a checkout run with
``PYTHONDONTWRITEBYTECODE=1`` would otherwise recompile the package's modules
(about 0.1 s) on every start, which no installed copy does.
"""

from __future__ import annotations

import argparse
import compileall
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL_T1 = ROOT.parent / "shared" / "realdata" / "osirix_knee" / "T1_coronal"

VARIANTS = (
    ("default (PNG + slice profile, workers = cores)", []),
    ("-j 1 (everything in one process)", ["-j", "1"]),
    ("--no-profile", ["--no-profile"]),
    ("--no-profile --no-png", ["--no-profile", "--no-png"]),
)


def _phantom(tmp: Path) -> Path:
    sys.path.insert(0, str(ROOT))
    from kneemeasure.phantom import PhantomSpec, write_series

    spec = PhantomSpec(
        n_slices=24, rows=512, cols=512, row_spacing_mm=0.3125, col_spacing_mm=0.3125
    )
    write_series(spec, tmp / "phantom24")
    return tmp / "phantom24"


def _cli(series: Path, out: Path, extra: list[str]) -> float:
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "kneemeasure.cli", "measure", str(series), "-o", str(out), "-q"]
    proc = subprocess.run(cmd + extra, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        sys.exit(f"measure failed ({proc.returncode}): {proc.stderr.strip()}")
    return wall


def _time_series(series: Path, tmp: Path, repeat: int) -> None:
    from kneemeasure.parallel import default_workers
    from kneemeasure.pipeline import MeasureOptions, run_measure

    n_files = sum(1 for p in series.iterdir() if p.is_file())
    print(f"\nseries: {series} ({n_files} files)")
    for name, extra in VARIANTS:
        walls = [_cli(series, tmp / f"o{i}", extra) for i in range(repeat)]
        print(
            f"  kneemeasure measure {name}: median {statistics.median(walls):.2f} s"
            f"  (min {min(walls):.2f}, max {max(walls):.2f}, {repeat} runs, fresh process)"
        )
    warm = []
    for i in range(repeat):
        t0 = time.perf_counter()
        run_measure([series], tmp / f"in{i}", MeasureOptions(workers=default_workers()))
        warm.append(time.perf_counter() - t0)
    print(f"  run_measure in a warm process (imports done): median {statistics.median(warm):.2f} s")


def _machine_speed(series: Path) -> float:
    """Milliseconds for one slice detection in this process (median of 7).

    The machine's speed drifts (shared cores): this figure, printed before and
    after the timings, tells whether two runs of the benchmark are comparable.
    """
    from kneemeasure.detect import detect_landmarks
    from kneemeasure.io import discover_series

    (s,), _ = discover_series([series])
    image = s.load_frame(s.n_slices // 2)
    kw = dict(row_spacing_mm=float(s.row_spacing_mm), col_spacing_mm=float(s.col_spacing_mm),
              outer_col_sign=1, side="medial")  # fmt: skip
    times = []
    for _ in range(8):
        t0 = time.perf_counter()
        try:
            detect_landmarks(image, **kw)
        except Exception:  # noqa: BLE001 - only the time matters here
            pass
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("series", nargs="?")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    compileall.compile_dir(ROOT / "kneemeasure", quiet=1)
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        if args.series:
            todo = [Path(args.series)]
        else:
            todo = ([REAL_T1] if REAL_T1.is_dir() else []) + [_phantom(tmp)]
        probe = todo[-1]  # the phantom, or the given series
        print(f"machine speed: one slice detection {_machine_speed(probe):.0f} ms")
        for series in todo:
            _time_series(series, tmp, args.repeat)
        print(f"\nmachine speed after: one slice detection {_machine_speed(probe):.0f} ms")
    print("target: < 2 s end to end")


if __name__ == "__main__":
    main()
