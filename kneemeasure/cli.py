"""Command-line interface (Typer). Parses options, calls the pipeline, maps errors to exit codes.

Exit codes: 0 every input measured (status ok or review), 1 some input failed
(status error), 2 usage error. No traceback unless ``--debug``; DICOM datasets
and patient data are never printed.
"""

from __future__ import annotations

import logging
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from kneemeasure import __version__
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
    UsReference,
    UsReferenceOpt,
    fail,
    state,
)
from kneemeasure.errors import KneeMeasureError, UsageError

app = typer.Typer(
    name="kneemeasure",
    help="Measure medial meniscal extrusion (MME) on knee MRI and ultrasound DICOMs.",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_show_locals=False,
    no_args_is_help=True,
    add_completion=False,
)


class Laterality(str, Enum):
    left = "left"
    right = "right"


class Proximal(str, Enum):
    image_left = "image-left"
    image_right = "image-right"


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"kneemeasure {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool | None,
        typer.Option(
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show Python tracebacks and debug logs.")
    ] = False,
) -> None:
    """kneemeasure: meniscal extrusion from knee MRI / ultrasound DICOMs."""
    state["debug"] = debug
    state["fast_exit"] = False
    _import_pydicom_without_requests()
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _import_pydicom_without_requests() -> None:
    """Import pydicom with ``requests`` hidden: every command starts ~70 ms sooner.

    pydicom imports ``requests`` (with urllib3 and charset_normalizer) for its
    example-data downloader and uses urllib when it is missing; kneemeasure never
    downloads anything. ``requests`` is hidden only during this import, before any
    work starts: a later ``import requests`` works as usual.
    """
    if "pydicom" in sys.modules or "requests" in sys.modules:
        return
    sys.modules["requests"] = None  # type: ignore[assignment]  # import -> ImportError
    try:
        import pydicom  # noqa: F401
    finally:
        del sys.modules["requests"]


PathsArg = Annotated[
    list[Path],
    typer.Argument(help="DICOM file(s), series folder(s) or study folder(s).", show_default=False),
]


def _options(**kw):
    from kneemeasure.pipeline import MeasureOptions

    opts = MeasureOptions(**kw, debug=state["debug"])  # --debug: bugs raise, not error rows
    opts.validate()
    return opts


def _check_paths(paths: list[Path]) -> None:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")


@app.command()
def measure(
    paths: PathsArg,
    out: OutOpt = Path("kneemeasure-out"),
    side: SideOpt = Side.medial,
    threshold_mm: ThresholdOpt = 3.0,
    slice_: Annotated[
        int | None,
        typer.Option(
            "--slice",
            help="Measure this Instance Number instead of the automatic spine-apex slice.",
            show_default=False,
        ),
    ] = None,
    laterality: Annotated[
        Laterality | None,
        typer.Option(
            help="Override the knee side (else header, else anatomy).", show_default=False
        ),
    ] = None,
    spacing_mm: SpacingOpt = None,
    min_confidence: MinConfidenceOpt = 0.5,
    no_profile: NoProfileOpt = False,
    no_png: NoPngOpt = False,
    us_reference: UsReferenceOpt = UsReference.tibial,
    frame: Annotated[
        int | None,
        typer.Option(
            "--frame",
            help="Ultrasound cine frame (0-based); default: the sharpest.",
            show_default=False,
        ),
    ] = None,
    proximal: Annotated[
        Proximal | None,
        typer.Option(
            "--proximal",
            help="Ultrasound: which image side is proximal (femur); default: from anatomy.",
            show_default=False,
        ),
    ] = None,
    quiet: QuietOpt = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-j",
            min=1,
            help="Processes for one series: decoding, slice detection and the PNG run "
            "side by side (default: the cores, at most 4; 1 = in this process).",
            show_default=False,
        ),
    ] = None,
    interactive: Annotated[
        bool,
        typer.Option(
            "--interactive",
            help="Open a window to check, move or click the landmarks (needs a display).",
        ),
    ] = False,
    no_auto: Annotated[
        bool,
        typer.Option("--no-auto", help="No automatic detection: landmarks from clicks or points."),
    ] = False,
    points: Annotated[
        str | None,
        typer.Option(
            "--points",
            help="Landmarks in pixels 'PLATEAU_ROW,PLATEAU_COL;MENISCUS_ROW,MENISCUS_COL' "
            "(+ ';S1_ROW,S1_COL;S2_ROW,S2_COL' on the plateau surface for its direction).",
            show_default=False,
        ),
    ] = None,
    points_file: Annotated[
        Path | None,
        typer.Option(
            "--points-file",
            help="Corrections CSV (series_instance_uid, side, instance_number, "
            "plateau/meniscus row/col px); measures those series from the given landmarks.",
            show_default=False,
        ),
    ] = None,
    save_corrections: Annotated[
        Path | None,
        typer.Option(
            "--save-corrections",
            help="With --interactive: write the corrections as a --points-file CSV.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Measure meniscal extrusion; write measurements.csv, PNGs and run.json to OUT."""
    from kneemeasure.parallel import default_workers
    from kneemeasure.pipeline import run_measure

    try:
        _check_paths(paths)
        manual = None
        if interactive or no_auto or points or points_file or save_corrections:
            from kneemeasure.interactive.points import build_points_option

            manual = build_points_option(
                points=points,
                points_file=points_file,
                interactive=interactive,
                no_auto=no_auto,
                save_corrections=save_corrections,
            )
            if interactive:
                from kneemeasure.interactive.window import check_display

                check_display()  # fail at once without a display, before reading images
        opts = _options(
            side=side.value,
            threshold_mm=threshold_mm,
            slice_instance=slice_,
            laterality=None if laterality is None else laterality.value[0].upper(),
            spacing_mm=spacing_mm,
            confidence_threshold=min_confidence,
            profile=not no_profile,
            png=not no_png,
            us_reference=us_reference.value,
            us_frame=frame,
            us_proximal=None if proximal is None else proximal.value,
            points=manual,
            workers=default_workers() if workers is None else workers,
        )

        def progress(msg: str) -> None:
            if not quiet:
                typer.echo(msg, err=True)

        result = run_measure(paths, out, opts, progress=progress)
    except UsageError as exc:
        fail(exc, EXIT_USAGE)
    except KneeMeasureError as exc:
        fail(exc, EXIT_FAILED)
    for m in result.measurements:
        if m.status == "error":
            typer.echo(f"kneemeasure: error: {m.error}", err=True)
        else:
            flag = "EXTRUDED" if m.extruded else "normal"
            typer.echo(
                f"{m.source}  {m.side}  instance {m.instance_number}  MME {m.extrusion_mm:.1f} mm"
                f"  {flag}  confidence {m.confidence:.2f}  [{m.status}]"
            )
    typer.echo(f"wrote {result.csv_path}", err=True)
    # every output is written and closed and the worker processes have ended:
    # main() may skip the interpreter's teardown (see _exit_now)
    state["fast_exit"] = not interactive
    raise typer.Exit(EXIT_FAILED if result.n_failed else EXIT_OK)


@app.command()
def inspect(
    paths: PathsArg,
    spacing_mm: SpacingOpt = None,
) -> None:
    """Describe the series found (plane, laterality, spacing, slices); measures nothing."""
    from kneemeasure.inspect import describe_paths

    try:
        _check_paths(paths)
        lines, failed = describe_paths(paths, spacing_mm=spacing_mm)
    except UsageError as exc:
        fail(exc, EXIT_USAGE)
    except KneeMeasureError as exc:
        fail(exc, EXIT_FAILED)
    for line in lines:
        typer.echo(line)
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


@app.command()
def samples(
    outdir: Annotated[Path, typer.Argument(help="Folder to write the phantom series into.")],
) -> None:
    """Write the synthetic MRI and ultrasound phantoms with truth.csv and us_truth.csv."""
    from kneemeasure.phantom import write_samples
    from kneemeasure.phantom_us import write_us_samples

    try:
        truth = write_samples(outdir)
        us_truth = write_us_samples(outdir)
    except KneeMeasureError as exc:
        fail(exc, EXIT_FAILED)
    typer.echo(f"wrote MRI phantoms with {truth} and ultrasound phantoms with {us_truth}")


# Commands defined in their own modules (batch runs, validation), registered here so
# that ``kneemeasure`` and ``python -m kneemeasure.cli`` both see them.
from kneemeasure.cli_batch import batch  # noqa: E402
from kneemeasure.cli_validate import suite, validate  # noqa: E402

app.command()(batch)
app.command()(validate)
app.command()(suite)


def _exit_now(code: int | str | None) -> NoReturn:
    """Flush the output streams and logging, then end the process at once.

    Python's teardown of the imported scientific stack (scipy, scikit-image,
    pydicom, numpy) takes ~0.2 s on this machine, which is 10 % of a one-series
    ``measure``. Used only after ``measure`` has written and closed every output
    and its worker processes have ended, so there is nothing left to clean up.
    """
    if isinstance(code, str):  # sys.exit("message"): print it, exit 1
        print(code, file=sys.stderr)
        code = EXIT_FAILED
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be written
            pass
    logging.shutdown()
    os._exit(int(code or 0))


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except SystemExit as exc:
        if state.get("fast_exit"):
            _exit_now(exc.code)
        raise
    except KeyboardInterrupt:
        typer.echo("kneemeasure: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: one line, no locals/patient data; --debug shows it all
        if state["debug"]:
            raise
        typer.echo(
            f"kneemeasure: internal error: {type(exc).__name__}: {str(exc)[:200]} "
            "(rerun with --debug for the traceback and report it)",
            err=True,
        )
        sys.exit(EXIT_FAILED)


if __name__ == "__main__":
    main()
