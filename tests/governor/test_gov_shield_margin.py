"""The shield's thermal margin as a setting: ``governor.shield_margin_c`` reaches every policy the
daemon builds, is reported by GET /v1/governor, and moves where the die is held."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from lotus.core.errors import ConfigError
from lotus.envs.scenario import Scenario
from lotus.governor.registry import build_policy
from lotus.governor.report import summarize
from lotus.governor.rollout import rollout
from lotus.governor.shield import MARGIN_C, Shield
from lotus.runtime.config import GovernorConfig, load_settings
from lotus.runtime.governor_loop import GovernorController

TRIP_C = 99.0


class _Board:
    def set_clocks(self, cpu: int | None = None, gpu: int | None = None) -> None:
        pass

    def firmware_throttled(self) -> bool | None:
        return None


def test_a_wider_margin_holds_the_die_further_under_the_trip(actions) -> None:  # noqa: ANN001
    """Top clocks in a hot box (the shield's caps do the work): the die peaks about one margin under the trip."""
    scenario = Scenario(ambient_c=30.0, r_scale=1.3, init_temp_c=90.0)
    peaks = {}
    for margin in (1.0, 5.0):
        policy = build_policy("performance+shield", actions, margin_c=margin)
        assert isinstance(policy, Shield) and policy.margin_c == margin
        s = summarize(rollout(policy, scenario, 300.0, seed=0))
        peaks[margin] = max(s["max_cpu_temp_c"], s["max_gpu_temp_c"])
        assert s["throttled_pct"] == 0.0
    assert peaks[5.0] < TRIP_C - 3.0 < peaks[1.0] < TRIP_C
    assert build_policy("performance+shield", actions).margin_c == MARGIN_C  # type: ignore[attr-defined]


def test_the_margin_reaches_every_policy_the_controller_builds(actions) -> None:  # noqa: ANN001
    gov = GovernorController(_Board(), actions, "drl", "shadow", margin_c=1.5)  # type: ignore[arg-type]
    assert gov.policy.margin_c == 1.5 and gov.status()["shield_margin_c"] == 1.5  # type: ignore[attr-defined]
    gov.set_policy("stock+shield")  # a run-time switch keeps the configured margin
    assert gov.status()["shield_margin_c"] == 1.5
    gov.set_policy("performance")  # no shield, no margin
    assert gov.status()["shield_margin_c"] is None


def test_the_setting_is_validated_with_a_clear_error(actions) -> None:  # noqa: ANN001
    assert GovernorConfig().shield_margin_c == MARGIN_C  # the daemon's default is the shield's
    for bad in (0.1, 25.0, "wide"):
        with pytest.raises(ConfigError, match="shield_margin_c"):
            load_settings(None, {"governor": {"shield_margin_c": bad}})
    with pytest.raises(ValueError, match="margin_c"):
        build_policy("stock+shield", actions, margin_c=-1.0)


def test_get_governor_reports_the_configured_margin(tmp_path: Path) -> None:
    from lotus.runtime.api import create_app
    from lotus.runtime.testing import ServerThread

    settings = load_settings(
        None,
        {
            "board": {"backend": "sim", "state_file": str(tmp_path / "state.json")},
            "models": {"threads": 1, "warmup_frames": 1},
            "governor": {"policy": "drl", "shield_margin_c": 3.0},
        },
    )
    with ServerThread(create_app(settings)) as url:
        status = httpx.get(url + "/v1/governor").json()
    assert status["shield_margin_c"] == 3.0 and status["deciding"] == "drl"


def test_a_policy_spec_sets_the_margin_from_the_command_line(actions) -> None:  # noqa: ANN001
    """``NAME+shield@M``: the ablation's policies by name, through evaluate, the suite and Ray alike."""
    from lotus.core.errors import PolicyError
    from lotus.governor.evaluate import evaluate, policy_style
    from lotus.governor.registry import split_margin

    assert split_margin("ztt+shield@1.5") == ("ztt+shield", 1.5) and split_margin("drl") == ("drl", None)
    assert build_policy("ztt+shield@1.5", actions).margin_c == 1.5  # type: ignore[attr-defined]
    assert build_policy("drl+shield@0.5", actions, margin_c=3.0).margin_c == 0.5  # type: ignore[attr-defined]
    for bad, why in (("ztt@1", "after \\+shield"), ("ztt+shield@hot", "number"), ("ztt+shield@-1", "number")):
        with pytest.raises(PolicyError, match=why):
            build_policy(bad, actions)
    assert policy_style("ztt+shield@1") == policy_style("ztt+shield")
    hot = Scenario(ambient_c=30.0, r_scale=1.3, init_temp_c=90.0)
    records = evaluate(hot, ["performance+shield@1", "performance+shield@5"], [0], 300.0).records
    assert [r["policy"] for r in records] == ["performance+shield@1", "performance+shield@5"]
    assert records[1]["max_temp_c"] < TRIP_C - 3.0 < records[0]["max_temp_c"] < TRIP_C


def test_an_auto_margin_is_measured_on_the_board(actions) -> None:  # noqa: ANN001
    """``@auto``: 2 C until enough near-trip predictions were checked, then what their errors call for."""
    import numpy as np

    from lotus.core.schema import HEADROOM_SCALE_C, IDX, N_FEATURES
    from lotus.governor.lookahead import LookaheadMonitor
    from lotus.governor.registry import split_margin
    from lotus.governor.shield import AUTO_CEILING_C, AUTO_FLOOR_C, AUTO_MIN_CHECKS, measured_margin_c

    assert split_margin("mpc+shield@auto") == ("mpc+shield", "auto")
    shield = build_policy("performance+shield@auto", actions)
    assert isinstance(shield, Shield) and shield.auto_margin is not None and shield.margin_c == MARGIN_C

    def obs(headroom_c: float) -> np.ndarray:
        row = np.zeros((1, N_FEATURES), dtype=np.float32)
        row[0, IDX["cpu_headroom"]] = row[0, IDX["gpu_headroom"]] = headroom_c / HEADROOM_SCALE_C
        return row

    # a sensor that reads 3 C hotter every other second than the steady straight line predicted:
    # the look-ahead is 3 C optimistic on half its checks, and the margin widens past the default
    for k in range(6000):
        t = k / 60
        shield.act(obs(3.5 - (3.0 if int(t) % 2 else 0.0)), 1 / 60)
    assert shield.auto_margin.checked >= AUTO_MIN_CHECKS
    assert shield.margin_c == pytest.approx(3.25, abs=0.06)  # the 99.9 % quantile (3 C) + 0.25 C
    assert all(rule.margin_c == shield.margin_c + 0.5 for rule in shield._admissions)  # admission follows
    shield.reset(1)  # a new run measures again
    assert shield.margin_c == MARGIN_C and shield.auto_margin.checked == 0
    with pytest.raises(ValueError, match="one board"):
        shield.act(np.repeat(obs(3.0), 2, axis=0), 1 / 60)
    # the rule alone: the default before enough checks, then floor and ceiling
    assert measured_margin_c(LookaheadMonitor()) == MARGIN_C
    exact = LookaheadMonitor()
    for k in range(3000):
        exact.observe(k / 60, obs(1.0)[0])  # steady: every prediction exact
    assert exact.checked >= AUTO_MIN_CHECKS and measured_margin_c(exact) == AUTO_FLOOR_C
    wild = LookaheadMonitor()
    for k in range(3000):
        wild.observe(k / 60, obs(3.9 if (k // 90) % 2 else -20.0)[0])  # 24 C jumps
    assert measured_margin_c(wild) == AUTO_CEILING_C
    with pytest.raises(ValueError, match="margin_c"):
        Shield(None, actions, build_policy("stock", actions), margin_c="wide")


def test_the_daemon_takes_an_auto_margin_from_its_config(tmp_path: Path) -> None:
    from lotus.runtime.api import create_app
    from lotus.runtime.testing import ServerThread

    settings = load_settings(
        None,
        {
            "board": {"backend": "sim", "state_file": str(tmp_path / "state.json")},
            "models": {"threads": 1, "warmup_frames": 1},
            "governor": {"policy": "drl", "shield_margin_c": "auto"},
        },
    )
    with ServerThread(create_app(settings)) as url:
        status = httpx.get(url + "/v1/governor").json()
    assert status["shield_margin_auto"] is True and status["shield_margin_c"] == MARGIN_C  # nothing measured yet
    assert status["deciding"] == "drl"
