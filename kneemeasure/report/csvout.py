"""``measurements.csv``: fixed column order, UTF-8, comma-separated, atomic writes.

The file opens in spreadsheets, pandas and R alike: one header line, ``,``
separator, ``.`` decimal point, empty cells for missing values, ``true``/``false``
for flags. Writes go to a temporary file in the same folder that is then renamed
over the target (``os.replace``), so a killed run never leaves a half-written CSV.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from kneemeasure.models import CSV_COLUMNS, Measurement


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def rows_to_csv_text(rows: Iterable[dict[str, str]], columns: Sequence[str] = CSV_COLUMNS) -> str:
    """Serialise dict rows (string values) with a header line."""
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return buf.getvalue()


def write_rows(
    path: Path,
    rows: Iterable[Measurement | dict[str, str]],
    *,
    columns: Sequence[str] = CSV_COLUMNS,
) -> Path:
    """Write measurements (or already-serialised dict rows) to ``path`` atomically."""
    dict_rows = [r.csv_row() if isinstance(r, Measurement) else r for r in rows]
    atomic_write_text(Path(path), rows_to_csv_text(dict_rows, columns))
    return Path(path)


def read_rows(path: Path) -> list[dict[str, str]]:
    """Read a CSV written by :func:`write_rows` back as dict rows (strings)."""
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))
