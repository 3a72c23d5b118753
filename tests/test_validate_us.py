"""Ultrasound in the validation command: the US suite writer, US truth, scoring, the CLI."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kneemeasure.cli import app
from kneemeasure.validate import (
    US_CONDITIONS,
    ValidationReport,
    _groups,
    format_report,
    read_us_truth,
    score_us_case,
    summarize,
    us_condition,
    us_suite,
    validate_dir,
)

US_SAMPLES = ("us_phantom_gray.dcm", "us_phantom_rgb.dcm", "us_phantom_cine.dcm")


def _us_truth(**kw) -> dict:
    """A US truth row as read from the CSV (strings); spacing 0.1 x 0.2 mm."""
    row = {
        "modality": "US",
        "condition": "cine",
        "tags": "speckle_high deep",
        "file": "a.dcm",
        "extrusion_mm": "3.2",
        "femorotibial_extrusion_mm": "2.7",
        "truth_frame": "1",
        "tibial_margin_row_px": "100.0",
        "tibial_margin_col_px": "50.0",
        "meniscus_row_px": "70.0",
        "meniscus_col_px": "40.0",
        "row_spacing_mm": "0.1",
        "col_spacing_mm": "0.2",
        "spec_n_frames": "3",
    }
    row.update({k: str(v) for k, v in kw.items()})
    return row


def _us_meas(mme: float | None, *, status: str = "ok", frame: int = 1, **kw) -> dict:
    m = {
        "side": "medial",
        "status": status,
        "error": "" if status != "error" else "detection failed",
        "extrusion_mm": mme,
        "frame": frame,
        "plateau_rc": (103.0, 54.0),  # 0.3 mm down, 0.8 mm along -> 0.854 mm
        "meniscus_rc": (70.0, 40.0),
        "confidence": 0.9 if status == "ok" else 0.3,
        "seconds": 0.1,
    }
    m.update(kw)
    return m


# --------------------------------------------------------------------------- conditions
def test_us_condition_priority_and_tags():
    base = {
        "spec_speckle": "0.4", "spec_n_frames": "1", "spec_rgb": "false",
        "proximal": "image-left", "spec_tibial_depth_mm": "12.0", "spec_tilt_deg": "-2.0",
        "row_spacing_mm": "0.1", "col_spacing_mm": "0.1", "file": "x.dcm",
    }
    assert us_condition(base) == ("speckle_low", ["speckle_low", "proximal_left"])
    cond, tags = us_condition({**base, "spec_speckle": "0.7", "spec_rgb": "True"})
    assert cond == "rgb" and "speckle_mid" in tags
    cond, tags = us_condition({**base, "spec_rgb": "true", "spec_n_frames": "3",
                               "spec_speckle": "1.0", "proximal": "image-right",
                               "spec_tibial_depth_mm": "17.5", "spec_tilt_deg": "-6",
                               "col_spacing_mm": "0.13"})
    assert cond == "cine"  # cine wins over rgb
    assert tags == ["speckle_high", "proximal_right", "deep", "tilted", "aniso_spacing"]
    # no spec columns (a scanner file with hand-made truth): the file stem
    assert us_condition({"file": "knee_07.dcm", "extrusion_mm": "2"}) == ("knee_07", [])


def test_us_suite_covers_conditions_and_orientations():
    suite = us_suite(100)
    assert len(suite) == 100
    counts = Counter(c for c, _ in suite)
    assert set(counts) == set(US_CONDITIONS)
    assert counts["cine"] == 20 and all(s.n_frames > 1 for c, s in suite if c == "cine")
    assert all(s.rgb for c, s in suite if c == "rgb")
    assert {s.proximal for _, s in suite} == {"image-left", "image-right"}
    assert len({s.depth_mm for _, s in suite}) >= 3
    assert any(s.spacing_mm[0] != s.spacing_mm[1] for _, s in suite)
    ext = [s.extrusion_mm for _, s in suite]
    assert min(ext) < 0.5 and max(ext) > 6.5
    assert [c for c, _ in us_suite(12, seed=3)] == [c for c, _ in us_suite(12, seed=3)]


# --------------------------------------------------------------------------- scoring
def test_score_us_case_errors_landmarks_frame_and_flags():
    c = score_us_case(_us_truth(), _us_meas(3.5))
    assert c["modality"] == "US" and c["series_dir"] == "a.dcm"
    assert c["error_mm"] == pytest.approx(0.3) and c["abs_error_mm"] == pytest.approx(0.3)
    # tibial reference point: (3 rows x 0.1, 4 cols x 0.2) mm -> hypot(0.3, 0.8)
    assert c["margin_error_mm"] == pytest.approx(0.8544, abs=1e-4)
    assert c["meniscus_error_mm"] == pytest.approx(0.0)
    assert c["truth_extruded"] and c["extruded"] and c["flag_agree"]
    assert c["clear_of_threshold"] is False  # |3.2 - 3| < 0.5
    assert c["frame_agree"] is True and c["chosen_frame"] == 1 and c["n_frames"] == 3
    assert c["slice_error"] is None and c["profile_n"] is None
    # wrong frame, flag disagreement under the femorotibial truth (2.7 mm)
    c = score_us_case(_us_truth(), _us_meas(3.1, frame=0), reference="femorotibial")
    assert c["truth_mme_mm"] == pytest.approx(2.7) and c["us_reference"] == "femorotibial"
    assert c["frame_agree"] is False and c["flag_agree"] is False
    # single frame: no frame agreement counted (it would be trivially true)
    c = score_us_case(_us_truth(spec_n_frames="1", truth_frame="0"), _us_meas(1.0, frame=0))
    assert c["frame_agree"] is None
    # an error row keeps the truth, no measurement
    c = score_us_case(_us_truth(), _us_meas(None, status="error"))
    assert c["mme_mm"] is None and c["abs_error_mm"] is None and c["truth_mme_mm"] == 3.2
    with pytest.raises(Exception, match="us-reference"):
        score_us_case(_us_truth(), _us_meas(1.0), reference="femoral")


def test_summarize_and_groups_mixed_modalities():
    us = [
        score_us_case(_us_truth(), _us_meas(3.5)),  # err 0.3, frame ok
        score_us_case(_us_truth(condition="rgb", tags="deep", spec_n_frames="1"),
                      _us_meas(2.2, status="review")),  # err 1.0, flag wrong
        score_us_case(_us_truth(tags="speckle_high"), _us_meas(3.2, frame=2)),  # err 0, frame no
        score_us_case(_us_truth(condition="rgb"), _us_meas(None, status="error")),
    ]
    g = summarize(us)
    assert g["modality"] == "US"
    assert (g["n_total"], g["n_measured"], g["n_ok"], g["n_review"], g["n_error"]) == (
        4, 3, 2, 1, 1)
    assert g["mae_mm"] == pytest.approx((0.3 + 1.0 + 0.0) / 3)
    assert g["max_abs_error_mm"] == pytest.approx(1.0)
    assert g["frame_n"] == 2 and g["frame_agreement"] == pytest.approx(0.5)
    assert g["flag_agreement"] == pytest.approx(2 / 3)
    assert g["ok_mae_mm"] == pytest.approx(0.15) and g["review_mae_mm"] == pytest.approx(1.0)
    mr = {"condition": "baseline", "modality": "MR", "side": "medial", "laterality": "R",
          "status": "ok", "mme_mm": 2.0, "abs_error_mm": 0.5, "error_mm": 0.5}
    names = [r["group"] for r in _groups([mr, *us])]
    assert names[0] == "baseline" and names[-1] == "overall"
    assert "overall MR" in names and "overall US" in names
    assert names.index("rgb") < names.index("cine")  # US conditions in US_CONDITIONS order
    assert "+deep" in names and "+speckle_high" in names
    deep = next(r for r in _groups(us) if r["group"] == "+deep")
    assert deep["n_total"] == 3  # every case carrying the tag (1, 2 and 4), any condition
    assert [r["group"] for r in _groups(us)][-1] == "overall"  # US only: plain "overall"
    rep = ValidationReport(truth_dir="t", options={"threshold_mm": 3.0, "side": "medial"},
                           cases=[mr, *us], groups=_groups([mr, *us]))
    text = format_report(rep)
    assert "== MR: 1 series ==" in text and "== US: 4 file(s) ==" in text
    assert "overall (MR + US): measured 4/5" in text and "frame multi" in text


# --------------------------------------------------------------------------- files + CLI
@pytest.fixture(scope="module")
def us_suite_dir(tmp_path_factory) -> Path:
    """Six suite files written by `kneemeasure suite --modality us -n 6` (a few seconds)."""
    out = tmp_path_factory.mktemp("ussuite")
    res = CliRunner().invoke(
        app, ["suite", str(out), "--modality", "us", "-n", "6", "--workers", "1", "--quiet"]
    )
    assert res.exit_code == 0, res.output
    assert "wrote 6 ultrasound phantom files" in res.stdout
    return out


def test_suite_writer_truth_csv(us_suite_dir):
    rows = read_us_truth(us_suite_dir)
    assert len(rows) == 6
    assert all(r["modality"] == "US" and (us_suite_dir / r["file"]).is_file() for r in rows)
    assert {r["condition"] for r in rows} >= {"rgb", "cine"}
    for r in rows:  # the truth row agrees with its own spec columns and file name
        assert us_condition(r)[0] == r["condition"] and r["file"].endswith(
            f"_{r['condition']}.dcm")
        assert float(r["extrusion_mm"]) >= 0.0
    cine = next(r for r in rows if r["condition"] == "cine")
    assert cine["spec_n_frames"] == "3" and cine["truth_frame"] == "1"


def test_cli_validate_us_suite(us_suite_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path / "val"
    res = runner.invoke(app, ["validate", str(us_suite_dir), "-o", str(out), "-q",
                              "--workers", "1", "--max-mae", "0.5", "--min-measured", "1.0"])
    assert res.exit_code == 0, res.output
    assert "== US: 6 file(s) ==" in res.stdout and "us-reference=tibial" in res.stdout
    with (out / "validation.csv").open() as fh:
        groups = list(csv.DictReader(fh))
    o = groups[-1]
    assert o["group"] == "overall" and o["modality"] == "US" and o["n_total"] == "6"
    assert int(o["n_ok"]) + int(o["n_review"]) + int(o["n_error"]) == 6
    assert int(o["frame_n"]) >= 1
    data = json.loads((out / "validation.json").read_text())
    cases = data["cases"]
    assert len(cases) == 6 and {c["modality"] for c in cases} == {"US"}
    truth = {r["file"]: r for r in read_us_truth(us_suite_dir)}
    for c in cases:  # scored against the tibial truth column
        assert c["truth_mme_mm"] == pytest.approx(float(truth[c["series_dir"]]["extrusion_mm"]))
    # the femorotibial reference compares with the other truth column
    res = runner.invoke(app, ["validate", str(us_suite_dir), "-o", str(tmp_path / "ft"), "-q",
                              "--workers", "1", "--us-reference", "femorotibial"])
    assert res.exit_code == 0, res.output
    ft = json.loads((tmp_path / "ft" / "validation.json").read_text())["cases"]
    for c in ft:
        want = float(truth[c["series_dir"]]["femorotibial_extrusion_mm"])
        assert c["truth_mme_mm"] == pytest.approx(want) and c["us_reference"] == "femorotibial"


def test_cli_validate_mixed_us_truth_and_mr(samples_dir, tmp_path):
    """A folder like sample_dicoms (truth.csv + us_truth.csv): MR and US groups."""
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in US_SAMPLES:
        shutil.copy(samples_dir / name, mixed / name)
    shutil.copy(samples_dir / "us_truth.csv", mixed / "us_truth.csv")
    lines = (samples_dir / "truth.csv").read_text().splitlines()
    row = next(ln for ln in lines[1:] if ln.startswith("r_pd_iso_mme1p5,"))
    shutil.copytree(samples_dir / "r_pd_iso_mme1p5", mixed / "r_pd_iso_mme1p5")
    (mixed / "truth.csv").write_text(lines[0] + "\n" + row + "\n")
    out = tmp_path / "val"
    res = CliRunner().invoke(
        app, ["validate", str(mixed), "-o", str(out), "-q", "--workers", "1", "--no-profile"]
    )
    assert res.exit_code == 0, res.output
    assert "== MR: 1 series ==" in res.stdout and "== US: 3 file(s) ==" in res.stdout
    with (out / "validation.csv").open() as fh:
        groups = {g["group"]: g for g in csv.DictReader(fh)}
    assert groups["overall MR"]["n_total"] == "1" and groups["overall US"]["n_total"] == "3"
    assert groups["overall"]["n_total"] == "4" and groups["overall"]["modality"] == "all"
    assert {"speckle_high", "rgb", "cine"} <= set(groups)  # conditions from the spec columns
    us = [c for c in json.loads((out / "validation.json").read_text())["cases"]
          if c["modality"] == "US"]
    assert sorted(c["series_dir"] for c in us) == sorted(US_SAMPLES)
    # us_truth.csv alone is enough
    (mixed / "truth.csv").unlink()
    rep = validate_dir(mixed, workers=1)
    assert [g["group"] for g in rep.groups][-1] == "overall"
    assert rep.overall["n_total"] == 3 and rep.overall["modality"] == "US"


def test_cli_validate_us_usage_errors(samples_dir, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["validate", str(tmp_path), "-o", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 2, res.output
    assert "us_truth.csv" in res.output
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "us_truth.csv").write_text("file,mme\na.dcm,2.0\n")
    res = runner.invoke(app, ["validate", str(bad), "-o", str(tmp_path / "o2"), "-q"])
    assert res.exit_code == 2, res.output
    assert "extrusion_mm" in res.output
    res = runner.invoke(app, ["validate", str(samples_dir), "--us-reference", "femoral", "-q"])
    assert res.exit_code == 2, res.output
