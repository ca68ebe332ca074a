"""Fixtures for the board-backend tests: fake sysfs trees written by runtime.hw.fake_sysfs."""

from __future__ import annotations

from pathlib import Path

import pytest

from lotus.runtime.hw.fake_sysfs import write_fake_sysfs


@pytest.fixture
def jp5(tmp_path: Path) -> Path:
    return write_fake_sysfs(tmp_path / "jp5", "jetpack5")


@pytest.fixture
def jp6(tmp_path: Path) -> Path:
    return write_fake_sysfs(tmp_path / "jp6", "jetpack6")


@pytest.fixture(params=["jetpack5", "jetpack6"])
def jetson_root(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return write_fake_sysfs(tmp_path / request.param, request.param)


@pytest.fixture
def x86(tmp_path: Path) -> Path:
    return write_fake_sysfs(tmp_path / "x86", "x86")
