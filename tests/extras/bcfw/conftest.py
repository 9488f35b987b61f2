"""Fixtures for the BCFW tests: where the ICCV17 .mat files are."""

from __future__ import annotations

from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def iccv17_dir() -> Path:
    """The .mat files shipped in tests/data, else the shared data beside the repository."""
    for candidate in (
        _REPO / "tests" / "data" / "iccv17learning",
        _REPO.parent / "shared" / "data" / "iccv17learning",
    ):
        if (candidate / "bags.mat").is_file() and (candidate / "data_block.mat").is_file():
            return candidate
    pytest.skip("ICCV17 .mat files not found")


@pytest.fixture(scope="session")
def iccv17_structure(iccv17_dir):
    from extras.bcfw.iccv17 import load_iccv17

    return load_iccv17(str(iccv17_dir))
