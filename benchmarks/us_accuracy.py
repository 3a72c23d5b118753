"""Ultrasound phantom accuracy benchmark.

Writes a suite of ultrasound phantom DICOMs (``us_suite_specs``: speckle
levels, depths, spacings, tilts, both orientations, RGB and multi-frame) to a
temporary folder, measures each with :func:`kneemeasure.us.measure_us_file`
(default frame choice, tibial reference, side from the anatomy) and prints:
measured %, MAE, max error, bias, side and frame agreement, and agreement of
the >= 3 mm flag where |truth - 3| >= 0.5 mm.

Usage: ``python benchmarks/us_accuracy.py [N] [--reference femorotibial]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from kneemeasure.errors import KneeMeasureError
from kneemeasure.phantom_us import us_suite_specs, write_us_dicom
from kneemeasure.us import measure_us_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference", default="tibial", choices=["tibial", "femorotibial"])
    args = parser.parse_args()
    specs = us_suite_specs(args.n, seed=args.seed)
    rows = []
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for i, spec in enumerate(specs):
            path = Path(tmp) / f"us_{i:03d}.dcm"
            truth = write_us_dicom(spec, path)
            key = "extrusion_mm" if args.reference == "tibial" else "femorotibial_extrusion_mm"
            row = {"i": i, "truth": truth[key], "truth_frame": truth["truth_frame"]}
            row.update(rgb=spec.rgb, frames=spec.n_frames, side=truth["tibia_side"])
            try:
                res = measure_us_file(path, reference=args.reference)
                row.update(
                    measured=res.extrusion_mm,
                    status=res.status,
                    frame=res.frame,
                    found_side=res.landmarks.tibia_side,
                )
            except KneeMeasureError as exc:
                row.update(measured=None, status="error", error=str(exc))
            rows.append(row)
    elapsed = time.time() - t0
    ok = [r for r in rows if r["measured"] is not None and r["status"] == "ok"]
    err = np.array([r["measured"] - r["truth"] for r in ok])
    flag_rows = [r for r in ok if abs(r["truth"] - 3.0) >= 0.5]
    flag_agree = [(r["measured"] >= 3.0) == (r["truth"] >= 3.0) for r in flag_rows]
    multi = [r for r in ok if r["frames"] > 1]
    print(f"US phantom suite: n={len(rows)} reference={args.reference} ({elapsed:.0f} s)")
    print(f"  measured (status ok): {len(ok)}/{len(rows)} = {100 * len(ok) / len(rows):.1f} %")
    print(
        f"  review: {sum(r['status'] == 'review' for r in rows)}, "
        f"error: {sum(r['status'] == 'error' for r in rows)}"
    )
    if len(err):
        print(
            f"  MAE {np.abs(err).mean():.3f} mm, max |err| {np.abs(err).max():.3f} mm, "
            f"bias {err.mean():+.3f} mm, 95th pct |err| {np.percentile(np.abs(err), 95):.3f} mm"
        )
    print(f"  >=3 mm flag agreement (|truth-3|>=0.5): {sum(flag_agree)}/{len(flag_rows)}")
    print(f"  tibia side correct: {sum(r['found_side'] == r['side'] for r in ok)}/{len(ok)}")
    print(
        f"  sharpest frame = truth frame: {sum(r['frame'] == r['truth_frame'] for r in multi)}"
        f"/{len(multi)} multi-frame"
    )
    for sub, name in (([r for r in ok if r["rgb"]], "RGB"), (multi, "multi-frame")):
        e = np.array([r["measured"] - r["truth"] for r in sub])
        if len(e):
            print(f"  {name}: n={len(e)} MAE {np.abs(e).mean():.3f} mm")
    worst = sorted(ok, key=lambda r: -abs(r["measured"] - r["truth"]))[:3]
    for r in worst:
        print(f"  worst #{r['i']}: truth {r['truth']:.2f} measured {r['measured']:.2f}")
    for r in rows:
        if r["status"] != "ok":
            print(f"  #{r['i']} {r['status']}: {r.get('error', '')}")


if __name__ == "__main__":
    main()
