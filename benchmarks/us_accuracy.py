"""Ultrasound phantom accuracy benchmark: a thin wrapper over the validation command.

Usage::

    python benchmarks/us_accuracy.py [N] [--reference femorotibial] [--workers 2]
                                     [--seed 0] [--keep DIR] [--out DIR]

Does exactly what ``kneemeasure suite DIR --modality us -n N`` followed by
``kneemeasure validate DIR [--us-reference REF]`` does: writes the ultrasound
phantom suite (:func:`kneemeasure.validate.us_suite`, i.e.
``us_suite_specs``: speckle levels, depths, spacings, tilts, both
orientations, RGB and multi-frame) with :func:`~kneemeasure.validate.write_us_suite`
into a temporary folder (or ``--keep DIR``, reused when it already holds a
``truth.csv``), measures it with :func:`~kneemeasure.validate.validate_dir` and
prints :func:`~kneemeasure.validate.format_report` (measured/total, status
counts, MAE, max error, landmark errors, frame agreement, flag agreement, ok vs
review). With ``--out DIR`` it writes validation.csv / validation_cases.csv /
validation.json there, like ``validate -o``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kneemeasure.pipeline import MeasureOptions  # noqa: E402
from kneemeasure.validate import (  # noqa: E402
    format_report,
    us_suite,
    validate_dir,
    write_report,
    write_us_suite,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="?", type=int, default=100, help="suite size (default 100)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reference", default="tibial", choices=["tibial", "femorotibial"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", type=Path, help="write (or reuse) the suite here")
    ap.add_argument("--out", type=Path, help="write validation.csv / .json here")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as td:
        suite_dir = args.keep or Path(td) / "ussuite"
        t0 = time.perf_counter()
        reused = (suite_dir / "truth.csv").exists()
        if not reused:
            write_us_suite(suite_dir, us_suite(args.n, seed=args.seed), workers=args.workers)
        t_gen = time.perf_counter() - t0
        opts = MeasureOptions(us_reference=args.reference, png=False)
        report = validate_dir(suite_dir, options=opts, workers=args.workers)
        print(format_report(report))
        if args.out:
            write_report(report, args.out)
        gen = f"reused {suite_dir}" if reused else f"written in {t_gen:.1f} s"
        print(f"\nsuite: {gen}; validation {report.seconds:.1f} s ({args.workers} worker(s))")


if __name__ == "__main__":
    main()
