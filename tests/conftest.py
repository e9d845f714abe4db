"""Fixtures shared by the whole suite: the recorded data beside the project, fresh databases."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# ../shared/data beside the checkout (read-only; tests read it from there, never copy it).
SHARED_DATA = Path(os.environ.get("DAILYPAPERS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
RECORDED = SHARED_DATA / "recorded"


@pytest.fixture(scope="session")
def recorded() -> Path:
    assert RECORDED.is_dir(), f"the recorded responses are missing: {RECORDED}"
    return RECORDED


@pytest.fixture(scope="session")
def shared_data() -> Path:
    assert SHARED_DATA.is_dir(), f"the shared data is missing: {SHARED_DATA}"
    return SHARED_DATA
