"""``kneemeasure batch ROOT -o OUTDIR``: the cohort command (a thin wrapper over
:func:`kneemeasure.batch.run_batch`). Registered in :mod:`kneemeasure.cli` with
``app.command()(batch)``.

Exit codes: 0 every study measured (ok or review), 1 some study failed (an
error row), 2 usage error, 130 interrupted (rerun with ``--resume``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kneemeasure.cli_common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    MinConfidenceOpt,
    NoPngOpt,
    NoProfileOpt,
    OutOpt,
    QuietOpt,
    Side,
    SideOpt,
    SpacingOpt,
    ThresholdOpt,
    fail,
)
from kneemeasure.errors import KneeMeasureError, UsageError


def batch(
    root: Annotated[
        Path,
        typer.Argument(
            help="Cohort folder: every folder below it holding DICOM files is one study.",
            exists=True,
            file_okay=False,
            dir_okay=True,
            show_default=False,
        ),
    ],
    out: OutOpt = Path("kneemeasure-batch"),
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-j",
            help="Worker processes (default: number of cores; 0 = in this process).",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Skip studies already in OUT/measurements.csv.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Start again even if OUT holds an earlier batch.")
    ] = False,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="Run on a Dask cluster: tcp://HOST:PORT of its scheduler "
            "(needs the dask extra, pip install 'kneemeasure\\[dask]'; "
            "ROOT and OUT on a shared file system).",
            show_default=False,
        ),
    ] = None,
    dask: Annotated[
        bool,
        typer.Option("--dask", help="Run on a local Dask cluster (LocalCluster, --workers)."),
    ] = False,
    threshold_mm: ThresholdOpt = 3.0,
    side: SideOpt = Side.medial,
    spacing_mm: SpacingOpt = None,
    min_confidence: MinConfidenceOpt = 0.5,
    no_profile: NoProfileOpt = False,
    no_png: NoPngOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Measure every knee study under ROOT; append results to OUT/measurements.csv.

    Results are written study by study (crash-safe); --resume continues a killed
    or interrupted run. Logs go to OUT/batch.log, the run record to OUT/run.json.
    """
    from kneemeasure.batch import run_batch
    from kneemeasure.pipeline import MeasureOptions

    try:
        if scheduler and dask:
            raise UsageError("give either --scheduler tcp://HOST:PORT or --dask, not both")
        opts = MeasureOptions(
            side=side.value,
            threshold_mm=threshold_mm,
            spacing_mm=spacing_mm,
            confidence_threshold=min_confidence,
            profile=not no_profile,
            png=not no_png,
        )
        opts.validate()
        summary = run_batch(
            root,
            out,
            opts,
            workers=workers,
            resume=resume,
            scheduler="local" if dask else scheduler,
            quiet=quiet,
            overwrite=overwrite,
        )
    except UsageError as exc:
        fail(exc, EXIT_USAGE)
    except KneeMeasureError as exc:
        fail(exc, EXIT_FAILED)
    except KeyboardInterrupt:
        typer.echo(
            f"kneemeasure: interrupted; finished studies are in {out}/measurements.csv; "
            "rerun with --resume",
            err=True,
        )
        raise typer.Exit(130) from None
    for line in summary.lines():
        typer.echo(line)
    raise typer.Exit(EXIT_FAILED if summary.exit_code else EXIT_OK)
