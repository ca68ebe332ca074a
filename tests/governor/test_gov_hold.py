"""drl's two-timescale decision: one choice per held second, in training and in deployment alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lotus.envs.scenario import Scenario
from lotus.envs.vector import BatchedDetectorEnv
from lotus.governor.features import DRL_HOLD_S, FEATURE_SPECS, clock_grid
from lotus.governor.onnx_policy import OnnxPolicy
from lotus.governor.train import TrainConfig, train

pytest.importorskip("stable_baselines3")


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("held")
    train(TrainConfig(policy="drl", steps=256, n_envs=4, episode_frames=60), out, progress=False)
    return out / "drl.json"


def test_the_grid_spans_each_table_cheapest_first() -> None:
    from lotus.envs.core import Resolved

    actions = Resolved.from_scenario(Scenario()).actions  # Orin Nano 15W: 20 x 5 clocks
    grid = clock_grid(actions)
    assert len(grid) == 25 and grid[0] == 0 and grid[-1] == actions.n - 1
    cpu, gpu = actions.split(np.asarray(grid))
    assert sorted(set(cpu.tolist())) == [0, 5, 10, 14, 19] and sorted(set(gpu.tolist())) == [0, 1, 2, 3, 4]
    seven = Resolved.from_scenario(Scenario(power_mode="7W")).actions  # 12 x 2: duplicates dropped
    assert len(clock_grid(seven)) == len(set(clock_grid(seven))) == 10


def test_one_env_step_is_a_held_second_of_every_board() -> None:
    from lotus.governor.vec_env import DetectorVecEnv

    spec = FEATURE_SPECS["drl"]
    venv = DetectorVecEnv(BatchedDetectorEnv(4, Scenario(reward="objective", episode_frames=10_000)), spec)
    venv.seed(0)
    venv.reset()
    for k in range(3):
        _, reward, dones, _ = venv.step(np.array([14, 19, 22, 24]))
        t = venv.benv.core.t
        # every board ran at least the held second, the fast ones only until the slowest got there
        assert np.all(t >= (k + 1) * DRL_HOLD_S - 1e-9) and np.all(t < (k + 1) * DRL_HOLD_S + 0.3)
        assert not dones.any() and np.all(reward < 0)  # summed over ~60 stage decisions
    grid = np.asarray(clock_grid(venv.benv.actions))
    req_c, req_g = venv.benv.actions.split(grid[[14, 19, 22, 24]])
    assert np.array_equal(venv.benv.core.req_c, req_c) and np.array_equal(venv.benv.core.req_g, req_g)


def test_deployed_policy_asks_its_network_once_per_held_second(held: Path) -> None:
    policy = OnnxPolicy.load(held)
    assert policy.hold_s == DRL_HOLD_S
    asked: list[int] = []
    choose = policy._choose
    policy._choose = lambda obs: (asked.append(len(obs)), choose(obs))[1]  # type: ignore[method-assign]
    rng = np.random.default_rng(0)
    first = None
    for k in range(35):  # 35 decisions 1/30 s apart: asked at 0, ~1 s and ~2 s (before the hold ends)
        obs = rng.uniform(0.0, 1.0, size=(1, 17)).astype(np.float32)
        a = int(policy.act(obs, dt_s=1 / 30)[0])
        if k < 30:
            first = a if first is None else first
            assert a == first  # held: a fresh observation does not change it within the second
    assert len(asked) == 2
    policy.reset(1)
    policy.act(np.zeros((1, 17), dtype=np.float32))
    assert len(asked) == 3  # a reset asks again at once


def test_one_board_scalar_path_decides_as_the_vector_path(held: Path) -> None:
    """The daemon's path (one board, a float dt) and the batched path (an array dt) hold and renew
    the same choices on the same observations, at uneven steps and across held-second boundaries."""
    benv = BatchedDetectorEnv(1, Scenario(ambient_c=35.0, init_temp_c=90.0))
    obs = benv.reset(seed=3)
    rng = np.random.default_rng(3)
    scalar, vector = OnnxPolicy.load(held), OnnxPolicy.load(held)
    scalar.reset(1), vector.reset(1)
    renewals = 0
    for _ in range(400):
        dt = float(rng.uniform(0.0, 0.05))
        a = scalar.act(obs, dt)
        b = vector.act(obs, np.array([dt]))
        assert np.array_equal(a, b) and np.array_equal(scalar._since, vector._since)
        renewals += int(scalar._since[0] == 0.0)
        obs, *_ = benv.step(rng.integers(0, benv.actions.n, size=1))
    assert renewals >= 5  # ~10 s of steps: the held second was renewed several times
