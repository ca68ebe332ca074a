"""The ``objective-run`` reward: the spread around the episode's own mean, as the metric has it."""

from __future__ import annotations

import numpy as np
import pytest

from lotus.envs import TwoStageDetectorEnv
from lotus.envs.reward import OBJECTIVE_ALPHA_PER_MS
from lotus.envs.vector import BatchedDetectorEnv

ROOM = {"power_mode": "7W", "fps": 15.0, "deadline_ms": 80.0, "ambient_c": 25.0, "trace": "video",
        "episode_frames": 400}  # fmt: skip


def _episode(env: TwoStageDetectorEnv, actions: list[int]) -> tuple[float, list[float], int]:
    """Return, finished-frame latencies and drops of one episode on a repeating action pattern."""
    env.reset(seed=2)
    total, lat, drops, i = 0.0, [], 0, 0
    while True:
        _, reward, terminated, truncated, info = env.step(actions[i % len(actions)])
        i += 1
        total += reward
        drops += int(info.get("dropped", 0))
        if info["frame_done"]:
            lat.append(float(info["latency_ms"]))
        if terminated or truncated:
            return total, lat, drops


def test_return_is_frames_times_the_metric_in_a_cool_room() -> None:
    """No heat, no throttling: the undiscounted return is -(sum l + alpha n var + D misses + D drops) / D."""
    env = TwoStageDetectorEnv(reward="objective-run", **ROOM)
    n_top = env.res.actions.n - 1
    total, lat, drops = _episode(env, [n_top, n_top, 0, 0, 5, 5])  # clocks that change: latency varies
    x = np.asarray(lat)
    assert x.std() > 3.0  # a real spread, not a flat trace
    expected = -(x.sum() + OBJECTIVE_ALPHA_PER_MS * len(x) * x.var() + 80.0 * (x > 80.0).sum() + 80.0 * drops) / 80.0
    assert total == pytest.approx(expected, rel=1e-9)


def test_it_prices_the_slow_variance_that_the_ema_reward_misses() -> None:
    """On a clock pattern that alternates slow and fast stretches of forty frames, the EMA reward
    charges less spread than the run reward does (the EMA follows each stretch)."""
    slow = [0, 0] * 40 + [11, 11] * 40  # forty frames low, forty at the top, repeated
    got = {}
    for kind in ("objective", "objective-run"):
        env = TwoStageDetectorEnv(reward=kind, **ROOM)
        got[kind], _, _ = _episode(env, slow)
    assert got["objective-run"] < got["objective"] - 1.0


def test_batched_equals_single() -> None:
    single = TwoStageDetectorEnv(reward="objective-run", **ROOM)
    single.reset(seed=5)
    batch = BatchedDetectorEnv(2, {**ROOM, "reward": "objective-run"})
    batch.reset(seed=[5, 5])
    rng = np.random.default_rng(0)
    for _ in range(300):
        a = int(rng.integers(0, single.res.actions.n))
        _, r1, *_ = single.step(a)
        _, r2, *_ = batch.step(np.array([a, a]))
        assert r2[0] == pytest.approx(r1, abs=1e-12) and r2[1] == pytest.approx(r1, abs=1e-12)
