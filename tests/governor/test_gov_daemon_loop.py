"""The daemon's governor loop: time between decisions, diagnostics, throttling flag, write errors."""

from __future__ import annotations

import time

import numpy as np
import pytest

from lotus.core.errors import DeviceError
from lotus.core.schema import IDX, N_FEATURES
from lotus.governor.protocol import PolicyBase, PolicyDiagnostics
from lotus.runtime import governor_loop
from lotus.runtime.governor_loop import GovernorController


class FakeBoard:
    """What the controller touches: set_clocks and firmware_throttled."""

    def __init__(self, throttled: bool | None = None, fail: bool = False) -> None:
        self.throttled, self.fail, self.writes = throttled, fail, []

    def set_clocks(self, cpu: int | None = None, gpu: int | None = None) -> None:
        if self.fail:
            raise DeviceError("write refused")
        self.writes.append((cpu, gpu))

    def firmware_throttled(self) -> bool | None:
        return self.throttled


class Timed(PolicyBase):
    name = "timed"

    def __init__(self) -> None:
        self.dts: list[object] = []

    def act(self, obs: np.ndarray, dt_s: object = None) -> np.ndarray:
        self.dts.append(dt_s)
        return np.zeros(len(obs), dtype=np.int64)

    def diagnostics(self) -> PolicyDiagnostics:
        return PolicyDiagnostics(policy_name=self.name, version="v7", fallbacks=3, deadline_stretch=1.25)


def _obs() -> np.ndarray:
    obs = np.zeros((1, N_FEATURES), dtype=np.float32)
    obs[0, IDX["cpu_headroom"]] = obs[0, IDX["gpu_headroom"]] = 1.0
    return obs


@pytest.fixture
def timed(monkeypatch: pytest.MonkeyPatch) -> Timed:
    policy = Timed()
    monkeypatch.setattr(governor_loop, "build_policy", lambda spec, actions, margin_c=None: policy)
    return policy


def test_decisions_get_the_wall_time_since_the_previous_one(actions, timed: Timed) -> None:  # noqa: ANN001
    gov = GovernorController(FakeBoard(), actions, "timed", "shadow")
    gov.decide(_obs())
    time.sleep(0.02)
    gov.decide(_obs())
    assert timed.dts[0] == 0.0
    assert isinstance(timed.dts[1], float) and 0.015 < timed.dts[1] < 1.0


def test_status_and_stretch_come_from_diagnostics(actions, timed: Timed) -> None:  # noqa: ANN001
    gov = GovernorController(FakeBoard(), actions, "timed", "shadow")
    status = gov.status()
    assert (status["policy_name"], status["version"], status["fallbacks"]) == ("timed", "v7", 3)
    assert status["deadline_stretch"] == gov.deadline_stretch == 1.25
    assert status["load_error"] is None and status["interventions"] == 0


def test_the_drl_status_keys_and_types(actions) -> None:  # noqa: ANN001
    status = GovernorController(FakeBoard(), actions, "drl", "shadow").status()
    assert status["policy_name"] == "shield(drl)" and status["version"] not in ("builtin", "fallback")
    assert type(status["fallbacks"]) is int and type(status["interventions"]) is int
    assert type(status["deadline_stretch"]) is float and status["deadline_stretch"] == 1.0


@pytest.mark.parametrize("flag", [True, False])
def test_the_boards_own_throttle_flag_wins(actions, flag: bool) -> None:  # noqa: ANN001
    gov = GovernorController(FakeBoard(throttled=flag), actions, "performance", "active")
    gov.decide(_obs())
    assert gov.throttled(0.0, 0.0) is flag


def test_without_a_flag_requested_and_current_clocks_are_compared(actions) -> None:  # noqa: ANN001
    gov = GovernorController(FakeBoard(throttled=None), actions, "performance", "active")
    gov.decide(_obs())
    top_c, top_g = actions.cpu_khz[-1], actions.gpu_hz[-1]
    assert not gov.throttled(top_c, top_g)
    assert gov.throttled(actions.cpu_khz[-3], top_g)


def test_a_device_error_drops_to_shadow(actions) -> None:  # noqa: ANN001
    released: list[bool] = []
    gov = GovernorController(FakeBoard(fail=True), actions, "performance", "active", on_control=released.append)
    d = gov.decide(_obs())
    assert not d.applied and gov.mode == "shadow" and gov.write_errors == 1 and released == [False]


def test_the_daemon_checks_the_shields_look_ahead_against_its_sensors(actions) -> None:  # noqa: ANN001
    """Decisions near the trip, 1.5 s apart in wall time: each prediction is checked and reported."""
    gov = GovernorController(FakeBoard(), actions, "drl", "shadow")
    assert gov.status()["lookahead_error_c"]["checked"] == 0
    hot = _obs()
    hot[0, IDX["cpu_headroom"]] = hot[0, IDX["gpu_headroom"]] = 2.0 / 30.0  # 2 C under the trip, steady
    gov.decide(hot)
    time.sleep(1.6)
    cooler = hot.copy()
    cooler[0, IDX["cpu_headroom"]] = cooler[0, IDX["gpu_headroom"]] = 2.5 / 30.0  # 0.5 C cooler: pessimistic
    gov.decide(cooler)
    err = gov.status()["lookahead_error_c"]
    assert err["checked"] == 1 and err["max_c"] == pytest.approx(-0.5, abs=1e-5)
    assert err["horizon_s"] == 1.5 and err["p999_c"] == pytest.approx(-0.5, abs=0.051)
