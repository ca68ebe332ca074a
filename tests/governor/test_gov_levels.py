"""drl --levels: outputs that hand a latency level to the per-stage allocator (mpc-energy).

The allocator is one rule in three places: the training env (:class:`DetectorVecEnv`), the policy
the daemon and the suite run (:class:`OnnxPolicy`), and ``mpc-energy`` itself. These tests check
that the three pick the same clocks from the same observations, and that the option is validated.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lotus.core.cli import build_app
from lotus.core.errors import ConfigError
from lotus.envs.scenario import Scenario
from lotus.envs.vector import BatchedDetectorEnv
from lotus.governor.features import FEATURE_SPECS
from lotus.governor.mpc import MpcPolicy, level_allocator
from lotus.governor.train import TrainConfig, training_spec
from lotus.governor.vec_env import DetectorVecEnv

ROOM_7W = Scenario(power_mode="7W", fps=15.0, deadline_ms=80.0, ambient_c=30.0, episode_frames=18000)


def _levelled_spec(levels: tuple[float, ...] = (0.6, 0.8)):  # noqa: ANN202 - a FeatureSpec
    return training_spec(TrainConfig(power_mode="7W", levels=levels))


def test_level_outputs_come_after_the_clock_outputs() -> None:
    spec = _levelled_spec()
    actions = BatchedDetectorEnv(1, ROOM_7W).actions
    clocks = FEATURE_SPECS["drl"].action_map(actions)
    amap, lmap, smap = spec.action_map(actions), spec.level_map(actions), spec.share_map(actions)
    assert len(amap) == len(lmap) == len(smap) == len(clocks) + 2
    np.testing.assert_array_equal(amap[: len(clocks)], clocks)
    assert list(lmap[len(clocks) :]) == [0.6, 0.8] and not lmap[: len(clocks)].any()
    assert (amap[len(clocks) :] == actions.n - 1).all() and (smap == 1.0).all()


def test_levels_are_validated() -> None:
    with pytest.raises(ConfigError, match="levels must be"):
        training_spec(TrainConfig(levels=(0.0, 0.5)))
    with pytest.raises(ConfigError, match="levels must be"):
        training_spec(TrainConfig(levels=(0.7, 0.7)))
    with pytest.raises(ConfigError, match="levels must be"):
        training_spec(TrainConfig(levels=(1.2,)))
    with pytest.raises(ConfigError, match="do not combine"):
        training_spec(TrainConfig(levels=(0.8,), served_shares=(1.0, 0.5)))
    with pytest.raises(ConfigError, match="drl's options"):
        training_spec(TrainConfig(policy="ztt", levels=(0.8,)))


def _energy_rule(actions, margin: float) -> MpcPolicy:  # noqa: ANN001
    return MpcPolicy(actions, board="orin-nano", power_mode="7W", workload="frcnn-lite", deadline_ms=80.0, fps=15.0,
                     goal="energy", latency_margin=margin)  # fmt: skip


def test_training_env_drives_each_board_with_the_mpc_energy_rule_at_its_level() -> None:
    """Boards on a level output run exactly the clocks ``mpc-energy`` at that margin picks, stage
    by stage; boards on a clock output run that clock."""
    spec = _levelled_spec()
    benv = BatchedDetectorEnv(3, ROOM_7W)
    venv = DetectorVecEnv(benv, spec)
    venv.seed(1)  # seed 0 starts in a stretch of heavy frames where 0.8 is the top clocks too
    venv.reset()
    n_clock = len(FEATURE_SPECS["drl"].action_map(benv.actions))
    outputs = np.array([n_clock, n_clock + 1, 2])  # level 0.6, level 0.8, a clock output
    rules = [_energy_rule(benv.actions, 0.6), _energy_rule(benv.actions, 0.8)]
    applied: list[np.ndarray] = []
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    step = benv.step

    def recording_step(joint: np.ndarray, active: np.ndarray | None = None):  # noqa: ANN202
        seen.append((venv._raw_obs.copy(), venv._dt_s.copy()))
        applied.append(np.asarray(joint).copy())
        return step(joint) if active is None else step(joint, active=active)

    benv.step = recording_step  # type: ignore[method-assign]
    for _ in range(20):  # twenty held seconds, ~600 stage decisions per board
        venv.step_async(outputs)
        venv.step_wait()
    assert len(applied) > 500
    for board, rule in enumerate(rules):
        expected = [int(rule.act(obs[board : board + 1], dt[board])[0]) for obs, dt in seen]
        assert [int(j[board]) for j in applied] == expected
    assert len({int(j[1]) for j in applied}) > 1  # at 0.8 the rule levels: it does not sit on one clock
    assert {int(j[2]) for j in applied} == {int(venv.action_map[2])}


def test_onnx_policy_runs_the_same_rule_as_training(tmp_path: Path, one_thread) -> None:  # noqa: ANN001
    """A trained --levels network, loaded as the daemon and suite load it: while it holds a level
    output its clocks are the rule's; the metadata carries the level map and the allocator's room."""
    from lotus.governor.onnx_policy import OnnxPolicy

    out = tmp_path / "g"
    args = ["train", "--policy", "drl", "--power-mode", "7W", "--levels", "0.7,0.85", "--steps", "1024",
            "--envs", "4", "--out", str(out), "--json", "--hyperparam", "n_steps=16",
            "--hyperparam", "batch_size=32"]  # fmt: skip
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, (result.output, result.exception)
    meta = json.loads(result.stdout)
    assert meta["level_map"][-2:] == [0.7, 0.85] and meta["training"]["levels"] == [0.7, 0.85]
    assert meta["scenario"]["fps"] == 15.0 and meta["scenario"]["deadline_ms"] == 80.0
    policy = OnnxPolicy.load(out / "drl.json")
    env = BatchedDetectorEnv(1, ROOM_7W)
    obs = env.reset(seed=3)
    first = policy.act(obs, 1 / 30)  # the network's own choice runs
    assert 0 <= int(first[0]) < policy.actions.n
    # from a standing start on a level output, every stage's clocks equal the rule's
    policy.reset(1)
    obs = env.reset(seed=4)
    policy._held_out = np.array([len(policy.level_map) - 1])
    policy._held = policy.action_map[policy._held_out]
    policy._since = np.zeros(1)
    policy.hold_s = 1e9  # keep the level output: the comparison is of the allocator, not the network
    rule = _energy_rule(env.actions, 0.85)
    for _ in range(300):
        joint = int(policy.act(obs, 1 / 30)[0])
        assert joint == int(rule.act(obs, 1 / 30)[0])
        obs, *_ = env.step(np.array([joint]))


def test_a_level_policy_without_its_room_is_refused(tmp_path: Path) -> None:
    from lotus.core.errors import PolicyError
    from lotus.governor.artifacts import PolicyArtifact
    from lotus.governor.onnx_policy import OnnxPolicy

    shipped = Path(__file__).resolve().parents[2] / "governor" / "policies" / "drl.orin-nano-7W.json"
    meta = json.loads(shipped.read_text())
    meta["level_map"] = [0.0] * (len(meta["action_map"]) - 1) + [0.8]
    meta["scenario"] = {}
    (tmp_path / "drl.json").write_text(json.dumps(meta))
    (tmp_path / meta["onnx_file"]).write_bytes((shipped.parent / meta["onnx_file"]).read_bytes())
    art = PolicyArtifact(meta, tmp_path / meta["onnx_file"], tmp_path / "drl.json")
    with pytest.raises(PolicyError, match="no usable scenario"):
        OnnxPolicy(art)


def test_level_allocator_is_mpc_energy_with_per_board_margins() -> None:
    actions = BatchedDetectorEnv(1, ROOM_7W).actions
    alloc = level_allocator(actions, "orin-nano", "7W", "frcnn-lite", 80.0, 15.0)
    assert alloc.name == "mpc-energy"
    alloc.reset(2)
    alloc.margins[:] = [0.6, 0.9]
    env = BatchedDetectorEnv(2, ROOM_7W)
    obs = env.reset(seed=[5, 5])  # the same board twice: only the level differs
    picks = []
    for _ in range(200):
        a = alloc.act(obs, 1 / 30)
        picks.append(a)
        obs, *_ = env.step(a)
    speed = [np.mean([actions.cpu_khz[actions.split(np.array([p[b]]))[0][0]] for p in picks]) for b in (0, 1)]
    assert speed[0] > speed[1]  # the lower level asks for faster clocks
    k0, drift0 = alloc.k[0], alloc.drift[0]
    assert alloc.k[1] != 1.0 and alloc.drift[1] != 0.0  # 200 stages moved the correction and the drift
    alloc.reset_rows(np.array([False, True]))
    assert alloc.k[1] == 1.0 and alloc.drift[1] == 0.0 and alloc.stretch[1] == 1.0
    assert alloc.k[0] == k0 and alloc.drift[0] == drift0  # the other board keeps its state


def test_train_cli_rejects_levels_that_are_not_numbers(tmp_path: Path) -> None:
    args = ["train", "--policy", "drl", "--levels", "0.8,high", "--steps", "1024", "--out", str(tmp_path / "g")]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code != 0
    assert "--levels wants comma-separated numbers" in result.output + str(result.exception)
    assert not (tmp_path / "g").exists()  # refused before any work
