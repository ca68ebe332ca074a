"""``lotus/TwoStageDetector-v0``: one board running a two-stage detector, one clock decision a step."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from lotus.core.schema import encode_observation
from lotus.envs import register_env
from lotus.envs.core import Resolved, SimCore
from lotus.envs.ops import SCALAR
from lotus.envs.reward import compute_reward
from lotus.envs.scenario import Scenario
from lotus.envs.spaces import action_space, observation_space


def make_scenario(scenario: Scenario | dict | None, overrides: dict[str, Any]) -> Scenario:
    """A validated :class:`Scenario` from a model, a dict and/or keyword overrides."""
    if isinstance(scenario, Scenario):
        return scenario.model_copy(update=overrides) if overrides else scenario
    return Scenario.model_validate({**(scenario or {}), **overrides})


class TwoStageDetectorEnv(gym.Env):
    """A Jetson-class board running a two-stage (Faster R-CNN style) detector.

    ## Description
    Each frame runs stage 1 (backbone + region proposals) then stage 2 (per-proposal heads).
    The agent picks joint CPU+GPU clocks at every decision point: before stage 1 and after it
    (``decision="stage"``, as Lotus), or once per frame (``decision="frame"``, as zTT). The
    board heats through a CPU/GPU/heatsink RC network; above the trip point (99 C on Orin) the
    firmware steps clocks down once per 1 s poll; at the shutdown trip the episode terminates.

    ## Observation Space
    ``Box(17,)`` float32, built by :func:`envs.schema.encode_observation`; the table of
    features, units and ranges is in :mod:`envs.schema`.

    ## Action Space
    ``Discrete(n_cpu * n_gpu)`` joint clocks (100 on Orin Nano 15W), index
    ``gpu_idx * n_cpu + cpu_idx``; with ``multi_discrete=True``, ``MultiDiscrete([n_cpu, n_gpu])``.

    ## Rewards
    ``stable`` (ours) or ``lotus`` (paper): see :mod:`envs.reward`.

    ## Skipping frames
    :meth:`skip_frame` (before stage 1) drops the pending camera frame and idles until the next
    one: the admission action of :mod:`lotus.governor.admission`.

    ## Episode End
    Terminates at thermal shutdown; truncates after ``episode_frames`` frames.

    ## Arguments
    ``scenario`` (a :class:`envs.scenario.Scenario` or dict) and/or its fields as keywords:
    board, power_mode, ambient_c, workload, trace, fps, deadline_ms, decision, episode_frames,
    reward, trip_c, fan, init_temp_c, randomize.

    ## Version History
    v0: first release (schema version 1).
    """

    metadata = {"render_modes": []}

    def __init__(self, scenario: Scenario | dict | None = None, *, multi_discrete: bool = False, **kw: Any):
        self.scenario = make_scenario(scenario, kw)
        self.res = Resolved.from_scenario(self.scenario)
        self.actions = self.res.actions
        self.multi_discrete = multi_discrete
        self.observation_space = observation_space()
        self.action_space = action_space(self.actions, multi_discrete)
        self.core = SimCore(self.res, 1)
        self._n_cpu, self._n_gpu = self.actions.n_cpu, self.actions.n_gpu  # cached: _decode runs every step
        self._ready = False

    def _decode(self, action: Any) -> tuple[int, int]:
        if self.multi_discrete:
            c, g = int(action[0]), int(action[1])
            if not (0 <= c < self._n_cpu and 0 <= g < self._n_gpu):
                space = f"MultiDiscrete([{self._n_cpu}, {self._n_gpu}])"
                raise ValueError(f"action {action!r} is outside {space}")
            return c, g
        a = int(action)
        n_cpu = self._n_cpu
        if not 0 <= a < n_cpu * self._n_gpu:
            raise ValueError(f"action {a} is outside Discrete({n_cpu * self._n_gpu})")
        return a % n_cpu, a // n_cpu

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.core.reset_board(0, self.np_random)
        self._ready = True
        return encode_observation(self.core.raw_readings()), {"frame": 0}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if not self._ready:
            raise gym.error.ResetNeeded("call reset() before step()")
        c, g = self._decode(action)
        core, res = self.core, self.res
        out = core.step(c, g)
        reward = compute_reward(self.scenario.reward, out, core, res.deadline_ms * core.d_scale, res.budget_w, SCALAR)
        terminated = bool(out["shutdown"])
        truncated = bool(out["frame_done"]) and core.frame >= self.scenario.episode_frames
        if terminated or truncated:
            self._ready = False
        info = step_info(out, core, res, c, g)
        return encode_observation(core.raw_readings()), float(reward), terminated, truncated, info

    def skip_frame(self) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Skip the camera frame the next stage-1 decision would run (see :meth:`SimCore.skip`).

        The board idles at its requested clocks until the next camera frame arrives; the skipped
        frame counts as dropped (``info["dropped"]`` 1, ``info["dropped_frames"]`` one more).
        Returns what :meth:`step` does; ``info["skipped"]`` is True.

        :raises ValueError: the next decision is before stage 2 (a frame already started).
        """
        if not self._ready:
            raise gym.error.ResetNeeded("call reset() before skip_frame()")
        core, res = self.core, self.res
        if core.phase != 0:
            raise ValueError("a frame can only be skipped before its stage 1")
        out = core.skip()
        reward = compute_reward(self.scenario.reward, out, core, res.deadline_ms * core.d_scale, res.budget_w, SCALAR)
        terminated = bool(out["shutdown"])
        if terminated:
            self._ready = False
        info = step_info(out, core, res, core.req_c, core.req_g)
        info["skipped"] = True
        return encode_observation(core.raw_readings()), float(reward), terminated, False, info


def step_info(out: dict[str, Any], core: SimCore, res: Resolved, req_c: int, req_g: int) -> dict[str, Any]:
    """The per-step ``info`` dict of one board (physical units)."""
    a = res.actions
    return {
        "time_s": core.t,
        "frame": core.frame,
        "frame_done": bool(out["frame_done"]),
        "latency_ms": out["latency_ms"],
        "stage_ms": out["stage_ms"],
        "stage1_ms": out["stage1_ms"],
        "stage2_ms": out["stage2_ms"],
        "idle_ms": out["idle_ms"],
        "proposals": int(out["proposals"]),
        "deadline_miss": bool(out["frame_done"]) and out["latency_ms"] > res.deadline_ms,
        "cpu_temp_c": core.th_c + core.amb,
        "gpu_temp_c": core.th_g + core.amb,
        "sink_temp_c": core.th_s + core.amb,
        "power_w": out["power_w"],
        "energy_j": out["energy_j"],
        "frame_energy_j": out["frame_energy_j"],
        "requested_cpu_khz": a.cpu_khz[req_c],
        "requested_gpu_hz": a.gpu_hz[req_g],
        "applied_cpu_khz": a.cpu_khz[int(out["applied_cpu_idx"])],
        "applied_gpu_hz": a.gpu_hz[int(out["applied_gpu_idx"])],
        "throttled": bool(out["throttled"]),
        "dropped": int(out["dropped"]),
        "dropped_frames": int(core.dropped),
        "skipped": False,
    }


register_env()  # importing the env class makes its gymnasium id available
