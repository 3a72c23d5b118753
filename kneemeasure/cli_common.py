"""Pieces every command shares: exit codes, choices, option aliases, error exit.

Options are defined once here as ``Annotated`` aliases and reused by
``measure``, ``batch`` and ``validate`` so that their names, help and defaults
never drift apart.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

#: Global flags set by the app callback (``--debug``).
state = {"debug": False, "fast_exit": False}


class Side(str, Enum):
    medial = "medial"
    lateral = "lateral"
    both = "both"


class UsReference(str, Enum):
    tibial = "tibial"
    femorotibial = "femorotibial"


def fail(exc: BaseException, code: int) -> None:
    """One stderr line (or the traceback with --debug) and the exit code."""
    if state["debug"]:
        raise exc
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    typer.echo(f"kneemeasure: error: {msg}", err=True)
    raise typer.Exit(code)


OutOpt = Annotated[Path, typer.Option("-o", "--out", help="Output folder (created).")]
SpacingOpt = Annotated[
    tuple[float, float] | None,
    typer.Option(
        "--spacing-mm",
        help="Pixel spacing ROW COL in mm when the header has none.",
        show_default=False,
    ),
]
SideOpt = Annotated[Side, typer.Option("--side", help="Which meniscus to measure.")]
ThresholdOpt = Annotated[
    float, typer.Option("--threshold-mm", help="Extruded when MME >= this (mm).")
]
MinConfidenceOpt = Annotated[
    float, typer.Option("--min-confidence", help="Below this confidence, status=review.")
]
NoProfileOpt = Annotated[
    bool, typer.Option("--no-profile", help="Skip the per-slice profile (faster).")
]
NoPngOpt = Annotated[bool, typer.Option("--no-png", help="Do not write PNGs.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
UsReferenceOpt = Annotated[
    UsReference,
    typer.Option(
        "--us-reference",
        help="Ultrasound reference line: the tibial cortex line, or the line through the "
        "femoral and tibial margins.",
    ),
]
