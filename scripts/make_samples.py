"""Regenerate ``sample_dicoms/``: MRI phantoms + truth.csv, ultrasound phantoms + us_truth.csv.

Usage: ``python scripts/make_samples.py [OUTDIR]`` (default: ``sample_dicoms`` in the repo root).
"""

from __future__ import annotations

import sys
from pathlib import Path

from kneemeasure.phantom import write_samples
from kneemeasure.phantom_us import write_us_samples


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parents[1]
    outdir = Path(argv[1]) if len(argv) > 1 else root / "sample_dicoms"
    truth = write_samples(outdir)
    us_truth = write_us_samples(outdir)
    print(f"wrote {truth} and {us_truth}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
