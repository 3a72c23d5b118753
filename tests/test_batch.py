"""Batch engine: discovery of study folders, crash-safe CSV, resume, workers, Dask, CLI.

The cohort is 6 small phantom studies (128 x 128 x 10 at 0.9 mm; one folder
holds two series), one corrupt study and one sagittal (non-measurable) study.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from kneemeasure.batch import (
    BATCH_SLICE_COLUMNS,
    iter_studies,
    looks_like_dicom,
    png_name,
    run_batch,
)
from kneemeasure.errors import UsageError
from kneemeasure.models import CSV_COLUMNS
from kneemeasure.pipeline import MeasureOptions

REPO = Path(__file__).resolve().parents[1]

GOOD = {  # study key -> extrusion of the phantom(s) written there
    "siteA/p01": [1.0],
    "siteA/p02": [4.0],
    "siteB/visit1/p03": [2.5],
    "siteB/visit2/p04": [5.0],
    "siteC mixed": [0.5, 3.5],  # two series in one folder (and a space in the key)
}
BAD = ("bad/corrupt", "bad/sagittal")


def _small_spec(extrusion_mm: float, seed: int, laterality: str):
    from kneemeasure.phantom import PhantomSpec

    return PhantomSpec(
        rows=128,
        cols=128,
        row_spacing_mm=0.9,
        col_spacing_mm=0.9,
        n_slices=10,
        extrusion_mm=extrusion_mm,
        seed=seed,
        laterality=laterality,
        name=f"batch{seed}",
    )


def _write_sagittal(folder: Path, n: int = 3) -> None:
    """A tiny sagittal MR series (IOP 0,1,0 / 0,0,-1), 3 mm slices: not measurable."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(entropy_srcs=["s1"]), generate_uid(entropy_srcs=["s2"])
    for i in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        sop = generate_uid(entropy_srcs=["sag", str(i)])
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.Modality = "MR"
        ds.InstanceNumber = i + 1
        ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
        ds.ImagePositionPatient = [3.0 * i, 0, 0]
        ds.PixelSpacing = [0.5, 0.5]
        ds.SliceThickness = 3.0
        ds.Rows = ds.Columns = 16
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.PixelData = (np.arange(256, dtype=np.uint16) * (i + 1)).tobytes()
        ds.save_as(folder / f"sag{i}.dcm", enforce_file_format=True)


def make_cohort(root: Path) -> Path:
    from kneemeasure.phantom import write_series

    seed = 0
    for key, extrusions in GOOD.items():
        for ext in extrusions:
            seed += 1
            write_series(_small_spec(ext, seed, "R" if seed % 2 else "L"), root / key)
    corrupt = root / "bad" / "corrupt"
    corrupt.mkdir(parents=True)
    (corrupt / "IM0001.dcm").write_bytes(bytes(range(256)) * 4)  # not DICOM at all
    first = sorted((root / "siteA" / "p01").iterdir())[0]
    (corrupt / "IM0002.dcm").write_bytes(first.read_bytes()[:400])  # truncated header
    _write_sagittal(root / "bad" / "sagittal")
    (root / "docs").mkdir()
    (root / "docs" / "README.txt").write_text("not a study\n")
    return root


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    return make_cohort(tmp_path_factory.mktemp("cohort"))


FAST = MeasureOptions(png=False)  # profile on (slices.csv compared too), no PNG


@pytest.fixture(scope="module")
def reference(cohort, tmp_path_factory):
    """An uninterrupted in-process run with PNGs off: the reference output."""
    out = tmp_path_factory.mktemp("ref")
    summary = run_batch(cohort, out, FAST, workers=0, quiet=True)
    return out, summary


def _read(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


def _keys(csv_path: Path) -> list[str]:
    return [r[0] for r in _read(csv_path)[1:]]


# --------------------------------------------------------------------------- discovery


def test_looks_like_dicom_by_magic_extension_and_raw_start(tmp_path):
    part10 = tmp_path / "noext"
    part10.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00")
    junk_dcm = tmp_path / "junk.DCM"
    junk_dcm.write_bytes(b"hello")
    raw = tmp_path / "raw"
    raw.write_bytes(b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100" + b"\0" * 20)
    text = tmp_path / "notes.txt"
    text.write_text("hello world, this is not dicom" * 10)
    assert looks_like_dicom(part10)
    assert looks_like_dicom(junk_dcm)  # claimed DICOM: kept so it yields an error row
    assert looks_like_dicom(raw)
    assert not looks_like_dicom(text)


def test_iter_studies_finds_nested_folders_and_skips_output(cohort, tmp_path):
    keys = list(iter_studies(cohort))
    assert keys == sorted([*GOOD, *BAD])
    # an output folder inside ROOT holding a DICOM-looking file is not walked
    out = cohort / "zz_out"
    out.mkdir()
    try:
        (out / "x.dcm").write_bytes(b"x")
        assert "zz_out" in list(iter_studies(cohort))
        assert "zz_out" not in list(iter_studies(cohort, exclude=out))
    finally:
        shutil.rmtree(out)
    # ROOT itself can be a study
    assert list(iter_studies(cohort / "siteA" / "p01")) == ["."]


def test_png_names_are_unique_and_deterministic():
    used: set[str] = set()
    a = png_name("a b", "1.2.3", "medial", used)
    b = png_name("a_b", "1.2.3", "medial", used)
    c = png_name("a b", "1.2.3", "medial", used)
    assert len({a, b, c}) == 3
    assert png_name("a b", "1.2.3", "medial", set()) == a


# --------------------------------------------------------------------------- one run


def test_batch_rows_errors_summary_and_files(cohort, reference):
    out, summary = reference
    rows = _read(out / "measurements.csv")
    assert tuple(rows[0]) == CSV_COLUMNS
    body = [dict(zip(CSV_COLUMNS, r, strict=True)) for r in rows[1:]]
    keys = [r["source"] for r in body]
    assert keys == sorted(keys)  # deterministic order
    # every study present; the mixed folder gives two rows (two series)
    assert sorted(set(keys)) == sorted([*GOOD, *BAD])
    assert keys.count("siteC mixed") == 2
    for key in BAD:
        bad = [r for r in body if r["source"] == key]
        assert bad and all(r["status"] == "error" for r in bad), key
        assert all(r["error"] for r in bad)
        assert all(str(cohort) not in r["error"] for r in bad)  # relative messages
    good = [r for r in body if r["source"] in GOOD]
    assert len(good) == 6
    assert all(r["status"] in ("ok", "review", "error") for r in good)
    assert sum(r["status"] != "error" for r in good) >= 4
    # summary: counts by status and the >= 3 mm count agree with the CSV
    assert summary.n_studies == 7 and summary.n_measured == 7 and summary.n_resumed == 0
    assert summary.n_rows == len(body)
    assert summary.rows_by_status == {
        s: sum(r["status"] == s for r in body) for s in {r["status"] for r in body}
    }
    assert summary.n_extruded == sum(r["extruded"] == "true" for r in body)
    assert summary.n_failed >= 2 and summary.exit_code == 1
    # slices.csv carries the study key; run.json and batch.log exist
    slices = _read(out / "slices.csv")
    assert tuple(slices[0]) == BATCH_SLICE_COLUMNS
    assert len(slices) > 1 and {r[0] for r in slices[1:]} <= set(GOOD)
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["command"] == "batch"
    assert manifest["outputs"]["summary"]["studies_found"] == 7
    log = (out / "batch.log").read_text()
    assert "bad/corrupt" in log and "found 7 studies" in log


def test_batch_with_pngs_writes_one_png_per_row(cohort, tmp_path):
    sub = tmp_path / "root"
    shutil.copytree(cohort / "siteA", sub / "siteA")
    shutil.copytree(cohort / "bad" / "sagittal", sub / "sag")
    out = tmp_path / "out"
    summary = run_batch(sub, out, MeasureOptions(profile=False), workers=0, quiet=True)
    rows = [dict(zip(CSV_COLUMNS, r, strict=True)) for r in _read(out / "measurements.csv")[1:]]
    assert summary.n_studies == 3
    for r in rows:
        assert r["png"].startswith("png/"), r
        assert (out / r["png"]).is_file()


def test_existing_output_needs_resume_or_overwrite(cohort, reference, tmp_path):
    out, _ = reference
    with pytest.raises(UsageError, match="--resume"):
        run_batch(cohort, out, FAST, workers=0, quiet=True)
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    with pytest.raises(UsageError, match="different options"):
        run_batch(
            cohort,
            copy,
            MeasureOptions(png=False, threshold_mm=4.0),
            workers=0,
            resume=True,
            quiet=True,
        )
    with pytest.raises(UsageError, match="not a folder"):
        run_batch(cohort / "nope", tmp_path / "o", FAST, workers=0)


# --------------------------------------------------------------------------- resume


def test_resume_drops_torn_tail_and_equals_uninterrupted(cohort, reference, tmp_path):
    ref_out, _ = reference
    out = tmp_path / "out"
    shutil.copytree(ref_out, out)
    # simulate a kill in the middle of appending the last study: its journal line
    # is missing and its last CSV record is cut in half (no final newline)
    journal = out / ".kneemeasure-batch" / "done.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    last = json.loads(lines[-1])
    journal.write_text("".join(lines[:-1]))
    text = (out / "measurements.csv").read_text()
    (out / "measurements.csv").write_text(text[: len(text) - 40])
    summary = run_batch(cohort, out, FAST, workers=0, resume=True, quiet=True)
    assert summary.n_measured == 1 and summary.n_resumed == 6
    assert _read(out / "measurements.csv") == _read(ref_out / "measurements.csv")
    assert _read(out / "slices.csv") == _read(ref_out / "slices.csv")
    assert _keys(out / "measurements.csv").count(last) >= 1
    # resuming a finished run measures nothing and changes nothing
    again = run_batch(cohort, out, FAST, workers=0, resume=True, quiet=True)
    assert again.n_measured == 0 and again.exit_code == 1
    assert _read(out / "measurements.csv") == _read(ref_out / "measurements.csv")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_kill_9_then_resume_gives_each_study_once(cohort, reference, tmp_path):
    ref_out, _ = reference
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "kneemeasure.cli", "batch", str(cohort), "-o", str(out),
           "--workers", "1", "--no-png", "--quiet"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=_env(), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    journal = out / ".kneemeasure-batch" / "done.jsonl"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.exists() and journal.read_text().count("\n") >= 2:
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole batch: parent, fork server, workers
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    # what the killed run left is a CSV with the finished studies
    done = [json.loads(x) for x in journal.read_text().splitlines()]
    assert 2 <= len(done) < 7
    keys = _keys(out / "measurements.csv")
    assert set(done) <= set(keys)
    summary = run_batch(cohort, out, FAST, workers=1, resume=True, quiet=True)
    assert summary.n_resumed == len(done) and summary.n_measured == 7 - len(done)
    assert _read(out / "measurements.csv") == _read(ref_out / "measurements.csv")
    assert _read(out / "slices.csv") == _read(ref_out / "slices.csv")


# --------------------------------------------------------------------------- executors


def test_process_pool_equals_in_process(cohort, reference, tmp_path):
    ref_out, _ = reference
    out = tmp_path / "out"
    summary = run_batch(cohort, out, FAST, workers=2, quiet=True)
    assert summary.n_measured == 7
    assert _read(out / "measurements.csv") == _read(ref_out / "measurements.csv")
    assert _read(out / "slices.csv") == _read(ref_out / "slices.csv")


def test_dask_local_cluster_equals_local_path(cohort, reference, tmp_path):
    pytest.importorskip("dask.distributed")
    from dask.distributed import LocalCluster

    ref_out, _ = reference
    out = tmp_path / "out"
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:  # fmt: skip
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        summary = run_batch(cohort, out, FAST, workers=2, scheduler=address, quiet=True)
        # same resume semantics on the Dask path: nothing left to do
        again = run_batch(cohort, out, FAST, workers=2, scheduler=address, resume=True,
                          quiet=True)  # fmt: skip
    assert summary.n_measured == 7 and again.n_measured == 0
    assert _read(out / "measurements.csv") == _read(ref_out / "measurements.csv")
    assert _read(out / "slices.csv") == _read(ref_out / "slices.csv")


def test_bad_scheduler_address_is_a_usage_error(cohort, tmp_path):
    pytest.importorskip("dask.distributed")
    with pytest.raises(UsageError, match="tcp://HOST:PORT"):
        run_batch(cohort, tmp_path / "o", FAST, workers=1, scheduler="nonsense", quiet=True)


# --------------------------------------------------------------------------- CLI


def test_cli_batch_exit_code_and_summary(cohort, tmp_path):
    from typer.testing import CliRunner

    from kneemeasure.cli import app

    sub = tmp_path / "root"
    shutil.copytree(cohort / "siteA" / "p01", sub / "p01")
    runner = CliRunner()
    out = tmp_path / "out"
    args = ["batch", str(sub), "-o", str(out), "--workers", "0", "--no-png", "--quiet"]
    res = runner.invoke(app, args)
    assert res.exit_code in (0, 1), res.output
    assert "MME >= 3 mm" in res.output and "studies: 1 found" in res.output
    row = dict(zip(CSV_COLUMNS, _read(out / "measurements.csv")[1], strict=True))
    assert res.exit_code == (1 if row["status"] == "error" else 0), res.output
    # a second run without --resume refuses (usage error, exit 2) ...
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    # ... and a corrupt study makes the exit code 1
    shutil.copytree(cohort / "bad" / "corrupt", sub / "corrupt")
    res = runner.invoke(app, [*args, "--resume"])
    assert res.exit_code == 1, res.output
    assert "studies: 2 found, 1 measured now, 1 resumed" in res.output
