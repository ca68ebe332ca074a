"""A model served at a latency target the policy was not trained on is named: a log warning and
``deadline_mismatch_ms`` in GET /v1/governor (the 7 W policy is trained at 80 ms, the default is 40)."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from lotus.envs.core import Resolved
from lotus.envs.scenario import Scenario
from lotus.governor.artifacts import load_artifact
from lotus.runtime.config import load_settings
from lotus.runtime.governor_loop import GovernorController


class _Board:
    def set_clocks(self, cpu: int | None = None, gpu: int | None = None) -> None:
        pass

    def firmware_throttled(self) -> bool | None:
        return None


def _actions(mode: str):  # noqa: ANN202
    return Resolved.from_scenario(Scenario(board="orin-nano", power_mode=mode)).actions


def test_shipped_policies_know_the_targets_they_were_trained_on() -> None:
    assert load_artifact("drl", _actions("7W")).trained_deadline_ms == (80.0, 80.0)
    assert load_artifact("drl", _actions("15W")).trained_deadline_ms == (40.0, 40.0)  # the workload's default


def test_a_target_outside_the_trained_range_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    gov = GovernorController(_Board(), _actions("7W"), "drl", "shadow")  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="lotus.runtime.governor_loop"):
        gov.set_served_deadlines({"fast": 40.0, "trained": 80.0, "near": 95.0})
    assert gov.deadline_mismatch() == {"fast": 40.0}  # 95 ms is within the 25 % tolerance
    assert any("fast" in r.message and "slo_ms" in r.message for r in caplog.records)
    status = gov.status()
    assert status["trained_deadline_ms"] == [80.0, 80.0] and status["deadline_mismatch_ms"] == {"fast": 40.0}
    gov.set_policy("performance")  # not trained on a deadline: nothing to warn about
    assert gov.deadline_mismatch() == {} and gov.status()["trained_deadline_ms"] is None


def test_the_daemon_reports_a_mismatch_on_a_7w_board(tmp_path: Path) -> None:
    from lotus.runtime.api import create_app
    from lotus.runtime.testing import ServerThread, write_quadrant_model

    repo = write_quadrant_model(tmp_path / "repo")
    settings = load_settings(
        None,
        {
            "board": {"backend": "sim", "sim_power_mode": "7W", "state_file": str(tmp_path / "state.json")},
            "models": {"repository": str(repo), "load": [{"name": "quadrants", "slo_ms": 40}], "threads": 1,
                       "warmup_frames": 1},
            "governor": {"policy": "drl"},
        },
    )  # fmt: skip
    with ServerThread(create_app(settings)) as url:
        gov = httpx.get(url + "/v1/governor").json()
    assert gov["version"].startswith("drl.orin-nano-7W@") and gov["trained_deadline_ms"] == [80.0, 80.0]
    assert gov["deadline_mismatch_ms"] == {"quadrants": 40.0}
