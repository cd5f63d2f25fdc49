"""Shared test fixtures. Tests never need the internet, an API key or a GPU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("IKMO_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared` beside the checkout (CI has it); skip with a clear reason when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent: the HumanML3D fixtures and mocap archives live there")
    return SHARED


@pytest.fixture(scope="session")
def hml3d_fixture_dir(shared_dir: Path) -> Path:
    d = shared_dir / "fixtures" / "humanml3d"
    if not d.is_dir():
        pytest.skip(f"{d} is absent")
    return d



# Real servers and a real browser for the web tests (tests/web_fixtures.py).
pytest_plugins = ["web_fixtures"]
