"""Run a policy through a simulated scenario and record what happened."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lotus.envs.detector_env import TwoStageDetectorEnv
from lotus.envs.scenario import Scenario
from lotus.governor.policies import Policy
from lotus.governor.protocol import Admitting

Admit = Callable[[np.ndarray, float, float], bool]
"""``admit(obs [F], dt_s, shutdown_gap_c) -> bool``: run (True) or skip the frame about to start;
``dt_s``: simulated seconds since the previous call, ``shutdown_gap_c``: shutdown minus trip, C."""

STEP_KEYS = (
    "time_s", "cpu_temp_c", "gpu_temp_c", "applied_cpu_khz", "applied_gpu_hz", "requested_cpu_khz",
    "requested_gpu_hz", "power_w", "throttled",
)  # fmt: skip
FRAME_KEYS = ("time_s", "latency_ms", "stage1_ms", "stage2_ms", "proposals", "frame_energy_j")


@dataclass
class Recording:
    """Per-step and per-frame series of one rollout (numpy arrays after :meth:`finish`)."""

    policy: str
    seed: int
    scenario: Scenario
    deadline_ms: float
    steps: dict[str, Any] = field(default_factory=lambda: {k: [] for k in (*STEP_KEYS, "dt_s")})  # lists, then arrays
    frames: dict[str, Any] = field(default_factory=lambda: {k: [] for k in FRAME_KEYS})
    dropped_frames: int = 0  # camera frames not processed, skipped ones included
    skipped_frames: int = 0  # frames the admission rule skipped
    shutdown: bool = False
    aborted: bool = False
    total_reward: float = 0.0

    def finish(self) -> Recording:
        self.steps = {k: np.asarray(v) for k, v in self.steps.items()}
        self.frames = {k: np.asarray(v) for k, v in self.frames.items()}
        return self


def episode_frames_for(duration_s: float, fps: float) -> int:
    """Frames needed to cover ``duration_s`` (back-to-back frames: an upper bound)."""
    return int(math.ceil(duration_s * fps)) + 2 if fps > 0 else int(duration_s * 500) + 2


def rollout(
    policy: Policy,
    scenario: Scenario,
    duration_s: float,
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
) -> Recording:
    """Drive one simulated board with ``policy`` for ``duration_s`` simulated seconds.

    A learned policy decides as often as it was trained to (its ``decision``: ``frame`` for zTT),
    whatever the scenario says. Each decision gets the simulated seconds since the previous one.
    A policy with ``admit`` (:class:`~lotus.governor.protocol.Admitting`: the shielded ones) is
    asked before each frame's first decision whether to run it; a refused frame is skipped
    (:meth:`TwoStageDetectorEnv.skip_frame`) and counts as dropped.

    :param progress: called with the simulated time advanced since the previous call.
    """
    decision = policy.decision
    if decision is not None and decision != scenario.decision:
        scenario = scenario.model_copy(update={"decision": decision})
    env = TwoStageDetectorEnv(scenario)
    fps = env.res.period_s and 1.0 / env.res.period_s
    if scenario.episode_frames < episode_frames_for(duration_s, fps):
        env = TwoStageDetectorEnv(scenario.model_copy(update={"episode_frames": episode_frames_for(duration_s, fps)}))
    policy.reset(1)

    def decide(obs: np.ndarray, dt_s: float) -> int:
        return int(policy.act(obs[None, :], dt_s)[0])

    admit: Admit | None = None
    if isinstance(policy, Admitting):
        gate = policy

        def admit(obs: np.ndarray, dt_s: float, shutdown_gap_c: float) -> bool:
            return gate.admit(obs[None, :], dt_s, shutdown_gap_c)

    return run_env(env, decide, policy.name, seed, duration_s, progress, admit=admit)


def run_env(
    env: TwoStageDetectorEnv,
    decide: Callable[[np.ndarray, float], int],
    name: str,
    seed: int,
    duration_s: float,
    progress: Callable[[float], None] | None = None,
    stop_above_c: float | None = None,
    admit: Admit | None = None,
) -> Recording:
    """Step ``env`` with ``decide(obs [F], dt_s) -> action`` until ``duration_s`` (or shutdown, or a
    die above ``stop_above_c``, which marks the recording ``aborted``). ``dt_s`` is the simulated
    time since the previous decision, s (0 at the first one). ``admit`` (see :data:`Admit`) is
    asked before each frame's first decision; a refused frame is skipped (a step of its own)."""
    rec = Recording(name, seed, env.scenario, env.res.deadline_ms)
    obs, _ = env.reset(seed=seed)
    core = env.core
    gap_c = float(core.shutdown - core.trip)
    last_t, reported, dt_s, admit_t = 0.0, 0.0, 0.0, 0.0
    decided_t: float | None = None  # when the previous decision was made, s (None: none yet)
    steps, frames = rec.steps, rec.frames
    while True:
        if admit is not None and core.phase == 0:
            t_now = core.t
            skip = not admit(obs, t_now - admit_t, gap_c)
            admit_t = t_now
        else:
            skip = False
        if skip:
            rec.skipped_frames += 1
            obs, reward, terminated, truncated, info = env.skip_frame()
        else:
            # the time since the previous decision, skipped frames included (as the daemon's wall clock)
            dt_s = 0.0 if decided_t is None else last_t - decided_t
            decided_t = last_t
            obs, reward, terminated, truncated, info = env.step(decide(obs, dt_s))
        rec.total_reward += reward
        for k in STEP_KEYS:
            steps[k].append(info[k])
        steps["dt_s"].append(info["time_s"] - last_t)
        last_t = info["time_s"]
        if info["frame_done"]:
            for k in FRAME_KEYS:
                frames[k].append(info[k])
        if progress is not None and last_t - reported >= 1.0:
            progress(last_t - reported)
            reported = last_t
        hottest = max(info["cpu_temp_c"], info["gpu_temp_c"])
        if stop_above_c is not None and (info["throttled"] or hottest > stop_above_c):
            rec.aborted = True
            break
        if terminated or truncated or last_t >= duration_s:
            rec.shutdown = bool(terminated)
            break
    rec.dropped_frames = int(env.core.dropped)
    if progress is not None:
        progress(max(last_t - reported, 0.0))
    return rec.finish()
