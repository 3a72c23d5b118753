"""Validation harness: metrics on hand-made rows, the hard suite's coverage, the CLI."""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections import Counter

import pytest
from typer.testing import CliRunner

from kneemeasure.cli import app
from kneemeasure.phantom import make_truth
from kneemeasure.pipeline import profile_indices
from kneemeasure.validate import (
    CONDITIONS,
    error_causes,
    hard_suite_specs,
    landmark_error_mm,
    read_truth,
    score_case,
    slice_error,
    summarize,
    truth_instance_numbers,
    validate_dir,
    write_suite,
)


def _truth(**kw) -> dict:
    """A truth.csv-like row (strings, as read from the CSV)."""
    row = {
        "condition": "c",
        "series_dir": "s",
        "series_instance_uid": "1.2.3",
        "laterality": "R",
        "row_spacing_mm": "0.5",
        "col_spacing_mm": "0.25",
        "n_slices": "5",
        "ref_index": "2",
        "reverse_instances": "false",
        "extrusion_mm": "3.0",
        "plateau_row_px": "10.0",
        "plateau_col_px": "10.0",
        "meniscus_row_px": "8.0",
        "meniscus_col_px": "22.0",
        "lateral_extrusion_mm": "1.0",
        "lateral_plateau_row_px": "10.0",
        "lateral_plateau_col_px": "100.0",
        "lateral_meniscus_row_px": "8.0",
        "lateral_meniscus_col_px": "96.0",
        "max_extrusion_mm": "3.4",
        "max_extrusion_instance": "1",
    }
    row.update({k: str(v) for k, v in kw.items()})
    return row


def _meas(mme: float | None, *, status: str = "ok", instance: int = 3, **kw) -> dict:
    m = {
        "side": "medial",
        "status": status,
        "error": "" if status != "error" else "failed",
        "extrusion_mm": mme,
        "instance_number": instance,
        "plateau_rc": (10.0, 10.0),
        "meniscus_rc": (8.0, 22.0),
        "confidence": 0.9 if status == "ok" else 0.3,
        "max_extrusion_mm": None,
        "max_extrusion_instance": None,
        "profile": [],
        "seconds": 1.0,
    }
    m.update(kw)
    return m


# --------------------------------------------------------------------------- primitives
def test_landmark_error_uses_both_spacings():
    # 3 rows x 0.5 mm = 1.5 mm down, 4 cols x 0.25 mm = 1.0 mm across -> sqrt(3.25)
    err = landmark_error_mm((13.0, 14.0), (10.0, 10.0), row_spacing_mm=0.5, col_spacing_mm=0.25)
    assert err == pytest.approx(math.sqrt(1.5**2 + 1.0**2))
    # swapping the spacings gives a different number: the axes are not interchangeable
    swapped = landmark_error_mm((13.0, 14.0), (10.0, 10.0), row_spacing_mm=0.25,
                                col_spacing_mm=0.5)
    assert swapped == pytest.approx(math.sqrt(0.75**2 + 2.0**2))
    assert landmark_error_mm(None, (1.0, 1.0), row_spacing_mm=1, col_spacing_mm=1) is None


def test_slice_error_with_reversed_instance_numbers():
    truth = _truth(n_slices=5, reverse_instances="true", ref_index=1)
    numbers = truth_instance_numbers(truth)
    assert numbers == [5, 4, 3, 2, 1]
    # reference index 1 is instance 4; instance 2 is index 3 -> 2 slices away
    assert slice_error(2, numbers, 1) == 2
    assert slice_error(4, numbers, 1) == 0
    assert slice_error(5, numbers, 1) == 1
    assert slice_error(99, numbers, 1) is None
    # an explicit per-slice list wins over the rebuilt one
    listed = [{"instance_number": str(n)} for n in (10, 12, 14)]
    assert truth_instance_numbers(truth, listed) == [10, 12, 14]
    assert slice_error(14, [10, 12, 14], 0) == 2


def test_score_case_errors_and_flags():
    t = _truth(extrusion_mm=3.0, ref_index=2)  # instances 1..5, ref = instance 3
    c = score_case(t, _meas(2.4, instance=4, plateau_rc=(13.0, 14.0)), threshold_mm=3.0)
    assert c["abs_error_mm"] == pytest.approx(0.6)
    assert c["error_mm"] == pytest.approx(-0.6)
    assert c["slice_error"] == 1
    assert c["margin_error_mm"] == pytest.approx(math.sqrt(3.25))
    assert c["meniscus_error_mm"] == pytest.approx(0.0)
    assert c["truth_extruded"] is True and c["extruded"] is False and c["flag_agree"] is False
    assert c["clear_of_threshold"] is False  # |3.0 - 3| < 0.5
    # the threshold is inclusive
    assert score_case(t, _meas(3.0))["flag_agree"] is True
    # errors are not measured and carry no MME error
    e = score_case(t, _meas(None, status="error"))
    assert e["mme_mm"] is None and e["abs_error_mm"] is None and e["status"] == "error"


def test_score_case_lateral_side_uses_lateral_truth():
    t = _truth()
    c = score_case(t, _meas(1.5, side="lateral", plateau_rc=(10.0, 100.0),
                            meniscus_rc=(8.0, 96.0)))
    assert c["truth_mme_mm"] == pytest.approx(1.0)
    assert c["abs_error_mm"] == pytest.approx(0.5)
    assert c["margin_error_mm"] == pytest.approx(0.0)


def test_score_case_profile_against_truth_slices():
    t = _truth(n_slices=3, ref_index=1, reverse_instances="true", max_extrusion_mm=3.4,
               max_extrusion_instance=1)
    truth_slices = [
        {"index": "0", "instance_number": "3", "extrusion_mm": ""},  # no meniscal body
        {"index": "1", "instance_number": "2", "extrusion_mm": "3.0"},
        {"index": "2", "instance_number": "1", "extrusion_mm": "3.4"},
    ]
    m = _meas(3.2, instance=2, max_extrusion_mm=3.9, max_extrusion_instance=2,
              profile=[(3, 1.0, "ok"), (2, 3.2, "ok"), (1, 3.9, "ok")])
    c = score_case(t, m, truth_slices=truth_slices)
    assert c["profile_n"] == 2  # the slice without truth is not scored
    assert c["profile_truth_n"] == 2
    assert c["profile_mae_mm"] == pytest.approx((0.2 + 0.5) / 2)
    assert c["max_error_mm"] == pytest.approx(0.5)
    assert c["max_slice_error"] == 1  # instance 2 vs truth max at instance 1
    assert c["slice_error"] == 0
    g = summarize([c])
    assert g["profile_slices"] == 2 and g["profile_coverage"] == pytest.approx(1.0)
    assert g["profile_mae_mm"] == pytest.approx(0.35)
    assert g["profile_ok_n"] == 2 and g["profile_review_n"] == 0
    assert g["profile_review_mae_mm"] is None


def test_slice_profile_confidence_split():
    """ok vs review over every slice-profile detection, scored against the truth slices."""
    t = _truth(n_slices=3, ref_index=1)
    truth_slices = [
        {"index": str(i), "instance_number": str(i + 1), "extrusion_mm": v}
        for i, v in enumerate(("1.0", "2.0", "3.0"))
    ]
    m = _meas(2.1, instance=2, profile=[(1, 1.2, "ok"), (2, 2.1, "ok"), (3, 6.0, "review")])
    g = summarize([score_case(t, m, truth_slices=truth_slices)])
    assert g["profile_ok_n"] == 2 and g["profile_ok_mae_mm"] == pytest.approx(0.15)
    assert g["profile_review_n"] == 1 and g["profile_review_mae_mm"] == pytest.approx(3.0)


def test_summarize_mae_flags_and_confidence_split():
    t = _truth
    cases = [
        score_case(t(extrusion_mm=1.0), _meas(1.5)),  # err 0.5, clear, agree
        score_case(t(extrusion_mm=5.0), _meas(4.0)),  # err 1.0, clear, agree
        score_case(t(extrusion_mm=3.2), _meas(2.9, status="review")),  # near, disagree
        score_case(t(extrusion_mm=2.0), _meas(4.0, status="review")),  # err 2, clear, disagree
        score_case(t(extrusion_mm=2.0), _meas(None, status="error")),
    ]
    g = summarize(cases)
    assert (g["n_total"], g["n_measured"], g["n_ok"], g["n_review"], g["n_error"]) == (
        5, 4, 2, 2, 1)
    assert g["mae_mm"] == pytest.approx((0.5 + 1.0 + 0.3 + 2.0) / 4)
    assert g["max_abs_error_mm"] == pytest.approx(2.0)
    assert g["flag_n"] == 4 and g["flag_agreement"] == pytest.approx(0.5)
    # restricted to |truth - 3| >= 0.5: the 3.2 mm case drops out
    assert g["flag_clear_n"] == 3 and g["flag_clear_agreement"] == pytest.approx(2 / 3)
    assert g["ok_mae_mm"] == pytest.approx(0.75)
    assert g["review_mae_mm"] == pytest.approx(1.15)
    assert g["slice_error_mean"] == pytest.approx(0.0) and g["slice_exact_frac"] == 1.0
    causes = error_causes(cases)
    assert causes == {"failed": (1, ["c"])}


def test_profile_indices_fill_gaps_and_include_reference():
    assert profile_indices([2, 5, 6, 9]) == [2, 3, 4, 5, 6, 7, 8, 9]
    assert profile_indices([4, 5], reference_index=7) == [4, 5, 6, 7]
    assert profile_indices([]) == []


# --------------------------------------------------------------------------- hard suite
def test_hard_suite_covers_every_condition():
    specs = hard_suite_specs()
    assert len(specs) >= 200
    counts = Counter(c for c, _ in specs)
    assert set(counts) == set(CONDITIONS)
    assert min(counts.values()) >= 15
    assert len({s.name for _, s in specs}) == len(specs)
    by = {c: [s for cc, s in specs if cc == c] for c in CONDITIONS}
    for c, ss in by.items():
        assert {s.laterality for s in ss} == {"L", "R"}, c  # both knees everywhere
    assert {s.contrast for s in by["t1"]} == {"t1"}
    assert {s.contrast for _, s in specs} == {"t1", "pd", "pdfs", "dess"}
    spacings = [(s.row_spacing_mm, s.col_spacing_mm) for _, s in specs]
    assert all(0.25 <= r <= 0.6 and 0.25 <= c <= 0.6 for r, c in spacings)
    assert any(r != c for r, c in spacings)
    assert min(s.row_spacing_mm for s in by["fine_spacing"]) <= 0.25
    assert all(1.0 <= s.osteophyte_mm <= 4.0 for s in by["osteophyte"])
    assert all(s.osteophyte_mm == 0 for s in by["baseline"])
    assert max(abs(s.rotation_deg) for s in by["rotation"]) >= 9.0
    assert all(abs(s.rotation_deg) <= 10.0 for _, s in specs)
    assert all(s.plateau_tilt_deg > 0 for s in by["varus_tilt"])
    assert all(s.degenerated for s in by["degenerated"])
    assert all(s.effusion for s in by["effusion"])
    assert all(s.extrusion_mm < 0 for s in by["negative_mme"])
    assert not any(s.include_laterality_tag for s in by["no_laterality_tag"])
    assert any(s.noise >= 0.08 for s in by["noise_bias"])
    ext = [s.extrusion_mm for _, s in specs]
    assert min(ext) <= -2.0 and max(ext) == pytest.approx(8.0)
    assert any(s.reverse_instances for _, s in specs)
    # the truth is exact: the phantom's reference-slice MME equals the spec
    for _, s in specs[::37]:
        assert make_truth(s).extrusion_mm == pytest.approx(s.extrusion_mm, abs=1e-9)
    # deterministic
    assert hard_suite_specs(30, seed=1) == hard_suite_specs(30, seed=1)


def test_write_suite_and_validate(tmp_path):
    specs = [(c, s) for c, s in hard_suite_specs(30) if s.name in ("baseline_000", "t1_001")]
    for _, s in specs:  # keep it small and fast
        s.rows, s.cols, s.n_slices = 150, 150, 8
        s.row_spacing_mm = s.col_spacing_mm = 0.85
    truth = write_suite(tmp_path / "suite", specs)
    rows, slices = read_truth(truth.parent)
    assert [r["condition"] for r in rows] == ["baseline", "t1"]
    assert set(slices) == {r["series_instance_uid"] for r in rows}
    assert all(len(v) == 8 for v in slices.values())
    rep = validate_dir(truth.parent, workers=1)
    assert [g["group"] for g in rep.groups][:2] == ["baseline", "t1"]
    assert rep.overall["n_total"] == 2
    assert rep.overall["n_ok"] + rep.overall["n_review"] + rep.overall["n_error"] == 2


# --------------------------------------------------------------------------- CLI
def test_cli_validate_on_sample_dicoms(samples_dir, tmp_path):
    out = tmp_path / "val"
    res = CliRunner().invoke(
        app, ["validate", str(samples_dir), "-o", str(out), "--workers", "2", "--quiet"]
    )
    assert res.exit_code == 0, res.output
    assert "overall" in res.stdout and "MAE" in res.stdout and "confidence:" in res.stdout
    with (out / "validation.csv").open() as fh:
        groups = list(csv.DictReader(fh))
    # sample_dicoms holds 6 MR series (truth.csv) and 3 ultrasound files (us_truth.csv)
    by_name = {g["group"]: g for g in groups}
    assert groups[-1]["group"] == "overall"
    assert groups[-1]["n_total"] == "9"
    assert by_name["overall MR"]["n_total"] == "6" and by_name["overall US"]["n_total"] == "3"
    n_sum = sum(int(groups[-1][k]) for k in ("n_ok", "n_review", "n_error"))
    assert n_sum == 9
    data = json.loads((out / "validation.json").read_text())
    assert len(data["cases"]) == 9
    assert (out / "validation_cases.csv").exists()


def test_cli_validate_gate_and_usage_errors(samples_dir, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["validate", str(tmp_path), "-o", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 2, res.output  # no truth.csv
    # one sample series with its truth row, in a folder of its own (keeps the test fast)
    one = tmp_path / "one"
    with (samples_dir / "truth.csv").open() as fh:
        lines = fh.read().splitlines()
    row = next(ln for ln in lines[1:] if ln.startswith("r_pd_iso_mme1p5,"))
    shutil.copytree(samples_dir / "r_pd_iso_mme1p5", one / "r_pd_iso_mme1p5")
    (one / "truth.csv").write_text(lines[0] + "\n" + row + "\n")
    # a gate that no measurement can meet fails with exit code 1
    res = runner.invoke(
        app,
        ["validate", str(one), "-o", str(tmp_path / "g"), "-q", "--workers", "1",
         "--no-profile", "--max-mae", "0", "--min-measured", "1.0"],
    )
    assert res.exit_code == 1, res.output
    assert "gate failed" in res.output
    # one ok row and no review row or profile slice: nothing shows that confidence
    # means something, so the honesty gate fails rather than passing vacuously
    res = runner.invoke(
        app,
        ["validate", str(one), "-o", str(tmp_path / "h"), "-q", "--workers", "1",
         "--no-profile", "--require-honest-confidence"],
    )
    assert res.exit_code == 1, res.output
    assert "no review ones to compare" in res.output
