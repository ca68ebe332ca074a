"""Training with stable-baselines3 (tiny budgets), ONNX export, resume, and the SB3 VecEnv adapter."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from govhelpers import TRAIN_ENVS, TRAIN_STEPS, TRAINED

from lotus.core.errors import ConfigError
from lotus.core.schema import SCHEMA_VERSION
from lotus.envs.scenario import Scenario
from lotus.envs.vector import BatchedDetectorEnv
from lotus.governor.artifacts import sha256_file
from lotus.governor.features import FEATURE_SPECS
from lotus.governor.onnx_policy import OnnxPolicy
from lotus.governor.train import TrainConfig, train

FAMILIES = [p for p, _ in TRAINED]


def _load_sb3(policy: str, path: Path):  # noqa: ANN202
    from stable_baselines3 import DQN, PPO

    from lotus.governor.lotus_dqn import LotusDQN

    cls = {"drl": PPO, "lotus-dac24": LotusDQN, "ztt": DQN}[policy]
    return cls.load(path, device="cpu")


@pytest.mark.parametrize("policy", FAMILIES)
def test_train_writes_every_output(trained, policy: str) -> None:  # noqa: ANN001
    out, _ = trained[policy]
    for name in (f"{policy}.zip", f"{policy}.onnx", f"{policy}.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    ckpts = sorted((out / "checkpoints").glob(f"{policy}_*_steps.zip"))
    assert len(ckpts) >= 2
    events = list((out / "tb").rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


@pytest.mark.parametrize("policy", FAMILIES)
def test_metadata(trained, actions, policy: str) -> None:  # noqa: ANN001
    out, meta = trained[policy]
    on_disk = json.loads((out / f"{policy}.json").read_text())
    assert on_disk["schema_version"] == SCHEMA_VERSION
    for key, value in meta.items():
        assert on_disk[key] == json.loads(json.dumps(value)), key
    spec = FEATURE_SPECS[policy]
    assert on_disk["policy"] == policy
    assert on_disk["algo"] == dict(TRAINED)[policy]
    assert on_disk["board"] == "orin-nano" and on_disk["power_mode"] == "15W"
    assert on_disk["n_inputs"] == spec.n_inputs and on_disk["decision"] == spec.decision
    assert on_disk["action_table"] == actions.to_dict()
    assert on_disk["action_map"] == spec.action_map(actions).tolist()
    assert on_disk["export_agreement"] >= 0.99
    assert on_disk["onnx_file"] == f"{policy}.onnx"
    assert on_disk["onnx_sha256"] == sha256_file(out / f"{policy}.onnx")
    assert on_disk["training"]["steps"] == TRAIN_STEPS and on_disk["training"]["n_envs"] == TRAIN_ENVS


@pytest.mark.parametrize("policy", FAMILIES)
def test_onnx_policy_picks_sb3_actions(trained, actions, env_obs: np.ndarray, policy: str, one_thread) -> None:  # noqa: ANN001
    import torch as th

    out, _ = trained[policy]
    onnx = OnnxPolicy.load(out / f"{policy}.json", actions)
    model = _load_sb3(policy, out / f"{policy}.zip")
    spec = FEATURE_SPECS[policy]
    x = np.clip(spec.inputs(env_obs, actions), -5.0, 5.0).astype(np.float32)
    sb3, _ = model.predict(x, deterministic=True)
    ours = onnx.act(env_obs)
    assert ours.shape == (len(env_obs),) and ours.dtype == np.int64
    assert set(ours.tolist()) <= set(spec.action_map(actions).tolist())
    assert (ours == spec.action_map(actions)[sb3]).mean() >= 0.99
    with th.no_grad():
        if policy == "drl":
            ref = model.policy.get_distribution(th.as_tensor(x)).distribution.logits.numpy()
            got = th.log_softmax(th.as_tensor(onnx.scores(env_obs)), dim=1).numpy()
        else:
            ref, got = model.q_net(th.as_tensor(x)).numpy(), onnx.scores(env_obs)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("policy", ["drl", "lotus-dac24"])
def test_resume_continues_from_latest_checkpoint(trained, tmp_path: Path, policy: str, one_thread) -> None:  # noqa: ANN001
    src, _ = trained[policy]
    out = tmp_path / policy
    shutil.copytree(src, out)
    before = _load_sb3(policy, out / f"{policy}.zip").num_timesteps
    assert before >= TRAIN_STEPS - TRAIN_ENVS
    cfg = TrainConfig(policy=policy, algo=dict(TRAINED)[policy], steps=2 * TRAIN_STEPS, n_envs=TRAIN_ENVS)
    meta = train(cfg, out, resume=True, progress=False)
    after = _load_sb3(policy, out / f"{policy}.zip").num_timesteps
    assert before < after and after >= 2 * TRAIN_STEPS - TRAIN_ENVS
    assert after < 3 * TRAIN_STEPS  # continued, not restarted from zero with the full budget added
    steps = sorted(int(p.stem.split("_")[-2]) for p in (out / "checkpoints").glob("*_steps.zip"))
    assert steps[-1] > before
    assert meta["export_agreement"] >= 0.99
    assert OnnxPolicy.load(out / f"{policy}.json").act(np.zeros((1, 17), np.float32)).shape == (1,)


def test_resume_without_checkpoints_trains_from_scratch(tmp_path: Path, one_thread) -> None:  # noqa: ANN001
    cfg = TrainConfig(policy="ztt", algo="dqn", steps=1024, n_envs=4)
    meta = train(cfg, tmp_path, resume=True, progress=False)
    assert (tmp_path / "ztt.onnx").is_file() and meta["export_agreement"] >= 0.99


@pytest.mark.parametrize(
    ("policy", "algo", "needle"), [("bogus", "ppo", "unknown policy family"), ("drl", "a2c", "unknown algorithm")]
)
def test_train_rejects_unknown_names(tmp_path: Path, policy: str, algo: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        train(TrainConfig(policy=policy, algo=algo, steps=1000, n_envs=1), tmp_path, progress=False)
    assert not (tmp_path / f"{policy}.onnx").exists()


# --- DetectorVecEnv: SB3's VecEnv contract ------------------------------------------------------


@pytest.mark.parametrize("family", sorted(FEATURE_SPECS))
def test_vec_env_contract(family: str) -> None:
    from gymnasium import spaces
    from stable_baselines3.common.vec_env import VecCheckNan

    from lotus.governor.vec_env import DetectorVecEnv

    spec = FEATURE_SPECS[family]
    n = 4
    venv = DetectorVecEnv(BatchedDetectorEnv(n, Scenario(episode_frames=3, decision=spec.decision)), spec)
    assert venv.num_envs == n
    assert isinstance(venv.action_space, spaces.Discrete) and venv.action_space.n == len(venv.action_map)
    assert venv.observation_space.shape == (spec.n_inputs,)
    checked = VecCheckNan(venv, raise_exception=True)
    venv.seed(3)
    obs = checked.reset()
    venv.seed(3)
    np.testing.assert_array_equal(venv.reset(), obs)  # seeded resets are reproducible
    assert obs.shape == (n, spec.n_inputs) and obs.dtype == np.float32
    rng = np.random.default_rng(0)
    done_seen = 0
    for _ in range(30):
        obs, rew, dones, infos = checked.step(rng.integers(0, venv.action_space.n, size=n))
        assert obs.shape == (n, spec.n_inputs) and obs.dtype == np.float32
        assert venv.observation_space.contains(obs[0])
        assert rew.shape == (n,) and np.isfinite(rew).all()
        assert dones.shape == (n,) and dones.dtype == bool
        assert isinstance(infos, list) and len(infos) == n
        for i in range(n):
            if dones[i]:
                done_seen += 1
                term = infos[i]["terminal_observation"]
                assert term.shape == (spec.n_inputs,) and venv.observation_space.contains(term)
                assert infos[i]["TimeLimit.truncated"] is True  # 3-frame episodes end by truncation
            else:
                assert "terminal_observation" not in infos[i]
    assert done_seen >= n  # every board finished at least one 3-frame episode
    assert venv.get_attr("n") == [n] * n and venv.env_is_wrapped(object) == [False] * n


def test_vec_env_maps_subset_actions_to_joint_clocks(actions) -> None:  # noqa: ANN001
    from lotus.governor.vec_env import DetectorVecEnv

    spec = FEATURE_SPECS["ztt"]
    venv = DetectorVecEnv(BatchedDetectorEnv(3, Scenario(decision="frame")), spec)
    sent = []
    real_step = venv.benv.step
    venv.benv.step = lambda a: (sent.append(np.array(a)), real_step(a))[1]
    venv.seed(0)
    venv.reset()
    venv.step(np.array([0, 4, 8]))
    np.testing.assert_array_equal(sent[0], spec.action_map(actions)[[0, 4, 8]])
    assert actions.clocks(sent[0][2]) == (actions.cpu_khz[-1], actions.gpu_hz[-1])


@pytest.mark.parametrize(("policy", "algo", "steps", "hyper"), [
    ("drl", "ppo", 128, {"n_steps": 16, "batch_size": 32}),  # a drl step is a held second (~60 stages)
    ("ztt", "dqn", 1024, {"learning_starts": 64}),
])  # fmt: skip
def test_training_is_deterministic_on_cpu(tmp_path: Path, one_thread, policy: str, algo: str, steps: int,  # noqa: ANN001
                                          hyper: dict) -> None:  # fmt: skip
    """Same config and seed -> byte-identical ONNX export (the seed sweeps re-pick medians without
    retraining on this); another seed gives another network. Admission rule in the loop."""

    def export(seed: int, where: str) -> bytes:
        cfg = TrainConfig(policy=policy, algo=algo, steps=steps, n_envs=4, episode_frames=300, seed=seed,
                          admission_in_loop=True, hyperparams=hyper)  # fmt: skip
        train(cfg, tmp_path / where, progress=False)
        return (tmp_path / where / f"{policy}.onnx").read_bytes()

    first = export(3, "a")
    assert export(3, "b") == first
    assert export(4, "c") != first
