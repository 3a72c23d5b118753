"""Regenerate ``sample_dicoms/`` (synthetic phantom series + truth.csv).

Usage: ``python scripts/make_samples.py [OUTDIR]`` (default: ``sample_dicoms`` in the repo root).
"""

from __future__ import annotations

import sys
from pathlib import Path

from kneemeasure.phantom import write_samples


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parents[1]
    outdir = Path(argv[1]) if len(argv) > 1 else root / "sample_dicoms"
    truth = write_samples(outdir)
    print(f"wrote {truth}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
