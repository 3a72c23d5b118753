"""Every file of the real robustness corpus ends in a measurement or a clean error row."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kneemeasure.cli import app

runner = CliRunner()


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("README")
                  and not p.name.startswith("LICENSE"))


@pytest.mark.timeout(600)
def test_every_robustness_file_measures_or_fails_cleanly(realdata, tmp_path):
    root = realdata / "dicom_robustness"
    files = _files(root)
    assert len(files) > 40
    seen_error = 0
    for i, path in enumerate(files):
        out = tmp_path / f"o{i}"
        r = runner.invoke(app, ["measure", str(path), "-o", str(out), "-q", "--no-png"])
        rel = path.relative_to(root)
        assert r.exit_code in (0, 1), f"{rel}: exit {r.exit_code}\n{r.output}"
        assert r.exception is None or isinstance(r.exception, SystemExit), (
            f"{rel}: {type(r.exception).__name__}: {r.exception}")
        assert "Traceback" not in r.output, f"{rel}\n{r.output}"
        with open(out / "measurements.csv", newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        assert rows, f"{rel}: no CSV row"
        for row in rows:
            assert row["status"] in ("ok", "review", "error"), row
            if row["status"] == "error":
                seen_error += 1
                assert row["error"] and "\n" not in row["error"], f"{rel}: {row['error']!r}"
                # the message names the file
                assert path.name in row["error"] or str(path) in row["error"] or \
                    path.name in row["source"], f"{rel}: {row['error']}"
        if r.exit_code == 1:
            assert any(row["status"] == "error" for row in rows), rel
    assert seen_error >= 4  # at least the known-bad files fail cleanly
