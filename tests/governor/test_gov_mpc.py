"""The model-based controller: valid actions, an online latency correction, a thermal limit."""

from __future__ import annotations

import numpy as np

from lotus.core.schema import IDX, N_FEATURES
from lotus.envs.core import Resolved
from lotus.envs.scenario import Scenario
from lotus.governor.metrics import recording_metrics
from lotus.governor.mpc import MpcPolicy
from lotus.governor.protocol import Policy
from lotus.governor.rollout import rollout


def _policy(**kw: object) -> tuple[MpcPolicy, Resolved]:
    res = Resolved.from_scenario(Scenario())
    return MpcPolicy(res.actions, deadline_ms=res.deadline_ms, fps=30.0, **kw), res  # type: ignore[arg-type]


def _obs(stage2: bool, last_stage1_frac: float = 0.3, headroom: float = 1.5) -> np.ndarray:
    o = np.zeros((1, N_FEATURES), dtype=np.float32)
    o[0, IDX["stage2_next"]] = float(stage2)
    o[0, IDX["cpu_freq_frac"]] = o[0, IDX["gpu_freq_frac"]] = 1.0
    o[0, IDX["cpu_headroom"]] = o[0, IDX["gpu_headroom"]] = headroom
    o[0, IDX["proposals"]] = 0.2
    o[0, IDX["budget_left"]] = 0.7
    o[0, IDX["last_stage1"]] = last_stage1_frac
    o[0, IDX["power"]] = 0.5
    return o


def test_is_a_policy_with_valid_actions() -> None:
    pol, res = _policy()
    assert isinstance(pol, Policy)
    for stage2 in (False, True):
        a = pol.act(_obs(stage2))
        assert a.dtype == np.int64 and 0 <= int(a[0]) < res.actions.n


def test_measured_stage1_slower_than_the_model_raises_the_correction_and_the_clocks() -> None:
    pol, res = _policy()
    wl = pol.workload.stage1
    model_ms = wl.cpu_mcycles / (res.actions.cpu_khz[-1] / 1e6) + wl.gpu_mcycles / (res.actions.gpu_hz[-1] / 1e9)
    model_ms += wl.mem_ms
    before = int(pol.act(_obs(False))[0])
    for _ in range(30):  # every stage 1 measured at 1.5x the model's time at the same clocks
        pol.act(_obs(True, last_stage1_frac=1.5 * model_ms / pol.deadline_ms))
    assert 1.4 < pol.k[0] < 1.6
    after = int(pol.act(_obs(False))[0])
    assert pol.actions.clocks(after) >= pol.actions.clocks(before)


def test_a_die_held_near_the_trip_relaxes_the_target_and_the_clocks() -> None:
    pol, _ = _policy(goal="energy")
    assert pol.name == "mpc-energy"
    cool = int(pol.act(_obs(False, headroom=1.5))[0])
    pol.reset(1)
    for _ in range(600):  # 10 s of decisions 1.5 C below the trip point
        hot = int(pol.act(_obs(False, headroom=0.05), dt_s=1 / 60)[0])
    assert pol.stretch[0] > 1.1
    p_cool, p_hot = (pol.dyn_c[cool] + pol.dyn_g[cool]), (pol.dyn_c[hot] + pol.dyn_g[hot])
    assert p_hot < p_cool


def test_latency_goal_runs_top_clocks_when_cool_and_shrinks_its_power_budget_when_hot() -> None:
    pol, res = _policy()
    assert pol.name == "mpc" and pol.goal == "latency"
    assert int(pol.act(_obs(False, headroom=1.5))[0]) == res.actions.n - 1  # energy is free: top clocks
    chosen = []
    for _ in range(1200):  # 20 s of decisions 0.9 C below the trip: 2.1 C over the 3 C margin
        chosen.append(int(pol.act(_obs(False, headroom=0.03), dt_s=1 / 60)[0]))
    power = pol.dyn_c[chosen] + pol.dyn_g[chosen]
    assert pol.budget_i[0] < 0.95  # the integral came down: 20 s x 0.002/(C s) x 2.1 C = 0.084
    assert power[-1] < power[0] <= pol.dyn_c[-1] + pol.dyn_g[-1]


def test_unknown_goal_is_an_error() -> None:
    import pytest

    with pytest.raises(ValueError, match="goal"):
        _policy(goal="speed")


def test_short_hot_rollout_holds_the_trip() -> None:
    for goal in ("latency", "energy"):
        pol, _ = _policy(goal=goal)
        sc = Scenario(ambient_c=35.0, trace="bursty", init_temp_c=90.0)
        rec = rollout(pol, sc, 90.0, seed=1)
        m = recording_metrics(rec, 90.0, 30.0)
        assert not m["shutdown"] and m["throttled_pct"] == 0.0 and m["on_time_pct"] > 20.0, goal
