"""``run.json``: a machine-readable record of one run (versions, options, inputs, outputs)."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import Any

from kneemeasure import __version__
from kneemeasure.report.csvout import atomic_write_text


def _versions() -> dict[str, str]:
    out = {"kneemeasure": __version__, "python": platform.python_version()}
    for name in ("pydicom", "numpy", "scipy", "skimage", "matplotlib"):
        module = sys.modules.get(name)
        if module is not None:
            out[name] = str(getattr(module, "__version__", "?"))
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "value") and not isinstance(value, (str, int, float, bool)):
        return _jsonable(value.value)  # Enum
    return value


def write_manifest(
    path: Path,
    *,
    command: str,
    options: dict[str, Any],
    inputs: list[dict[str, Any]],
    outputs: dict[str, Any],
    started: str,
    elapsed_s: float,
) -> Path:
    """Write ``run.json``.

    Parameters
    ----------
    path : Path
        Target file.
    command : str
        Sub-command name (``"measure"``, ``"batch"``...).
    options : dict
        The resolved options (no patient data).
    inputs : list of dict
        One entry per input series/file: source, series UID, status, error, seconds.
    outputs : dict
        Paths of the CSV and PNGs written.
    started : str
        ISO 8601 start time (UTC).
    elapsed_s : float
        Wall time of the run.
    """
    status_counts: dict[str, int] = {}
    for item in inputs:
        status_counts[item.get("status", "?")] = status_counts.get(item.get("status", "?"), 0) + 1
    doc = {
        "tool": "kneemeasure",
        "version": __version__,
        "versions": _versions(),
        "command": command,
        "started_utc": started,
        "elapsed_s": round(elapsed_s, 3),
        "options": _jsonable(options),
        "status_counts": status_counts,
        "inputs": _jsonable(inputs),
        "outputs": _jsonable(outputs),
    }
    atomic_write_text(Path(path), json.dumps(doc, indent=2) + "\n")
    return Path(path)
