"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"


@pytest.fixture
def realdata() -> Path:
    """``../shared/realdata`` (licence-restricted, never copied); skip when absent."""
    if not REALDATA.is_dir():
        pytest.skip("../shared/realdata not present")
    return REALDATA
