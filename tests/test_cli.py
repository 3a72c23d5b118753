"""CLI behaviour: exit codes, outputs, golden comparison with the phantom truth."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kneemeasure import __version__
from kneemeasure.cli import app
from kneemeasure.models import CSV_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _tagged_series(samples_dir: Path) -> Path:
    """A sample series whose header carries Laterality (the plain, common case)."""
    for t in _rows(samples_dir / "truth.csv"):
        if t["include_laterality_tag"] == "true":
            return samples_dir / t["series_dir"]
    raise AssertionError("no sample with a Laterality tag")


def test_version_and_help():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0, r.output
    assert __version__ in r.output
    r = runner.invoke(app, ["-h"])
    assert r.exit_code == 0, r.output
    for cmd in ("measure", "inspect", "samples"):
        assert cmd in r.output


def test_missing_path_is_usage_error(tmp_path):
    r = runner.invoke(app, ["measure", str(tmp_path / "nope"), "-o", str(tmp_path / "o")])
    assert r.exit_code == 2, r.output
    assert "no such file" in r.output
    assert "Traceback" not in r.output


def test_bad_option_is_usage_error(tmp_path):
    r = runner.invoke(app, ["measure", str(tmp_path), "--side", "upper"])
    assert r.exit_code == 2, r.output


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory, samples_dir):
    out = tmp_path_factory.mktemp("samples_out")
    r = runner.invoke(app, ["measure", str(samples_dir), "-o", str(out), "-q"])
    return r, out


def test_samples_measure_against_truth(sample_run, samples_dir):
    r, out = sample_run
    assert r.exit_code == 0, r.output
    with open(out / "measurements.csv", newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    assert tuple(header) == CSV_COLUMNS
    rows = {row["series_instance_uid"]: row for row in _rows(out / "measurements.csv")}
    truth = _rows(samples_dir / "truth.csv")
    mri_truth = [t for t in truth if t.get("modality", "MR") in ("", "MR")]
    assert mri_truth, "truth.csv lists no MR phantom"
    for t in mri_truth:
        row = rows.get(t["series_instance_uid"])
        assert row is not None, f"{t['series_dir']} was not measured"
        assert row["status"] in ("ok", "review"), row
        err = abs(float(row["extrusion_mm"]) - float(t["extrusion_mm"]))
        assert err <= 0.5, f"{t['series_dir']}: {row['extrusion_mm']} vs truth {t['extrusion_mm']}"
        assert (row["extruded"] == "true") == (float(row["extrusion_mm"]) >= 3.0)
        assert (out / row["png"]).is_file()
        assert row["laterality"] == t["laterality"], t["series_dir"]


def test_ultrasound_samples_against_truth(sample_run, samples_dir):
    _, out = sample_run
    rows = [r for r in _rows(out / "measurements.csv") if r["modality"] == "US"]
    truth = _rows(samples_dir / "us_truth.csv")
    assert truth and len(rows) == len(truth)
    for t in truth:
        row = next(r for r in rows if Path(r["source"]).name == t["file"])
        assert row["status"] == "ok", row
        assert abs(float(row["extrusion_mm"]) - float(t["extrusion_mm"])) <= 0.5, (row, t)
        assert row["us_reference"] == "tibial" and row["spacing_source"] == "US regions"
        assert (out / row["png"]).is_file()


def test_outputs_carry_no_patient_data(sample_run):
    _, out = sample_run
    for name in ("measurements.csv", "run.json"):
        text = (out / name).read_text(encoding="utf-8")
        assert "PHANTOM^" not in text and "PHANTOM-0" not in text, name
    doc = json.loads((out / "run.json").read_text())
    assert doc["version"] == __version__
    assert doc["outputs"]["measurements_csv"] == "measurements.csv"
    assert all(i["status"] in ("ok", "review", "ok,review", "skipped") for i in doc["inputs"])
    # per-phase seconds of each measured series (where the time went)
    measured = [i for i in doc["inputs"] if i["status"] != "skipped"]
    assert len(measured) >= 6
    for i in measured:
        phases = i["phase_seconds"]
        mr = {"decode", "detect"} <= set(phases)
        assert mr if i["plane"] == "coronal" else set(phases) == {"decode_and_detect"}, i
        assert all(v >= 0 for v in phases.values())
        assert sum(phases.values()) <= i["seconds"] + 0.01


def test_bad_input_keeps_good_results(tmp_path, samples_dir):
    junk = tmp_path / "notes.txt"
    junk.write_text("not a dicom")
    series = _tagged_series(samples_dir)
    out = tmp_path / "o"
    r = runner.invoke(app, ["measure", str(series), str(junk), "-o", str(out), "-q"])
    assert r.exit_code == 1, r.output
    rows = _rows(out / "measurements.csv")
    statuses = sorted(row["status"] for row in rows)
    assert statuses.count("error") == 1 and len(rows) == 2, rows
    bad = next(row for row in rows if row["status"] == "error")
    assert "notes.txt" in bad["error"]
    assert "Traceback" not in r.output


def test_subprocess_entry_point(tmp_path, samples_dir):
    series = _tagged_series(samples_dir)
    out = tmp_path / "o"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "cli.py"),
            "measure",
            str(series),
            "-o",
            str(out),
            "--no-profile",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert proc.returncode == 0, proc.stderr
    # measure ends the process without the interpreter's teardown (cli._exit_now):
    # everything printed and written must be complete
    assert "MME" in proc.stdout and proc.stdout.rstrip().endswith("[ok]"), proc.stdout
    assert "wrote" in proc.stderr
    (row,) = _rows(out / "measurements.csv")
    assert row["status"] == "ok"
    json.loads((out / "run.json").read_text())
    from PIL import Image

    with Image.open(out / row["png"]) as im:
        im.load()  # the whole PNG decodes
    # exit code 1 (one input failed) survives the fast exit
    junk = tmp_path / "notes.txt"
    junk.write_text("not a dicom")
    bad = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "measure", str(series), str(junk), "-o",
         str(tmp_path / "o2"), "--no-profile", "--no-png"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert bad.returncode == 1, bad.stderr
    assert "notes.txt" in bad.stderr and len(_rows(tmp_path / "o2" / "measurements.csv")) == 2


def test_inspect_describes_series(samples_dir):
    series = _tagged_series(samples_dir)
    r = runner.invoke(app, ["inspect", str(series)])
    assert r.exit_code == 0, r.output
    assert "coronal" in r.output and "spacing" in r.output and "would measure" in r.output


def test_samples_command_writes_truth(tmp_path):
    r = runner.invoke(app, ["samples", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "s" / "truth.csv").is_file()
    assert (tmp_path / "s" / "us_truth.csv").is_file()


def test_real_t1_left_knee_without_laterality(realdata, tmp_path):
    """Acceptance: the real 3 T coronal T1 of a LEFT knee with no laterality tag."""
    out = tmp_path / "t1"
    r = runner.invoke(
        app, ["measure", str(realdata / "osirix_knee" / "T1_coronal"), "-o", str(out), "-q"]
    )
    assert r.exit_code == 0, r.output
    rows = _rows(out / "measurements.csv")
    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == "ok", row
    assert row["laterality"] == "L" and row["laterality_source"] == "anatomy"
    assert row["medial_image_side"] == "image-left"
    assert 9 <= int(row["instance_number"]) <= 14, row["instance_number"]
    assert float(row["meniscus_col_px"]) < 256 and float(row["plateau_col_px"]) < 256
    assert -1.5 <= float(row["extrusion_mm"]) <= 4.0
    assert (out / row["png"]).is_file()


def test_pydicom_is_imported_without_requests_and_requests_still_works():
    """The CLI imports pydicom with ``requests`` hidden (start-up time); only then."""
    code = (
        "import sys\n"
        "from kneemeasure.cli import _import_pydicom_without_requests\n"
        "_import_pydicom_without_requests()\n"
        "assert 'pydicom' in sys.modules and 'requests' not in sys.modules\n"
        "import pydicom.data.download as d\n"
        "assert d.HAVE_REQUESTS is False  # pydicom's downloader falls back to urllib\n"
        "import importlib.util\n"
        "if importlib.util.find_spec('requests') is not None:  # installed: still importable\n"
        "    import requests\n"
        "    assert requests.get\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
