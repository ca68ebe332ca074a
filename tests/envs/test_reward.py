"""The ``objective-projected`` reward (an ablation): its heat term on where the power takes the die."""

from __future__ import annotations

import numpy as np
import pytest

from lotus.envs import TwoStageDetectorEnv
from lotus.envs.ops import SCALAR
from lotus.envs.reward import PROJECTION_S, objective_reward, projected_objective_reward, projected_temp_c
from lotus.envs.thermal import advance
from lotus.envs.vector import BatchedDetectorEnv


def _hot_env(init_c: float) -> TwoStageDetectorEnv:
    return TwoStageDetectorEnv(fps=30.0, ambient_c=35.0, trace="video", r_scale=1.3, init_temp_c=init_c,
                               reward="objective-projected", episode_frames=200)  # fmt: skip


def test_projection_adds_the_heatsinks_rise_still_to_come() -> None:
    """Within 0.5 C of the exact RC network run for PROJECTION_S at the step's average power, and
    above the present die while the power exceeds what the heatsink sheds."""
    env = _hot_env(88.0)
    env.reset(seed=0)
    for _ in range(60):
        _, _, _, _, info = env.step(env.res.actions.n - 1)
    core = env.core
    step = {"power_w": info["power_w"], "max_temp_c": max(info["cpu_temp_c"], info["gpu_temp_c"])}
    got = projected_temp_c(step, core, PROJECTION_S, SCALAR)
    p = info["power_w"]  # the heatsink's steady rise depends on the total power only, not on its split
    _, _, sink = advance(core.coef, core.th_c, core.th_g, core.th_s, 0.25 * p, 0.5 * p, 0.25 * p, PROJECTION_S, np.exp)
    assert got > step["max_temp_c"] + 0.5  # top clocks in a sealed 35 C box: still heating
    assert got - step["max_temp_c"] == pytest.approx(sink - core.th_s, abs=0.5)


def test_projected_heat_prices_power_within_one_step() -> None:
    """From the same hot state, top clocks are charged more than the bottom ones (same die
    temperature), so the choice is answered in the step it is made."""
    charges = {}
    for name, action in (("top", -1), ("bottom", 0)):
        env = _hot_env(95.0)
        env.reset(seed=1)
        _, _, _, _, info = env.step(action % env.res.actions.n)
        step = {**info, "max_temp_c": 95.5, "throttled": False, "frame_done": False, "dropped": 0,
                "shutdown": False, "lat_ema_prev_ms": 0.0}  # fmt: skip
        charges[name] = objective_reward(step, env.core.trip, 40.0, SCALAR) - projected_objective_reward(
            step, env.core, 40.0, SCALAR
        )
    assert charges["top"] > charges["bottom"] >= 0.0


def test_projection_is_silent_in_a_cool_room_and_batched_equals_single() -> None:
    cool = TwoStageDetectorEnv(fps=30.0, ambient_c=25.0, trace="video", reward="objective-projected",
                               episode_frames=100)  # fmt: skip
    cool.reset(seed=0)
    _, _, _, _, info = cool.step(cool.res.actions.n - 1)
    step = {"power_w": info["power_w"], "max_temp_c": max(info["cpu_temp_c"], info["gpu_temp_c"])}
    assert projected_temp_c(step, cool.core, PROJECTION_S, SCALAR) < cool.core.trip - 10.0
    single = _hot_env(95.0)
    batched = BatchedDetectorEnv(1, single.scenario)
    single.reset(seed=3)
    batched.reset(seed=3)
    for k in range(30):
        a = (k * 37) % single.res.actions.n
        r_single = single.step(a)[1]
        r_batched = batched.step(np.array([a]))[1][0]
        assert r_batched == pytest.approx(r_single, rel=1e-9, abs=1e-9)


def test_rewards_match_a_hand_computed_decision() -> None:
    """One throttled, late frame 1.5 C into the heat band, with one drop (the formulas of the docstring)."""
    from lotus.envs.reward import stable_reward

    step = {"max_temp_c": 97.5, "throttled": True, "latency_ms": 45.0, "frame_energy_j": 0.3, "frame_done": True,
            "shutdown": False, "lat_ema_prev_ms": 30.0, "dropped": 1}  # fmt: skip
    # stable: heat 3 x 4.5/6, throttle 2; frame 4 x 9/40 + 0.2 x 45/40 + 1 + 0.1 x 0.3/(15 x 0.04)
    assert stable_reward(step, 99.0, 40.0, 15.0, SCALAR) == pytest.approx(-(2.25 + 2.0 + 0.9 + 0.225 + 1.0 + 0.05))
    # objective: heat 3 x 1.5/3, throttle 2; frame (45 + 0.1 x 15^2)/40 + 1; one drop
    assert objective_reward(step, 99.0, 40.0, SCALAR) == pytest.approx(-(1.5 + 2.0 + 67.5 / 40 + 1.0 + 1.0))
    cool = {**step, "max_temp_c": 80.0, "throttled": False, "frame_done": False, "dropped": 0}
    assert objective_reward(cool, 99.0, 40.0, SCALAR) == 0.0 and stable_reward(cool, 99.0, 40.0, 15.0, SCALAR) == 0.0
