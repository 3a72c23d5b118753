"""CLI commands ``validate`` (accuracy against phantom truth) and ``suite`` (phantom suites).

Registered on the Typer app in :mod:`kneemeasure.cli`. Both cover MRI and
ultrasound: ``suite --modality us`` writes the ultrasound phantom suite and
``validate`` reports MR and US truth of a folder with the same tables. ``validate`` reports; its
exit code is 0 when it ran, 1 only when an optional gate (``--max-mae``,
``--min-measured``, ``--require-honest-confidence``) fails, 2 on usage errors.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from kneemeasure.cli_common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    MinConfidenceOpt,
    NoProfileOpt,
    QuietOpt,
    Side,
    SideOpt,
    ThresholdOpt,
    UsReference,
    UsReferenceOpt,
    fail,
)
from kneemeasure.errors import KneeMeasureError, UsageError


class SuiteModality(str, Enum):
    mr = "mr"
    us = "us"


def _bar(quiet: bool, desc: str):
    """A tqdm bar on stderr (disabled with --quiet) and its (done, total) callback."""
    from tqdm import tqdm

    bar = tqdm(total=0, desc=desc, unit="series", file=sys.stderr, disable=quiet, leave=False)

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
            bar.refresh()
        bar.update(done - bar.n)

    return bar, update


WorkersOpt = Annotated[int, typer.Option("--workers", "-j", min=1, help="Worker processes.")]


def validate(
    truth_dir: Annotated[
        Path,
        typer.Argument(
            help="Folder with truth.csv and/or us_truth.csv (from `kneemeasure samples` or "
            "`kneemeasure suite`); MR series and ultrasound files.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option("-o", "--out", help="Folder for validation.csv / validation.json."),
    ] = Path("kneemeasure-validation"),
    workers: WorkersOpt = 2,
    quiet: QuietOpt = False,
    side: SideOpt = Side.medial,
    threshold_mm: ThresholdOpt = 3.0,
    min_confidence: MinConfidenceOpt = 0.5,
    us_reference: UsReferenceOpt = UsReference.tibial,
    no_profile: NoProfileOpt = False,
    max_mae: Annotated[
        float | None,
        typer.Option(
            "--max-mae",
            help="CI gate: exit 1 when the overall MME MAE exceeds this (mm).",
            show_default=False,
        ),
    ] = None,
    min_measured: Annotated[
        float | None,
        typer.Option(
            "--min-measured",
            help="CI gate: exit 1 when fewer than this fraction (0-1) of cases were measured.",
            show_default=False,
        ),
    ] = None,
    require_honest_confidence: Annotated[
        bool,
        typer.Option(
            "--require-honest-confidence",
            help="CI gate: exit 1 unless status=ok rows (and slice-profile detections) "
            "have a lower MAE than review ones.",
        ),
    ] = False,
) -> None:
    """Measure every series / ultrasound file of a truth folder; report accuracy per condition."""
    from kneemeasure.pipeline import MeasureOptions
    from kneemeasure.validate import format_report, validate_dir, write_report

    try:
        if not truth_dir.is_dir():
            raise UsageError(f"no such folder: {truth_dir}")
        if min_measured is not None and not 0.0 <= min_measured <= 1.0:
            raise UsageError(f"--min-measured {min_measured}: give a fraction between 0 and 1")
        opts = MeasureOptions(
            side=side.value,
            threshold_mm=threshold_mm,
            confidence_threshold=min_confidence,
            profile=not no_profile,
            png=False,
            us_reference=us_reference.value,
        )
        opts.validate()
        bar, update = _bar(quiet, "validate")
        try:
            report = validate_dir(truth_dir, options=opts, workers=workers, progress=update)
        finally:
            bar.close()
        paths = write_report(report, out)
    except UsageError as exc:
        fail(exc, EXIT_USAGE)
    except KneeMeasureError as exc:
        fail(exc, EXIT_FAILED)
    typer.echo(format_report(report))
    typer.echo(f"wrote {paths['csv']}, {paths['cases_csv'].name}, {paths['json'].name}", err=True)

    o = report.overall
    failed = []
    if max_mae is not None and (o["mae_mm"] is None or o["mae_mm"] > max_mae):
        mae = "n/a" if o["mae_mm"] is None else f"{o['mae_mm']:.2f} mm"
        failed.append(f"overall MAE {mae} > --max-mae {max_mae:g} mm")
    if min_measured is not None:
        frac = o["n_measured"] / o["n_total"] if o["n_total"] else 0.0
        if frac < min_measured:
            failed.append(f"measured {frac:.0%} < --min-measured {min_measured:.0%}")
    # rows first; where a suite has no review rows, every slice-profile detection
    verdicts = [v for v in (report.confidence_honest, report.confidence_honest_slices)
                if v is not None]  # fmt: skip
    if require_honest_confidence and (not verdicts or not all(verdicts)):
        failed.append(
            "status=ok rows (or slice-profile detections) are not more accurate than "
            "status=review ones, or there are no review ones to compare"
        )
    for f in failed:
        typer.echo(f"kneemeasure: gate failed: {f}", err=True)
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


def suite(
    outdir: Annotated[Path, typer.Argument(help="Folder to write the phantom suite into.")],
    n: Annotated[
        int | None,
        typer.Option(
            "-n",
            min=1,
            help="Number of series / files [default: 240 MR, 100 US].",
            show_default=False,
        ),
    ] = None,
    modality: Annotated[
        SuiteModality,
        typer.Option("--modality", help="mr: the hard MRI suite; us: the ultrasound suite."),
    ] = SuiteModality.mr,
    seed: Annotated[int, typer.Option(help="Suite seed.")] = 0,
    workers: WorkersOpt = 2,
    quiet: QuietOpt = False,
) -> None:
    """Write a phantom suite (DICOM files and truth.csv) for validate: MRI (default) or US."""
    from kneemeasure.validate import hard_suite_specs, us_suite, write_suite, write_us_suite

    try:
        bar, update = _bar(quiet, "suite")
        try:
            if modality is SuiteModality.us:
                specs = us_suite(100 if n is None else n, seed=seed)
                truth = write_us_suite(outdir, specs, workers=workers, progress=update)
                what = "ultrasound phantom files"
            else:
                specs = hard_suite_specs(240 if n is None else n, seed=seed)
                truth = write_suite(outdir, specs, workers=workers, progress=update)
                what = "phantom series"
        finally:
            bar.close()
    except UsageError as exc:
        fail(exc, EXIT_USAGE)
    except KneeMeasureError as exc:
        fail(exc, EXIT_FAILED)
    typer.echo(f"wrote {len(specs)} {what} and {truth}")
