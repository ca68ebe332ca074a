"""Shared fixtures and helpers for the simulator tests (envs/)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from lotus.envs.board import BOARDS_DIR
from lotus.envs.workload import WORKLOADS_DIR


@pytest.fixture
def nano_yaml() -> dict:
    """The shipped Orin Nano profile as a plain dict, ready to be corrupted and re-dumped."""
    return yaml.safe_load((BOARDS_DIR / "orin-nano.yaml").read_text())


@pytest.fixture
def frcnn_yaml() -> dict:
    return yaml.safe_load((WORKLOADS_DIR / "frcnn-lite.yaml").read_text())


@pytest.fixture
def write_yaml(tmp_path: Path) -> Callable[[dict, str], Path]:
    """Dump a dict to a fresh YAML file under ``tmp_path`` (profile loaders cache by path)."""

    def _write(data: dict, name: str) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return _write


@pytest.fixture
def write_trace(tmp_path: Path) -> Callable[[str, str], Path]:
    def _write(text: str, name: str = "trace.csv") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return _write
