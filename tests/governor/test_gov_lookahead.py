"""The shield's look-ahead (one implementation) and the monitor that measures how far it errs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lotus.core.schema import HEADROOM_SCALE_C, IDX, N_FEATURES
from lotus.governor.context import PolicyContext
from lotus.governor.lookahead import LookaheadMonitor, predicted_headroom_c
from lotus.governor.registry import build_policy
from lotus.governor.rollout import rollout
from lotus.governor.shield import Shield
from lotus.governor.suite import suite


def _obs(headroom_c: float, slope: float) -> np.ndarray:
    row = np.zeros(N_FEATURES, dtype=np.float32)
    row[IDX["cpu_headroom"]] = headroom_c / HEADROOM_SCALE_C
    row[IDX["gpu_headroom"]] = (headroom_c + 3.0) / HEADROOM_SCALE_C  # the CPU is the hotter die
    row[IDX["temp_slope"]] = slope
    return row


def test_the_shield_predicts_with_the_shared_function(actions) -> None:  # noqa: ANN001
    shield = Shield(build_policy("performance", actions), actions, build_policy("stock", actions))
    for head, slope in ((5.0, 0.4), (1.0, -0.2), (12.0, 0.0), (0.5, 2.0)):
        obs = _obs(head, slope)[None, :]
        want = predicted_headroom_c(float(obs[0, IDX["cpu_headroom"]]), float(obs[0, IDX["gpu_headroom"]]),
                                    float(obs[0, IDX["temp_slope"]]), shield.horizon_s)  # fmt: skip
        assert shield._predict_one(obs) == want
        assert shield._predict_many(obs)[0] == pytest.approx(want, abs=1e-9)
    # the numbers themselves: 5 C of headroom rising 0.4 C/s leaves 4.4 C after 1.5 s; the GPU, 3 C
    # cooler, does not count while the CPU is the hotter die
    assert shield._predict_one(_obs(5.0, 0.4)[None, :]) == pytest.approx(4.4, abs=1e-5)
    assert shield._predict_one(_obs(1.0, -0.2)[None, :]) == pytest.approx(1.0, abs=1e-5)
    # a falling die does not lend headroom; NaN stays NaN (the shield's fallback handles it)
    assert predicted_headroom_c(0.1, 0.2, -1.0, 1.5) == pytest.approx(3.0)
    assert math.isnan(predicted_headroom_c(float("nan"), 0.2, 0.1, 1.5))


def test_a_steady_ramp_is_predicted_exactly_and_a_jump_is_caught() -> None:
    mon = LookaheadMonitor(horizon_s=1.5, near_c=4.0)
    dt, slope = 1 / 60, 0.5  # the die rises 0.5 C/s: the straight line is exact
    for k in range(600):
        t = k * dt
        mon.observe(t, _obs(6.0 - slope * t, slope))
    s = mon.summary()
    # predictions within 4 C of the trip start once the prediction 6 - 0.5 t - 0.75 < 4 (t > 2.5 s)
    # each check reads the first decision at or after t + 1.5 s, up to one decision (dt) late
    assert s["checked"] > 300 and abs(s["max_c"]) <= slope * dt + 1e-3
    assert s["p50_c"] in (0.0, 0.05)  # the upper edge of a bin next to 0 (float32 features round either way)
    # a sensor jump of 1.2 C the prediction did not see: optimism of 1.2 C at the check
    jump = LookaheadMonitor()
    for k in range(200):
        t = k * dt
        jump.observe(t, _obs(3.0 if t < 2.0 else 1.8, 0.0))
    assert jump.summary()["max_c"] == pytest.approx(1.2, abs=1e-6)
    assert jump.quantile_c(0.999) == pytest.approx(1.25, abs=1e-9)


def test_far_from_the_trip_nothing_is_checked_and_memory_is_bounded() -> None:
    mon = LookaheadMonitor()
    for k in range(10_000):
        mon.observe(k * 1e-4, _obs(20.0, 0.0))  # 1 s of decisions far from the trip
    empty = {"horizon_s": 1.5, "near_trip_c": 4.0, "checked": 0, "stale": 0}
    assert mon.summary() == {**empty, "p50_c": None, "p99_c": None, "p999_c": None, "max_c": None}
    mon.observe(2.0, _obs(float("nan"), 0.0))  # a failed sensor read is neither checked nor kept
    assert mon.checked == 0 and not mon._pending
    stalled = LookaheadMonitor()
    for _ in range(20_000):
        stalled.observe(0.0, _obs(1.0, 0.0))  # a clock that never advances
    assert len(stalled._pending) <= 4096


def test_in_the_simulated_box_the_sensed_error_stays_under_the_margin() -> None:
    """The monitor as the daemon runs it, on a shielded rollout in the suite's hottest room."""
    scenario = {s.name: s for s in suite("standard")[0]}["nano15-35c-enclosure"].scenario
    from lotus.envs.core import Resolved

    res = Resolved.from_scenario(scenario)
    policy = build_policy("mpc+shield", res.actions, context=PolicyContext(deadline_ms=40.0, fps=30.0))
    mon, clock, act = LookaheadMonitor(), [0.0], policy.act

    def watched(obs: np.ndarray, dt_s: float | None = None) -> np.ndarray:
        clock[0] += float(dt_s or 0.0)
        mon.observe(clock[0], np.atleast_2d(obs)[0])
        return act(obs, dt_s)

    policy.act = watched  # type: ignore[method-assign]
    rollout(policy, scenario.model_copy(update={"init_temp_c": 96.0}), 120.0, seed=0)
    s = mon.summary()
    assert s["checked"] > 100  # the box starts near the trip (frames it skips take no decisions)
    assert 0.0 < s["max_c"] < 2.0 and s["p999_c"] <= s["max_c"] + 0.05
