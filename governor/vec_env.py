"""The batched simulator as a stable-baselines3 ``VecEnv`` (training only: imports SB3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv

from lotus.core.schema import IDX
from lotus.envs.vector import BatchedDetectorEnv
from lotus.governor.admission import ServedShare
from lotus.governor.features import FeatureSpec

MAX_SKIPS_PER_HOLD = 10_000  # a guard: skips one held step may take (the rule's floor is 1 frame per 4 s)


class DetectorVecEnv(VecEnv):
    """``n`` simulated boards behind SB3's ``VecEnv`` API, seen through a :class:`FeatureSpec`.

    Actions are indices into the spec's action subset; observations are the spec's inputs. A spec
    with ``hold_s > 0`` makes one step of this env last until every board has run ``hold_s``
    simulated seconds on the action (its stage decisions repeat it), with the rewards summed: the
    policy decides at its deployed period. With ``shield=True`` the safety shield the policy is
    deployed with clips every action during training too, so the policy learns with the same guard
    it will run under. With ``admission=True`` (no ``shield``, no served shares) the shield's
    admission rule is asked before every camera frame, as where the policy is deployed, and the
    frames it refuses are skipped (a drop in the reward). A held policy's boards then run exactly
    their own held second: a board whose second is up waits (a masked step) while the others
    finish theirs, so a hot board's skips do not stretch the others' hold. A per-stage policy's
    step is, for each board, either its stage decision or, where the rule refuses the frame about
    to start, that frame's skip (the action is not applied; the reward is the drop). ``reward_scale`` multiplies
    every reward the learner sees (a held second's return is in the hundreds; docs/governor.md,
    ablation G, scales it to order one).
    """

    def __init__(self, benv: BatchedDetectorEnv, spec: FeatureSpec, shield: bool = False,
                 reward_scale: float = 1.0, admission: bool = False) -> None:  # fmt: skip
        if not reward_scale > 0:
            raise ValueError(f"reward_scale must be positive, got {reward_scale}")
        self.benv, self.spec, self.reward_scale, self.admission = benv, spec, reward_scale, admission
        self.shield = None
        if shield or admission:
            from lotus.governor.baselines import StockPolicy
            from lotus.governor.shield import Shield

            self.shield = Shield(None, benv.actions, StockPolicy(benv.actions))
        self._clip = shield
        self._admit_t = np.zeros(benv.n)  # board time of each board's previous admission call, s
        self.skipped_frames = 0  # frames the admission rule skipped since construction
        self._raw_obs: np.ndarray | None = None
        self._dt_s = np.zeros(benv.n)  # simulated seconds each board's last step took
        self._since_s = np.zeros(benv.n)  # simulated seconds since each board's previous decision (skips included)
        self.action_map = spec.action_map(benv.actions)
        self.share_map = spec.share_map(benv.actions)
        self._serves = ServedShare(benv.n) if (self.share_map < 1.0).any() else None
        self.level_map = spec.level_map(benv.actions)
        self._allocator = None  # drl --levels: the per-stage allocator of the level outputs
        if spec.levels:
            from lotus.governor.mpc import level_allocator

            sc, res = benv.scenario, benv.res
            fps = 1.0 / res.period_s if res.period_s > 0 else 0.0
            self._allocator = level_allocator(benv.actions, res.board.name, sc.power_mode, sc.workload,
                                              res.deadline_ms, fps)  # fmt: skip
            self._allocator.reset(benv.n)
        if admission and (shield or self._serves is not None):
            raise ValueError("admission in the loop is for a policy without the clipping shield or served shares")
        obs_space = spaces.Box(-5.0, 5.0, shape=(spec.n_inputs,), dtype=np.float32)
        super().__init__(benv.n, obs_space, spaces.Discrete(len(self.action_map)))
        self._actions: np.ndarray | None = None

    def _inputs(self, obs: np.ndarray) -> np.ndarray:
        return np.clip(self.spec.inputs(obs, self.benv.actions), -5.0, 5.0).astype(np.float32)

    def reset(self) -> np.ndarray:
        seeds = list(self._seeds) if any(s is not None for s in self._seeds) else None
        obs = self.benv.reset(seed=seeds)
        self._reset_seeds()
        self._raw_obs = obs
        self._dt_s = np.zeros(self.num_envs)
        self._since_s = np.zeros(self.num_envs)
        self._admit_t = np.zeros(self.num_envs)
        if self._serves is not None:
            self._serves.reset(np.ones(self.num_envs, dtype=bool))
        if self.shield is not None:
            self.shield.reset(self.num_envs)
        if self._allocator is not None:
            self._allocator.reset(self.num_envs)
        return self._inputs(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.int64).reshape(-1)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        obs, reward, dones, infos = self._step_wait()
        if self.reward_scale != 1.0:
            reward = (reward * self.reward_scale).astype(np.float32)
        return obs, reward, dones, infos

    def _step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        assert self._actions is not None, "step_async first"
        joint = self.action_map[self._actions]
        if self.spec.hold_s <= 0:
            return self._stage_with_admission(joint) if self.admission else self._one_step(joint)
        if self.admission:
            return self._held_with_admission(joint)
        share = self.share_map[self._actions]
        total = np.zeros(self.num_envs, dtype=np.float32)
        elapsed = np.zeros(self.num_envs)
        ended = np.zeros(self.num_envs, dtype=bool)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        while True:
            if self._serves is not None and self._raw_obs is not None:
                at_frame = (self._raw_obs[:, IDX["stage2_next"]] < 0.5) & ~ended
                skip = self._serves.skip(at_frame, share)
                if skip.any():  # the skipped boards idle until their next camera frame (a drop)
                    _, reward, dones, step_infos = self._skip_step(skip)
                    self._add(skip, reward, dones, step_infos, total, elapsed, ended, infos)
            obs, reward, dones, step_infos = self._one_step(joint)
            live = ~ended
            total[live] += reward[live]
            for i in np.nonzero(dones & live)[0]:  # an episode ended inside the hold: that is the step's end
                infos[i] = step_infos[i]
            ended |= dones
            elapsed += self._dt_s
            if bool(np.all(ended | (elapsed >= self.spec.hold_s))):
                return obs, total, ended, infos

    def _held_with_admission(self, joint: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        """One held second of every board on ``joint`` ``[n]``, the admission rule asked at each camera frame."""
        assert self.shield is not None and self._raw_obs is not None
        n = self.num_envs
        total, elapsed = np.zeros(n, dtype=np.float32), np.zeros(n)
        ended = np.zeros(n, dtype=bool)
        infos: list[dict[str, Any]] = [{} for _ in range(n)]
        obs = self._inputs(self._raw_obs)
        for _ in range(MAX_SKIPS_PER_HOLD):
            live = ~ended & (elapsed < self.spec.hold_s)
            if not live.any():
                break
            refused = self._refused(live)
            if refused.any():  # these boards idle until their next camera frame (a drop), then are asked again
                obs, reward, dones, step_infos = self._skip_step(refused)
                self._add(refused, reward, dones, step_infos, total, elapsed, ended, infos)
            run = live & ~refused
            if run.any():
                obs, reward, dones, step_infos = self._one_step(joint, active=run)
                self._add(run, reward, dones, step_infos, total, elapsed, ended, infos)
        return obs, total, ended, infos

    def _refused(self, boards: np.ndarray) -> np.ndarray:
        """Which of ``boards`` (bool ``[n]``) the admission rule refuses the camera frame about to
        start; asks the rule at every board that is at a camera frame."""
        assert self.shield is not None and self._raw_obs is not None
        core, n = self.benv.core, self.num_envs
        gap_c = core.shutdown - np.broadcast_to(np.asarray(core.trip, dtype=np.float64), (n,))
        refused = np.zeros(n, dtype=bool)
        t_now = np.asarray(core.t, dtype=np.float64)
        for i in np.flatnonzero(boards & (self._raw_obs[:, IDX["stage2_next"]] < 0.5)).tolist():
            refused[i] = not self.shield.admit_row(i, self._raw_obs[i], float(t_now[i] - self._admit_t[i]),
                                                   float(gap_c[i]))  # fmt: skip
            self._admit_t[i] = t_now[i]
        self.skipped_frames += int(np.count_nonzero(refused))
        return refused

    def _stage_with_admission(self, joint: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        """One step of a per-stage policy: each board's stage decision on ``joint`` ``[n]``, or the
        skip of the frame the admission rule refuses."""
        n = self.num_envs
        refused = self._refused(np.ones(n, dtype=bool))
        total = np.zeros(n, dtype=np.float32)
        ended = np.zeros(n, dtype=bool)
        infos: list[dict[str, Any]] = [{} for _ in range(n)]
        obs = self._inputs(self._raw_obs) if self._raw_obs is not None else None
        for mask, stepper in ((refused, self._skip_step), (~refused, lambda m: self._one_step(joint, active=m))):
            if mask.any():
                obs, reward, dones, step_infos = stepper(mask)
                self._add(mask, reward, dones, step_infos, total, np.zeros(n), ended, infos)
        assert obs is not None
        return obs, total, ended, infos

    def _add(self, boards: np.ndarray, reward: np.ndarray, dones: np.ndarray, step_infos: list[dict],
             total: np.ndarray, elapsed: np.ndarray, ended: np.ndarray, infos: list[dict]) -> None:  # fmt: skip
        """Add a (masked) step of ``boards`` to the held step's sums, in place."""
        total[boards] += reward[boards]
        elapsed[boards] += self._dt_s[boards]
        for i in np.nonzero(dones & boards)[0]:  # an episode ended inside the hold: that is the step's end
            infos[i] = step_infos[i]
        ended |= dones & boards

    def _levelled(self, joint: np.ndarray, active: np.ndarray | None) -> np.ndarray:
        """``joint`` ``[n]`` with each board on a level output given its allocator's clocks for this stage."""
        assert self._allocator is not None and self._actions is not None and self._raw_obs is not None
        level = self.level_map[self._actions]
        rows = level > 0 if active is None else (level > 0) & active
        if not rows.any():
            return joint
        self._allocator.margins[rows] = level[rows]
        return np.where(rows, self._allocator.act(self._raw_obs, self._since_s, rows=rows), joint)

    def _one_step(
        self, joint: np.ndarray, active: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        """One stage decision of every board (or of the ``active`` ones) with joint actions ``joint`` ``[n]``
        (a board on a level output: its allocator's clocks)."""
        if self._allocator is not None and self._raw_obs is not None:
            joint = self._levelled(joint, active)
        if self._clip and self.shield is not None and self._raw_obs is not None:
            joint = self.shield.clip(self._raw_obs, joint, self._since_s)
        step = self.benv.step(joint) if active is None else self.benv.step(joint, active=active)
        obs, reward, terminated, truncated, out = step
        dones = terminated | truncated
        dt = np.where(dones, 0.0, out["dt_s"])  # a restarted board's episode starts now
        self._dt_s = dt if active is None else np.where(active, dt, self._dt_s)
        self._since_s = dt if active is None else np.where(active, dt, self._since_s)
        return self._after(obs, reward, terminated, truncated, dones)

    def _skip_step(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        """Skip the pending camera frame of the boards in ``mask`` (the others do not move)."""
        obs, reward, terminated, truncated, out = self.benv.skip_frames(mask)
        dones = (terminated | truncated) & mask
        self._dt_s = np.where(mask, np.where(dones, 0.0, out["dt_s"]), self._dt_s)
        # a skip is no decision: the next decision's time since the previous one includes it (as in the daemon)
        self._since_s = np.where(mask, np.where(dones, 0.0, self._since_s + out["dt_s"]), self._since_s)
        return self._after(obs, reward, terminated, truncated, dones)

    def _after(
        self, obs: np.ndarray, reward: np.ndarray, terminated: np.ndarray, truncated: np.ndarray, dones: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        """Keep the raw observations, restart the finished boards' shield and share, build SB3's infos."""
        self._raw_obs = obs
        if self._serves is not None:
            self._serves.reset(dones)
        if self.shield is not None and dones.any():
            self.shield.reset_boards(dones)
            self._admit_t[dones] = 0.0  # a restarted board's clock starts at 0
        if self._allocator is not None and dones.any():
            self._allocator.reset_rows(dones)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if dones.any():
            final = self._inputs(self.benv.final_obs)
            for i in np.nonzero(dones)[0]:
                infos[i]["terminal_observation"] = final[i]
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return self._inputs(obs), reward.astype(np.float32), dones, infos

    def close(self) -> None:
        return None

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self.benv, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.benv, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
        return [getattr(self.benv, method_name)(*args, **kwargs)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._indices(indices))

    def _indices(self, indices: Any) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        return [indices] if isinstance(indices, int) else list(indices)
