"""Train a governor with stable-baselines3 in the batched simulator, then export it to ONNX.

Writes into ``out``: the SB3 zip, checkpoints, tensorboard logs, ``<policy>.onnx`` and
``<policy>.json`` (what the daemon loads). Imports torch and SB3: training machines only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from lotus.core.errors import ConfigError
from lotus.core.schema import ActionTable
from lotus.envs.reward import OBJECTIVE_WEIGHTS, PROJECTED_WEIGHTS, STABLE_WEIGHTS
from lotus.envs.scenario import Randomization, Scenario
from lotus.envs.vector import BatchedDetectorEnv
from lotus.governor.artifacts import sha256_file, write_metadata
from lotus.governor.features import FEATURE_SPECS, FeatureSpec, clock_grid, power_ladder

logger = logging.getLogger(__name__)

# The "equal" recipe (default): every learned policy, ours and the paper reproductions, trains on
# the same randomised rooms for the same number of steps. The "published" recipe trains the
# reproductions as their papers did: the nominal room only (with warm starts so short episodes meet
# hot states) and their own budgets; its artifacts are named NAME-pub.
# (model_validate: mypy does not see pydantic's positional Field defaults)
# Issue 11's ranges: ambient 10-45 C, heatsink resistance and capacity +-40 %, workload +-40 %,
# proposal regimes up to 3x the video trace's mean (``regimes``); the sensors' noise, quantum and
# lag are the calibrated ones of every profile. No deadline randomisation: the policy is paid
# for the real deadline and learns its own thermal back-off (the shield's stretch stays off).
DRL_RANDOMIZATION = Randomization.model_validate(
    {
        "ambient_c": (10.0, 45.0),
        "r_scale": (0.6, 1.4),
        "c_scale": (0.6, 1.4),
        "workload_scale": (0.6, 1.4),
        "fan_auto_prob": 0.15,
        # up to ~2 C past "8 C under the trip": a 100 s episode must meet the trip, not only approach it
        "init_heat": (0.0, 1.1),
        "traces": ("steady", "bursty", "video", "regimes"),
    }
)
BASELINE_RANDOMIZATION = Randomization.model_validate({"init_heat": (0.0, 1.0)})
PUBLISHED_STEPS = {"ztt": 300_000, "lotus-dac24": 1_000_000}  # the as-published recipes' budgets
RECIPES = ("equal", "published")


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved in the metadata JSON).

    :param policy: ``drl`` (ours), ``lotus-dac24`` or ``ztt``.
    :param algo: ``ppo`` or ``dqn``.
    :param steps: environment steps (decisions summed over all boards).
    :param n_envs: boards simulated in parallel.
    :param episode_frames: frames per training episode.
    :param shield_in_loop: clip actions with the safety shield during training too (off: the
        shipped drl was trained without it; with it, training did not get better here).
    :param admission_in_loop: skip the camera frames the shield's admission rule refuses during
        training too, as where the policy is deployed (``DetectorVecEnv(admission=True)``).
    :param recipe: ``equal`` (drl's randomisation for every policy) or ``published`` (the
        reproductions' nominal-room training; artifacts named ``NAME-pub``).
    :param reward: the reward kind to train on; None: the family's (``objective`` for drl).
    :param reward_scale: factor on every reward the learner sees.
    :param hot_start_prob: share of episodes that start near the trip
        (:attr:`~lotus.envs.scenario.Randomization.hot_start_prob`; not with ``published``).
    :param clocks: drl's clock choices instead of its family's: ``grid`` (5 x 5) or ``ladder``
        (:func:`~lotus.governor.features.power_ladder`).
    :param served_shares: drl's served shares of camera frames instead of its family's (each in 0.5..1).
    :param hold_s: drl's seconds each choice is held instead of its family's 1 s; 0: a decision
        before every stage (the stage-1 and stage-2 clocks chosen apart, as ``lotus-dac24`` decides).
    :param levels: drl's latency levels for the per-stage allocator, each in (0, 1] (outputs added
        after its clocks; :class:`~lotus.governor.features.FeatureSpec`); None: none.
    """

    policy: str = "drl"
    algo: str = "ppo"
    board: str = "orin-nano"
    power_mode: str | None = None
    workload: str = "frcnn-lite"
    steps: int = 600_000
    n_envs: int = 32
    episode_frames: int = 3000
    seed: int = 0
    shield_in_loop: bool = False
    admission_in_loop: bool = False
    recipe: str = "equal"
    reward: str | None = None
    reward_scale: float = 1.0
    hot_start_prob: float = 0.0
    clocks: str | None = None
    served_shares: tuple[float, ...] | None = None
    hold_s: float | None = None
    levels: tuple[float, ...] | None = None
    hyperparams: dict[str, Any] = field(default_factory=dict)


def set_threads(n: int) -> None:
    """Torch threads for training (1 is fastest for these small networks)."""
    import torch

    torch.set_num_threads(n)


def default_algo(policy: str) -> str:
    return {"drl": "ppo", "lotus-dac24": "dqn", "ztt": "dqn"}[policy]


CLOCK_CHOICES: dict[str, Callable[[ActionTable], list[int]]] = {"grid": clock_grid, "ladder": power_ladder}


def training_spec(cfg: TrainConfig) -> FeatureSpec:
    """The family's :class:`FeatureSpec` with the run's ``clocks``, ``served_shares``, ``hold_s`` and
    ``levels``, if given."""
    spec = FEATURE_SPECS[cfg.policy]
    if cfg.clocks is None and cfg.served_shares is None and cfg.hold_s is None and cfg.levels is None:
        return spec
    if cfg.policy != "drl":
        raise ConfigError(
            "clocks, served shares, hold and levels are drl's options (the baselines keep their papers' actions)"
        )
    update: dict[str, Any] = {}
    if cfg.hold_s is not None:
        if not 0.0 <= cfg.hold_s <= 60.0:
            raise ConfigError(f"hold must be 0 (per stage) to 60 s, got {cfg.hold_s}")
        spec = replace(spec, hold_s=float(cfg.hold_s))
    if cfg.served_shares is not None and spec.hold_s <= 0:
        raise ConfigError("served shares need a held decision (hold_s > 0)")
    if cfg.clocks is not None:
        if cfg.clocks not in CLOCK_CHOICES:
            raise ConfigError(f"unknown clocks {cfg.clocks!r}; choose one of {', '.join(CLOCK_CHOICES)}")
        update["action_subset"] = CLOCK_CHOICES[cfg.clocks]
    if cfg.served_shares is not None:
        shares = tuple(float(x) for x in cfg.served_shares)
        if not shares or any(not 0.5 <= x <= 1.0 for x in shares) or len(set(shares)) != len(shares):
            raise ConfigError(f"served shares must be distinct values in 0.5..1, got {list(cfg.served_shares)}")
        update["served_shares"] = shares
    if cfg.levels is not None:
        levels = tuple(float(x) for x in cfg.levels)
        if not levels or any(not 0.0 < x <= 1.0 for x in levels) or len(set(levels)) != len(levels):
            raise ConfigError(f"levels must be distinct values in (0, 1], got {list(cfg.levels)}")
        if cfg.served_shares is not None:
            raise ConfigError("levels and served shares do not combine (a level output serves every frame)")
        update["levels"] = levels
    return replace(spec, **update)


PROBE_S = 5.0  # simulated seconds of the top-clocks probe in :func:`serving_rate`
PROBE_ON_TIME_PCT = 90.0  # share of the frames top clocks must finish in time at the workload's rate


@lru_cache(maxsize=64)
def serving_rate(board: str, power_mode: str | None, workload: str) -> tuple[float, float]:
    """Camera rate (frames/s) and deadline (ms) a profile is trained and scored at.

    The workload's own rate and deadline when the mode's top clocks finish at least
    :data:`PROBE_ON_TIME_PCT` of the frames in time in a :data:`PROBE_S` probe at 30 C; otherwise
    half the rate with the deadline scaled by the period (Orin Nano 7 W: ~56 ms a frame against
    frcnn-lite's 40 ms, so 15 fps and 80 ms, the suite's 7 W room). A policy trained where no clock
    can serve the rate only ever sees missed frames, and seeds scored there cannot be told apart.
    Cached per process: training and every seed's two scoring rooms ask for the same profile.
    """
    from lotus.envs.core import Resolved
    from lotus.governor.evaluate import evaluate

    room = Scenario.model_validate(
        {"board": board, "power_mode": power_mode, "workload": workload, "ambient_c": 30.0, "trace": "video"}
    )
    res = Resolved.from_scenario(room)
    fps = float(res.workload.default_fps)
    if fps == 0 or evaluate(room, ["performance"], [0], PROBE_S).records[0]["on_time_pct"] >= PROBE_ON_TIME_PCT:
        return fps, res.deadline_ms
    return fps / 2, res.deadline_ms * 2


def training_scenario(cfg: TrainConfig, spec: FeatureSpec) -> Scenario:
    """The randomised rooms ``cfg`` trains in, at the profile's :func:`serving_rate`."""
    fps, deadline_ms = serving_rate(cfg.board, cfg.power_mode, cfg.workload)
    randomize = BASELINE_RANDOMIZATION if cfg.recipe == "published" else DRL_RANDOMIZATION
    if cfg.hot_start_prob > 0:
        if cfg.recipe == "published":
            raise ConfigError("hot starts are not part of the published recipes")
        randomize = randomize.model_copy(update={"hot_start_prob": cfg.hot_start_prob})
    return Scenario.model_validate(
        {
            "board": cfg.board,
            "power_mode": cfg.power_mode,
            "workload": cfg.workload,
            "fps": fps,
            "deadline_ms": deadline_ms,
            "decision": spec.decision,
            "reward": cfg.reward or spec.reward,
            "episode_frames": cfg.episode_frames,
            "randomize": randomize,
        }
    )


def artifact_name(cfg: TrainConfig) -> str:
    """File stem of the exported policy: the family, ``-pub`` for the as-published recipe."""
    return f"{cfg.policy}-pub" if cfg.recipe == "published" else cfg.policy


def _hyperparams(cfg: TrainConfig) -> dict[str, Any]:
    if cfg.algo == "ppo" and training_spec(cfg).hold_s > 0:
        # one decision per held second: gamma 0.98 looks ~50 s ahead, against a heatsink of minutes
        # and a die of ~1.4 s; short rollouts because each step is ~60 simulated stages
        base = dict(
            n_steps=64, batch_size=512, n_epochs=10, learning_rate=3e-4, gamma=0.98, gae_lambda=0.95,
            ent_coef=0.01, clip_range=0.2, policy_kwargs={"net_arch": [128, 128]},
        )  # fmt: skip
    elif cfg.algo == "ppo":
        base = dict(
            n_steps=256, batch_size=1024, n_epochs=5, learning_rate=3e-4, gamma=0.995, gae_lambda=0.95,
            ent_coef=0.005, clip_range=0.2, policy_kwargs={"net_arch": [128, 128]},
        )  # fmt: skip
    elif cfg.policy == "lotus-dac24":  # governors.md 1.2: Lotus DQN settings, adapted to SB3
        base = dict(
            learning_rate=1e-3, buffer_size=4000, batch_size=16, gamma=0.99, tau=0.005, target_update_interval=1,
            learning_starts=1000, train_freq=4, exploration_fraction=0.3, exploration_initial_eps=0.9,
            exploration_final_eps=0.01, policy_kwargs={"net_arch": [64, 128, 256]},
        )  # fmt: skip
    elif cfg.policy == "ztt":  # governors.md 2: zTT's tiny DQN that learns a contextual bandit (gamma 0)
        base = dict(
            learning_rate=1e-3, buffer_size=500, batch_size=64, gamma=0.0, learning_starts=200, train_freq=1,
            target_update_interval=100, exploration_fraction=0.5, exploration_initial_eps=1.0,
            exploration_final_eps=0.0, policy_kwargs={"net_arch": [6, 6]},
        )  # fmt: skip
    else:
        base = dict(learning_rate=1e-3, buffer_size=100_000, batch_size=256, gamma=0.98, learning_starts=5000,
                    train_freq=4, target_update_interval=2000, exploration_fraction=0.2,
                    policy_kwargs={"net_arch": [128, 128]})  # fmt: skip
    return {**base, **cfg.hyperparams}


def train(cfg: TrainConfig, out: Path, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run one training job; returns the metadata written next to the ONNX export."""
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.callbacks import CheckpointCallback

    from lotus.governor.lotus_dqn import LotusDQN
    from lotus.governor.vec_env import DetectorVecEnv

    if cfg.policy not in FEATURE_SPECS:
        raise ConfigError(f"unknown policy family {cfg.policy!r}; choose one of {', '.join(FEATURE_SPECS)}")
    if cfg.algo not in ("ppo", "dqn"):
        raise ConfigError(f"unknown algorithm {cfg.algo!r}; choose ppo or dqn")
    if cfg.recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {cfg.recipe!r}; choose one of {', '.join(RECIPES)}")
    spec = training_spec(cfg)
    out.mkdir(parents=True, exist_ok=True)
    scenario = training_scenario(cfg, spec)
    venv = DetectorVecEnv(BatchedDetectorEnv(cfg.n_envs, scenario), spec, shield=cfg.shield_in_loop,
                          reward_scale=cfg.reward_scale, admission=cfg.admission_in_loop)  # fmt: skip
    venv.seed(cfg.seed)
    algo_cls: type[PPO] | type[DQN] = PPO if cfg.algo == "ppo" else DQN
    extra: dict[str, Any] = {}
    if cfg.policy == "lotus-dac24" and cfg.algo == "dqn":
        algo_cls, extra = LotusDQN, {"actions": venv.benv.actions}
    ckpt_dir = out / "checkpoints"
    latest = _latest_checkpoint(ckpt_dir) if resume else None
    hp = _hyperparams(cfg)
    if latest is not None:
        logger.info("resuming from %s", latest)
        model = algo_cls.load(latest, env=venv, device="cpu")
        if isinstance(model, LotusDQN):
            model.set_table(venv.benv.actions)
        done_steps = model.num_timesteps
    else:
        model = algo_cls("MlpPolicy", venv, seed=cfg.seed, device="cpu", verbose=0,
                         tensorboard_log=str(out / "tb"), **hp, **extra)  # fmt: skip
        done_steps = 0
    save_every = max(cfg.steps // 5 // cfg.n_envs, 1)
    callback = CheckpointCallback(save_every, str(ckpt_dir), name_prefix=cfg.policy, save_replay_buffer=False)
    t0 = time.perf_counter()
    model.learn(
        total_timesteps=max(cfg.steps - done_steps, 0), callback=callback, progress_bar=progress,
        reset_num_timesteps=latest is None, tb_log_name=cfg.policy,
    )  # fmt: skip
    train_s = time.perf_counter() - t0
    model.save(out / f"{artifact_name(cfg)}.zip")
    return export(model, cfg, spec, scenario, out, train_s)


def _latest_checkpoint(ckpt_dir: Path) -> Path | None:
    files = sorted(ckpt_dir.glob("*_steps.zip"), key=lambda p: int(p.stem.rsplit("_", 2)[-2]))
    return files[-1] if files else None


def export(model: Any, cfg: TrainConfig, spec: FeatureSpec, scenario: Scenario, out: Path, train_s: float) -> dict:
    """Export the policy network to ONNX, check it picks SB3's actions, write the metadata JSON."""
    import warnings

    import onnxruntime as ort
    import torch as th

    policy = model.policy.to("cpu").eval()
    if cfg.algo == "ppo":

        class Logits(th.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.p = policy

            def forward(self, obs: th.Tensor) -> th.Tensor:
                feats = self.p.extract_features(obs, self.p.pi_features_extractor)
                return self.p.action_net(self.p.mlp_extractor.forward_actor(feats))

        net: th.nn.Module = Logits()
    else:
        net = policy.q_net
    onnx_path = out / f"{artifact_name(cfg)}.onnx"
    dummy = th.zeros(1, spec.n_inputs, dtype=th.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        th.onnx.export(net, (dummy,), str(onnx_path), input_names=["obs"], output_names=["scores"],
                       dynamic_axes={"obs": {0: "batch"}, "scores": {0: "batch"}}, opset_version=17,
                       dynamo=False)  # fmt: skip
    sample = _sample_inputs(cfg, spec, scenario)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_act = sess.run(None, {"obs": sample})[0].argmax(axis=1)
    sb3_act, _ = model.predict(sample, deterministic=True)
    agreement = float((onnx_act == sb3_act).mean())
    if agreement < 0.99:
        raise RuntimeError(f"ONNX export disagrees with SB3 on {100 * (1 - agreement):.1f} % of observations")
    from lotus.envs.core import Resolved

    res = Resolved.from_scenario(scenario)
    meta = {
        "policy": cfg.policy,
        "version": datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S"),
        "algo": cfg.algo,
        "board": res.board.name,
        "power_mode": cfg.power_mode or res.board.default_mode,
        "decision": spec.decision,
        "reward": scenario.reward,
        "reward_weights": {
            "stable": STABLE_WEIGHTS,
            "objective": OBJECTIVE_WEIGHTS,
            "objective-run": OBJECTIVE_WEIGHTS,
            "objective-projected": PROJECTED_WEIGHTS,
        }.get(scenario.reward),  # fmt: skip
        "n_inputs": spec.n_inputs,
        "hold_s": spec.hold_s,
        "action_table": res.actions.to_dict(),
        "action_map": spec.action_map(res.actions).tolist(),
        "served_share": spec.share_map(res.actions).tolist(),
        "onnx_file": onnx_path.name,
        "onnx_sha256": sha256_file(onnx_path),
        "export_agreement": agreement,
        "export_samples": int(len(sample)),
        "train_seconds": round(train_s, 1),
        "training": {**asdict(cfg), "hyperparams": _hyperparams(cfg)},
        "scenario": scenario.model_dump(mode="json"),
    }
    if spec.levels:  # the allocator is rebuilt from the board, mode and the scenario's workload, deadline, rate
        meta["level_map"] = spec.level_map(res.actions).tolist()
    write_metadata(out / f"{artifact_name(cfg)}.json", meta)
    return meta


def _sample_inputs(cfg: TrainConfig, spec: FeatureSpec, scenario: Scenario, n: int = 2048) -> np.ndarray:
    """Observations from random-action rollouts, for the export check."""
    benv = BatchedDetectorEnv(16, scenario)
    obs = benv.reset(seed=cfg.seed + 1000)
    rng = np.random.default_rng(cfg.seed)
    rows: list[np.ndarray] = []
    while sum(len(r) for r in rows) < n:
        rows.append(spec.inputs(obs, benv.actions))
        obs, *_ = benv.step(rng.integers(0, benv.actions.n, size=benv.n))
    return np.clip(np.concatenate(rows)[:n], -5.0, 5.0).astype(np.float32)
