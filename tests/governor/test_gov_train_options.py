"""``lotus train``'s ablation options: another reward kind, a reward scale, hot starts, hyperparameters."""

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
from lotus.governor.train import DRL_RANDOMIZATION, TrainConfig, training_scenario
from lotus.governor.vec_env import DetectorVecEnv


def test_reward_scale_multiplies_every_reward_the_learner_sees() -> None:
    scenario = Scenario(reward="objective", ambient_c=35.0, episode_frames=400)
    plain = DetectorVecEnv(BatchedDetectorEnv(3, scenario), FEATURE_SPECS["drl"])
    scaled = DetectorVecEnv(BatchedDetectorEnv(3, scenario), FEATURE_SPECS["drl"], reward_scale=0.01)
    for venv in (plain, scaled):
        venv.seed(5)
        venv.reset()
    for k in range(4):
        actions = np.array([k % 25, (3 * k) % 25, 24])
        plain.step_async(actions)
        scaled.step_async(actions)
        r_plain, r_scaled = plain.step_wait()[1], scaled.step_wait()[1]
        assert np.all(r_plain < 0) and np.allclose(r_scaled, 0.01 * r_plain, rtol=1e-5)
    with pytest.raises(ValueError, match="reward_scale"):
        DetectorVecEnv(BatchedDetectorEnv(1, scenario), FEATURE_SPECS["drl"], reward_scale=0.0)


def test_training_scenario_takes_the_reward_and_hot_starts_and_keeps_the_default() -> None:
    spec = FEATURE_SPECS["drl"]
    default = training_scenario(TrainConfig(), spec)
    assert default.reward == "objective" and default.randomize == DRL_RANDOMIZATION
    ablation = training_scenario(TrainConfig(reward="objective-projected", hot_start_prob=0.35), spec)
    assert ablation.reward == "objective-projected" and ablation.randomize.hot_start_prob == 0.35
    assert ablation.randomize.ambient_c == DRL_RANDOMIZATION.ambient_c
    with pytest.raises(ConfigError, match="published"):
        training_scenario(TrainConfig(policy="ztt", recipe="published", hot_start_prob=0.2), FEATURE_SPECS["ztt"])


def test_train_cli_with_the_ablation_options_records_them(tmp_path: Path, one_thread) -> None:  # noqa: ANN001
    out = tmp_path / "g"
    args = ["train", "--policy", "drl", "--steps", "1024", "--envs", "4", "--out", str(out), "--json",
            "--reward", "objective-projected", "--reward-scale", "0.01", "--hot-start-prob", "0.35",
            "--hyperparam", "n_steps=16", "--hyperparam", "batch_size=32"]  # fmt: skip
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, (result.output, result.exception)
    meta = json.loads(result.stdout)
    assert meta["reward"] == "objective-projected" and meta["reward_weights"]["projection_s"] == 30.0
    assert meta["training"]["reward_scale"] == 0.01 and meta["training"]["hot_start_prob"] == 0.35
    assert meta["training"]["hyperparams"]["n_steps"] == 16 and meta["scenario"]["randomize"]["hot_start_prob"] == 0.35
    assert meta["export_agreement"] >= 0.99 and (out / "drl.onnx").is_file()
