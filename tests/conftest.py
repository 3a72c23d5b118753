"""Shared fixtures: paths to the bundled samples and to ../shared/realdata."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_dicoms"
REALDATA = ROOT.parent / "shared" / "realdata"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    if not (SAMPLES / "truth.csv").exists():
        pytest.fail("sample_dicoms/truth.csv is missing: regenerate with scripts/make_samples.py")
    return SAMPLES


@pytest.fixture(scope="session")
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip("../shared/realdata not present (real data lives outside the repository)")
    return REALDATA
