"""Regenerate the ultrasound phantom samples and ``us_truth.csv`` in this folder.

Usage: ``python sample_dicoms/us_make_samples.py`` (deterministic: fixed seeds).
"""

from __future__ import annotations

import csv
from pathlib import Path

from kneemeasure.phantom_us import UsPhantomSpec, write_us_dicom

HERE = Path(__file__).resolve().parent

SAMPLES = {
    "us_phantom_gray.dcm": UsPhantomSpec(
        extrusion_mm=2.0,
        depth_mm=25.0,
        width_mm=36.0,
        spacing_mm=(0.15, 0.15),
        speckle=0.9,
        proximal="image-left",
        seed=101,
        tibial_depth_mm=14.0,
        tilt_deg=3.0,
    ),
    "us_phantom_rgb.dcm": UsPhantomSpec(
        extrusion_mm=4.2,
        depth_mm=25.0,
        width_mm=36.0,
        spacing_mm=(0.15, 0.15),
        speckle=0.7,
        proximal="image-right",
        rgb=True,
        seed=102,
        tibial_depth_mm=15.0,
        tilt_deg=-4.0,
    ),
    "us_phantom_cine.dcm": UsPhantomSpec(
        extrusion_mm=3.4,
        depth_mm=25.0,
        width_mm=36.0,
        spacing_mm=(0.15, 0.18),
        speckle=1.0,
        proximal="image-left",
        n_frames=3,
        truth_frame=1,
        seed=103,
        tibial_depth_mm=15.0,
    ),
}


def main() -> None:
    rows = [write_us_dicom(spec, HERE / name) for name, spec in SAMPLES.items()]
    keys = list(rows[0])
    with open(HERE / "us_truth.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in row.items()}
            )


if __name__ == "__main__":
    main()
