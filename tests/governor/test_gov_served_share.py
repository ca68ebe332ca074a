"""drl's admission action: outputs that serve a share of the camera frames, in training and deployment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lotus.core.errors import ConfigError
from lotus.core.schema import IDX
from lotus.envs.core import Resolved
from lotus.envs.scenario import Scenario
from lotus.envs.vector import BatchedDetectorEnv
from lotus.governor.admission import ServedShare
from lotus.governor.baselines import StockPolicy
from lotus.governor.features import FEATURE_SPECS, clock_grid, power_ladder
from lotus.governor.shield import Shield

SHARES = (1.0, 2 / 3, 0.5)


def _pattern(share: float, frames: int) -> list[bool]:
    served = ServedShare(1)
    return [served.admit(share) for _ in range(frames)]


@pytest.mark.parametrize("share, served", [(1.0, 30), (5 / 6, 25), (2 / 3, 20), (0.5, 15)])
def test_a_share_serves_that_many_frames_evenly(share: float, served: int) -> None:
    pattern = _pattern(share, 30)
    assert sum(pattern) == served
    assert not any(not a and not b for a, b in zip(pattern, pattern[1:]))  # never two skips in a row


def test_the_batch_form_keeps_step_with_one_asked_every_frame() -> None:
    # training asks once and runs the frame after a skip without asking; deployment asks every frame
    batch, asked = ServedShare(3), []
    shares = np.array([1.0, 2 / 3, 0.5])
    for _ in range(30):
        skip = batch.skip(np.ones(3, dtype=bool), shares)
        for i in range(3):
            asked.append((i, not skip[i]))
            if skip[i]:
                asked.append((i, True))  # the next frame runs without a second question
    for i, share in enumerate(shares):
        mine = [served for j, served in asked if j == i][:40]
        assert mine == _pattern(float(share), 40)[: len(mine)]


@pytest.mark.parametrize("board, mode", [("orin-nano", "15W"), ("orin-nano", "7W"), ("orin-nx", None), ("tx2", None)])
def test_the_ladder_climbs_one_clock_at_a_time_from_bottom_to_top(board: str, mode: str | None) -> None:
    actions = Resolved.from_scenario(Scenario(board=board, power_mode=mode)).actions
    ladder = power_ladder(actions)
    cpu, gpu = actions.split(np.asarray(ladder))
    assert (cpu[0], gpu[0]) == (0, 0) and (cpu[-1], gpu[-1]) == (actions.n_cpu - 1, actions.n_gpu - 1)
    steps = np.diff(cpu) > 0, np.diff(gpu) > 0
    assert np.all(steps[0] ^ steps[1])  # exactly one clock moves up at each rung
    assert np.all(np.diff(cpu) >= 0) and np.all(np.diff(gpu) >= 0)
    assert set(ladder) <= set(clock_grid(actions))


def test_outputs_pair_each_clock_with_each_share() -> None:
    from dataclasses import replace

    spec = replace(FEATURE_SPECS["drl"], action_subset=power_ladder, served_shares=SHARES)
    actions = Resolved.from_scenario(Scenario()).actions
    amap, smap = spec.action_map(actions), spec.share_map(actions)
    k = len(power_ladder(actions))
    assert len(amap) == len(smap) == 3 * k
    assert np.array_equal(amap[:k], power_ladder(actions)) and np.array_equal(amap[k : 2 * k], amap[:k])
    assert np.allclose(smap, np.repeat(SHARES, k))


def test_a_held_share_skips_frames_in_training_and_each_skip_is_paid_as_a_drop() -> None:
    pytest.importorskip("stable_baselines3")
    from dataclasses import replace

    from lotus.governor.vec_env import DetectorVecEnv

    spec = replace(FEATURE_SPECS["drl"], action_subset=power_ladder, served_shares=(1.0, 0.5))
    scenario = Scenario(reward="objective", ambient_c=20.0, episode_frames=100_000)
    venv = DetectorVecEnv(BatchedDetectorEnv(2, scenario), spec)
    venv.seed(0)
    venv.reset()
    top = len(power_ladder(venv.benv.actions)) - 1
    totals = np.zeros(2)
    for _ in range(4):  # board 0 serves every frame, board 1 half of them, both at top clocks
        _, reward, dones, _ = venv.step(np.array([top, 2 * top + 1]))
        assert not dones.any()
        totals += reward
    core = venv.benv.core
    frames = core.t * 30.0  # camera frames so far (30 fps)
    assert core.dropped[0] <= 2
    assert abs(core.dropped[1] - frames[1] / 2) <= 2  # every other frame skipped
    assert totals[1] < totals[0] - 0.5 * core.dropped[1]  # a skip costs a full miss (1 per frame)


def test_training_options_are_checked() -> None:
    from lotus.governor.train import TrainConfig, training_spec

    with pytest.raises(ConfigError, match="0.5..1"):
        training_spec(TrainConfig(served_shares=(1.0, 0.3)))
    with pytest.raises(ConfigError, match="unknown clocks"):
        training_spec(TrainConfig(clocks="diagonal"))
    with pytest.raises(ConfigError, match="drl's options"):
        training_spec(TrainConfig(policy="ztt", served_shares=(1.0, 0.5)))
    spec = training_spec(TrainConfig(clocks="ladder", served_shares=(1.0, 0.5)))
    assert spec.served_shares == (1.0, 0.5) and spec.action_subset is power_ladder


@pytest.fixture(scope="module")
def sharing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("stable_baselines3")
    from lotus.governor.train import TrainConfig, train

    out = tmp_path_factory.mktemp("sharing")
    cfg = TrainConfig(policy="drl", steps=256, n_envs=4, episode_frames=60, clocks="ladder", served_shares=SHARES)
    train(cfg, out, progress=False)
    return out / "drl.json"


def test_the_export_records_each_outputs_share_and_the_policy_skips_by_it(sharing: Path) -> None:
    import json

    from lotus.governor.onnx_policy import OnnxPolicy

    meta = json.loads(sharing.read_text())
    assert len(meta["served_share"]) == len(meta["action_map"]) == 3 * 9
    policy = OnnxPolicy.load(sharing)
    assert policy.serves_share
    obs = np.zeros((1, 17), dtype=np.float32)
    obs[0, [IDX["cpu_headroom"], IDX["gpu_headroom"]]] = 0.5  # a cool board, 15 C under the trip
    served = [policy.admit(obs, 1 / 30) for _ in range(30)]
    policy.act(obs, 1 / 30)
    share = float(policy.share_map[policy._held_out[0]])
    assert sum(served) == round(30 * share)  # the held output's share, however the network chose
    # inside the shield both answers count: the policy's pace, and the shield's rule (idle on a cool board)
    shield = Shield(OnnxPolicy.load(sharing), policy.actions, StockPolicy(policy.actions))
    assert shield.inner_serves_share
    assert sum(shield.admit(obs, 1 / 30) for _ in range(30)) == sum(served)
    # whatever the tiny network chose: a held share of 1/2 skips every other frame, inside the shield too
    for target in (policy, shield.inner):
        target.share_map = np.full_like(target.share_map, 0.5)  # type: ignore[union-attr]
    policy.reset(1)
    assert sum(policy.admit(obs, 1 / 30) for _ in range(30)) == 15
    assert sum(shield.admit(obs, 1 / 30) for _ in range(30)) == 15
    # the policy's skips are the shield's to report (/v1/governor, /metrics), with their reason
    assert shield.diagnostics().skipped_frames == (30 - sum(served)) + 15
    assert shield.skip_reason == "policy"


def test_a_policy_that_fails_to_admit_serves_the_frame() -> None:
    class Broken:
        name, serves_share = "broken", True

        def act(self, obs: np.ndarray, dt_s: object = None) -> np.ndarray:
            return np.zeros(len(obs), dtype=np.int64)

        def admit(self, *args: object) -> bool:
            raise RuntimeError("boom")

    actions = Resolved.from_scenario(Scenario()).actions
    shield = Shield(Broken(), actions, StockPolicy(actions))
    assert shield.admit(np.zeros((1, 17), dtype=np.float32), 1 / 30)
