"""N boards stepped at once with numpy: the fast path for training and evaluation.

:class:`BatchedDetectorEnv` follows the SB3 ``VecEnv`` conventions (auto-reset, the final
observation kept aside) but returns arrays, not per-board dicts, so it stays fast; the SB3
adapter lives in :mod:`governor.vec_env`. For the same seeds it produces the same numbers as
``n`` :class:`envs.detector_env.TwoStageDetectorEnv` instances, up to floating-point rounding
(numpy's and libm's ``exp`` may differ in the last bit; tested).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.utils import seeding

from lotus.core.schema import encode_observation
from lotus.envs.core import Resolved, SimCore
from lotus.envs.detector_env import make_scenario
from lotus.envs.ops import ARRAY
from lotus.envs.reward import compute_reward
from lotus.envs.scenario import Scenario
from lotus.envs.spaces import action_space, observation_space


class BatchedDetectorEnv:
    """``n`` independent boards running one scenario (each with its own random draws).

    :param n: number of boards.
    :param scenario: a :class:`Scenario`, dict, or None; keyword overrides as for the single env.
    :param multi_discrete: actions as ``[n, 2]`` (cpu_idx, gpu_idx) instead of joint indices ``[n]``.
    """

    def __init__(self, n: int, scenario: Scenario | dict | None = None, *, multi_discrete: bool = False, **kw: Any):
        if n < 1:
            raise ValueError("need at least one board")
        self.n = n
        self.scenario = make_scenario(scenario, kw)
        self.res = Resolved.from_scenario(self.scenario)
        self.actions = self.res.actions
        self.multi_discrete = multi_discrete
        self.observation_space = observation_space()
        self.action_space = action_space(self.actions, multi_discrete)
        self.core = SimCore(self.res, n, batched=True)
        self.rngs: list[np.random.Generator] = [seeding.np_random(None)[0] for _ in range(n)]
        self.final_obs: np.ndarray = np.zeros((n, self.observation_space.shape[0]), dtype=np.float32)

    def reset(self, seed: int | list[int | None] | None = None) -> np.ndarray:
        """Reset every board. ``seed``: one int (board i gets ``seed + i``), a list, or None."""
        seeds = [seed + i for i in range(self.n)] if isinstance(seed, int) else seed or [None] * self.n
        if len(seeds) != self.n:
            raise ValueError(f"got {len(seeds)} seeds for {self.n} boards")
        for i, s in enumerate(seeds):
            if s is not None or self.rngs[i] is None:
                self.rngs[i] = seeding.np_random(s)[0]
            self.core.reset_board(i, self.rngs[i])
        return self.observe()

    def observe(self) -> np.ndarray:
        """Current observations ``[n, N_FEATURES]``."""
        return encode_observation(self.core.raw_readings())

    def skip_frames(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Skip the pending camera frame of the boards in ``mask`` ``bool [n]`` (see :meth:`SimCore.skip`).

        Boards whose next decision is before stage 2 and boards outside ``mask`` do not change.
        Returns what :meth:`step` does (``skipped [n]`` in the dict marks the boards that skipped);
        a board that reaches shutdown while idle is reset, its last observation in ``final_obs``.
        """
        core, res = self.core, self.res
        out = core.skip(np.asarray(mask, dtype=bool))
        reward = compute_reward(self.scenario.reward, out, core, res.deadline_ms * core.d_scale, res.budget_w, ARRAY)
        out["cpu_temp_c"] = core.th_c + core.amb
        out["gpu_temp_c"] = core.th_g + core.amb
        out["time_s"] = core.t.copy()
        out["requested_cpu_idx"], out["requested_gpu_idx"] = core.req_c.copy(), core.req_g.copy()
        terminated = np.asarray(out["shutdown"], dtype=bool) & out["skipped"]
        truncated = np.zeros(self.n, dtype=bool)
        return self._finish(out, reward, terminated, truncated)

    def step(
        self, actions: np.ndarray, active: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every board; finished boards are reset (their last observation in ``final_obs``).

        :param actions: joint indices ``[n]`` (or ``[n, 2]`` with ``multi_discrete``).
        :param active: ``bool [n]``: step only these boards; the others keep their state, get reward 0
            and are not done, and their entries of the result dict are not meaningful (None: all).
        :return: ``obs [n, F]``, ``reward [n]``, ``terminated [n]``, ``truncated [n]`` and a dict of
            per-board arrays (the step results: latency_ms, stage times, temperatures, ...).
        """
        a = np.array(actions, dtype=np.int64)  # a copy: the core keeps references to the requested clocks
        n_cpu, n_gpu = self.actions.n_cpu, self.actions.n_gpu
        if self.multi_discrete:
            c, g = a[:, 0], a[:, 1]
            bad = c.min() < 0 or c.max() >= n_cpu or g.min() < 0 or g.max() >= n_gpu
        else:  # a joint index is in range exactly when both of its clock indices are
            bad = np.count_nonzero(a.view(np.uint64) >= n_cpu * n_gpu)  # a negative index wraps to a huge one
            c, g = a % n_cpu, a // n_cpu
        if bad:
            raise ValueError("action index out of range")
        core, res = self.core, self.res
        frozen = None if active is None else ~np.asarray(active, dtype=bool)
        snap = core.snapshot() if frozen is not None and frozen.any() else None
        out = core.step(c, g)
        reward = compute_reward(self.scenario.reward, out, core, res.deadline_ms * core.d_scale, res.budget_w, ARRAY)
        terminated = np.asarray(out["shutdown"], dtype=bool)
        truncated = np.asarray(out["frame_done"], dtype=bool) & (core.frame >= self.scenario.episode_frames)
        if snap is not None and frozen is not None:  # the frozen boards are put back as they were
            core.restore(snap, frozen)
            reward = np.where(frozen, 0.0, reward)
            terminated, truncated = terminated & ~frozen, truncated & ~frozen
        out["cpu_temp_c"] = core.th_c + core.amb
        out["gpu_temp_c"] = core.th_g + core.amb
        out["time_s"] = core.t.copy()
        out["requested_cpu_idx"], out["requested_gpu_idx"] = c, g
        return self._finish(out, reward, terminated, truncated)

    def _finish(
        self, out: dict[str, Any], reward: Any, terminated: np.ndarray, truncated: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Observe, reset the finished boards (their last observation in ``final_obs``), return."""
        core = self.core
        obs = self.observe()
        done = terminated | truncated
        if np.count_nonzero(done):
            # results must not change when finished boards are reset below
            out = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in out.items()}
            self.final_obs = obs.copy()
            for i in np.nonzero(done)[0]:
                core.reset_board(int(i), self.rngs[i])
            obs[done] = encode_observation(core.raw_readings())[done]
        return obs, np.asarray(reward, dtype=np.float64), terminated, truncated, out
