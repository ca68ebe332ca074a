"""Training with the shield's admission rule in the loop (``DetectorVecEnv(admission=True)``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lotus.core.cli import build_app
from lotus.envs.scenario import Scenario
from lotus.envs.vector import BatchedDetectorEnv
from lotus.governor.features import FEATURE_SPECS
from lotus.governor.vec_env import DetectorVecEnv

HOT = Scenario(ambient_c=35.0, r_scale=1.3, init_temp_c=94.0, episode_frames=18000)  # the suite's enclosure, warmer


def _run(venv: DetectorVecEnv, action: int, held_steps: int) -> tuple[np.ndarray, list[np.ndarray]]:
    venv.seed(0)
    venv.reset()
    rewards, times = [], []
    for _ in range(held_steps):
        t0 = np.asarray(venv.benv.core.t, dtype=float).copy()
        venv.step_async(np.full(venv.num_envs, action))
        _, reward, dones, _ = venv.step_wait()
        assert not dones.any()
        times.append(np.asarray(venv.benv.core.t, dtype=float) - t0)
        rewards.append(reward)
    return np.array(rewards), times


def _cool_room_equals_training_without_the_rule(family: str, boards: int, steps: int) -> int:
    """Top clocks in a 25 C room with and without the rule: nothing skipped, the same rewards.
    Returns the top action's index."""
    cool = Scenario(ambient_c=25.0, episode_frames=18000)
    spec = FEATURE_SPECS[family]
    plain = DetectorVecEnv(BatchedDetectorEnv(boards, cool), spec)
    ruled = DetectorVecEnv(BatchedDetectorEnv(boards, cool), spec, admission=True)
    top = plain.action_space.n - 1
    r_plain, _ = _run(plain, top, steps)
    r_ruled, _ = _run(ruled, top, steps)
    assert ruled.skipped_frames == 0
    np.testing.assert_array_equal(r_plain, r_ruled)
    return top


def test_a_cool_room_skips_nothing_and_equals_training_without_the_rule() -> None:
    _cool_room_equals_training_without_the_rule("drl", 1, 20)


def test_a_hot_room_sheds_frames_and_each_board_holds_its_own_second() -> None:
    spec = FEATURE_SPECS["drl"]
    venv = DetectorVecEnv(BatchedDetectorEnv(4, HOT), spec, admission=True)
    top = venv.action_space.n - 1
    _, times = _run(venv, top, 120)
    core = venv.benv.core
    assert venv.skipped_frames > 100 and np.all(core.dropped > 0)
    # every board ran its own held second: at least the hold, and no more than one frame or skip past it
    held = np.array(times)
    assert held.min() >= spec.hold_s and held.max() < spec.hold_s + 0.2
    # at top clocks the rule keeps the die under the trip, which the same clocks without it pass
    bare = DetectorVecEnv(BatchedDetectorEnv(4, HOT), spec)
    _run(bare, top, 120)
    hottest = float((np.maximum(core.th_c, core.th_g) + core.amb).max())
    bare_core = bare.benv.core
    assert hottest < 99.0 < float((np.maximum(bare_core.th_c, bare_core.th_g) + bare_core.amb).max())


def test_admission_in_the_loop_rejects_what_it_does_not_support() -> None:
    benv = BatchedDetectorEnv(2, HOT)
    with pytest.raises(ValueError, match="clipping shield"):
        DetectorVecEnv(benv, FEATURE_SPECS["drl"], shield=True, admission=True)


@pytest.mark.parametrize("family", ["ztt", "lotus-dac24"])
def test_per_stage_policies_train_with_the_rule_too(family: str) -> None:
    """zTT (a decision per frame) and Lotus-DAC24 (per stage): cool rooms equal training without
    the rule; in a hot room a refused frame is one step that skips it (the reward is the drop)."""
    top = _cool_room_equals_training_without_the_rule(family, 2, 300)
    hot = DetectorVecEnv(BatchedDetectorEnv(2, HOT), FEATURE_SPECS[family], admission=True)
    rewards, _ = _run(hot, top, 4000)
    core = hot.benv.core
    assert hot.skipped_frames > 20 and np.all(core.dropped > 0)
    hottest = float((np.maximum(core.th_c, core.th_g) + core.amb).max())
    assert hottest < 99.0 and np.isfinite(rewards).all()


def test_train_cli_admission_in_loop_is_recorded(tmp_path: Path, one_thread) -> None:  # noqa: ANN001
    out = tmp_path / "g"
    args = ["train", "--policy", "drl", "--steps", "1024", "--envs", "4", "--out", str(out), "--json",
            "--admission-in-loop", "--hyperparam", "n_steps=16", "--hyperparam", "batch_size=32"]  # fmt: skip
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, (result.output, result.exception)
    meta = json.loads(result.stdout)
    assert meta["training"]["admission_in_loop"] is True and (out / "drl.onnx").is_file()


def test_train_cli_hold_zero_trains_a_per_stage_drl(tmp_path: Path, one_thread) -> None:  # noqa: ANN001
    from lotus.governor.onnx_policy import OnnxPolicy

    out = tmp_path / "g"
    args = ["train", "--policy", "drl", "--hold", "0", "--steps", "1024", "--envs", "4", "--out", str(out),
            "--json", "--hyperparam", "n_steps=16", "--hyperparam", "batch_size=32"]  # fmt: skip
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, (result.output, result.exception)
    meta = json.loads(result.stdout)
    assert meta["hold_s"] == 0.0 and meta["training"]["hold_s"] == 0.0
    assert meta["training"]["hyperparams"]["gamma"] == 0.995  # the per-stage PPO settings, not the held ones
    policy = OnnxPolicy.load(out / "drl.json")
    assert policy.hold_s == 0.0  # asked before every stage, nothing held
    obs = np.zeros((1, 17), dtype=np.float32)
    first = policy.act(obs, 1 / 60)
    assert first.shape == (1,) and 0 <= int(first[0]) < policy.actions.n


def test_hold_is_drl_only_and_bounded() -> None:
    from lotus.core.errors import ConfigError
    from lotus.governor.train import TrainConfig, training_spec

    assert training_spec(TrainConfig(hold_s=0.0)).hold_s == 0.0
    assert training_spec(TrainConfig()).hold_s == 1.0
    with pytest.raises(ConfigError, match="drl's options"):
        training_spec(TrainConfig(policy="ztt", hold_s=0.0))
    with pytest.raises(ConfigError, match="hold must be"):
        training_spec(TrainConfig(hold_s=-1.0))
    with pytest.raises(ConfigError, match="served shares need a held decision"):
        training_spec(TrainConfig(hold_s=0.0, served_shares=(1.0, 0.5)))


def test_after_a_skip_the_next_decision_gets_the_whole_time_since_the_previous_one() -> None:
    """Served shares skip frames in training: the shield's clip (and a level allocator) must then get
    the time since each board's previous decision, skips included, as in rollouts and the daemon."""
    from lotus.governor.train import TrainConfig, training_spec

    spec = training_spec(TrainConfig(served_shares=(1.0, 0.5)))
    venv = DetectorVecEnv(BatchedDetectorEnv(3, HOT), spec, shield=True)
    given: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (board times, dt handed to clip, who decides)
    clip, step = venv.shield.clip, venv.benv.step
    pending: list[np.ndarray] = []

    def watched_clip(obs: np.ndarray, a: np.ndarray, dt_s: np.ndarray) -> np.ndarray:
        pending.append(np.asarray(dt_s, dtype=float).copy())
        return clip(obs, a, dt_s)

    def watched_step(joint: np.ndarray, active: np.ndarray | None = None):  # noqa: ANN202
        t = np.asarray(venv.benv.core.t, dtype=float).copy()
        who = np.ones(venv.num_envs, dtype=bool) if active is None else active.copy()
        given.append((t, pending.pop(), who))
        return step(joint) if active is None else step(joint, active=active)

    skips = [0]
    skip_frames = venv.benv.skip_frames

    def counted_skips(mask: np.ndarray):  # noqa: ANN202
        skips[0] += int(np.count_nonzero(mask))
        return skip_frames(mask)

    venv.shield.clip = watched_clip  # type: ignore[method-assign]
    venv.benv.step = watched_step  # type: ignore[method-assign]
    venv.benv.skip_frames = counted_skips  # type: ignore[method-assign]
    venv.seed(0)
    venv.reset()
    half = int(np.flatnonzero(venv.share_map == 0.5)[-1])  # the top clocks serving half the frames
    for _ in range(6):
        venv.step_async(np.full(venv.num_envs, half))
        venv.step_wait()
    assert skips[0] > 10  # the served share skipped frames between decisions
    for board in range(venv.num_envs):
        times = [t[board] for t, _, who in given if who[board]]
        handed = [dt[board] for _, dt, who in given if who[board]]
        np.testing.assert_allclose(handed[1:], np.diff(times), atol=1e-9)
