"""An upper bound for governors: it knows the simulator's model and the future.

At each frame the oracle knows the frame's proposal count and the jitter the simulator is
about to draw, and picks the (stage-1, stage-2) clock pair whose frame latency comes closest
to a target ``L`` from below (slower clocks draw less power), ties broken by predicted energy.
A bisection over full episodes picks the lowest ``L`` for which the board never comes within
``margin_c`` of its trip point: a constant latency at the least heat is what a perfect stable
governor would deliver. It reads
the simulator's internals, so it only exists in the simulator.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lotus.envs.detector_env import TwoStageDetectorEnv
from lotus.envs.ops import SCALAR, normal
from lotus.envs.physics import segment_power, stage_activity
from lotus.envs.scenario import Scenario
from lotus.governor.rollout import Recording, episode_frames_for, run_env

ENERGY_WEIGHT_MS_PER_MJ = 0.02


class OracleController:
    """Chooses clocks from the true simulator state for a latency target ``target_ms``."""

    name = "oracle"

    def __init__(self, env: TwoStageDetectorEnv, target_ms: float) -> None:
        self.env, self.target_ms = env, target_ms
        res = env.res
        a = res.actions
        idx = np.arange(a.n)
        self.c_idx, self.g_idx = idx % a.n_cpu, idx // a.n_cpu
        self.cpu_ghz, self.gpu_ghz = np.asarray(res.cpu_ghz), np.asarray(res.gpu_ghz)
        self.dyn_c, self.dyn_g = np.asarray(res.dyn_cpu_w), np.asarray(res.dyn_gpu_w)
        self._plan2: int | None = None

    def _stage_costs(self, stage: int, counter: int) -> tuple[np.ndarray, np.ndarray]:
        """Predicted time (ms) and energy (J) of ``stage`` for every joint action."""
        core, res = self.env.core, self.env.res
        wl, b = res.workload, res.board
        fc = self.cpu_ghz[np.minimum(self.c_idx, core.cap_c)]
        fg = self.gpu_ghz[np.minimum(self.g_idx, core.cap_g)]
        jitter = np.exp(wl.jitter_sigma * normal(core.key, counter, SCALAR)) * core.wl_scale
        if stage == 1:
            c = wl.stage1
            cpu, gpu, mem = c.cpu_mcycles / fc, c.gpu_mcycles / fg, c.mem_ms + 0 * fc
        else:
            fx, pp, n = wl.stage2_fixed, wl.stage2_per_proposal, core.proposals
            cpu = (fx.cpu_mcycles + pp.cpu_mcycles * n) / fc
            gpu = (fx.gpu_mcycles + pp.gpu_mcycles * n) / fg
            mem = fx.mem_ms + pp.mem_ms * n + 0 * fc
        cpu, gpu, mem = cpu * jitter, gpu * jitter, mem * jitter
        t = cpu + gpu + mem
        fc_i, fg_i = np.minimum(self.c_idx, core.cap_c), np.minimum(self.g_idx, core.cap_g)
        act_c, act_g = stage_activity(b, cpu, gpu, t)
        p_c, p_g, p_s = segment_power(b, self.dyn_c[fc_i], self.dyn_g[fg_i], act_c, act_g, mem / t,
                                      core.th_c + core.amb, core.th_g + core.amb, np.exp)  # fmt: skip
        power = p_c + p_g + p_s
        return t, power * t * 1e-3

    def act(self) -> int:
        core = self.env.core
        if core.phase == 0:  # before stage 1: plan both stages
            t1, e1 = self._stage_costs(1, core.counter)
            t2, e2 = self._stage_costs(2, core.counter + 1)
            total_t = t1[:, None] + t2[None, :]
            cost = self._cost(total_t, e1[:, None] + e2[None, :], self.target_ms)
            flat = int(np.argmin(cost)) if np.isfinite(cost).any() else int(np.argmin(total_t))
            a1, self._plan2 = divmod(flat, len(t2))
            return a1
        t2, e2 = self._stage_costs(2, core.counter)
        budget = self.target_ms - core.stage1_ms
        cost = self._cost(t2, e2, budget)
        return int(np.argmin(cost)) if np.isfinite(cost).any() else int(np.argmin(t2))

    @staticmethod
    def _cost(t_ms: np.ndarray, e_j: np.ndarray, budget_ms: float) -> np.ndarray:
        """Slack under the budget (ms) plus energy (0.02 ms per mJ); infeasible = inf."""
        return np.where(t_ms <= budget_ms, (budget_ms - t_ms) + ENERGY_WEIGHT_MS_PER_MJ * e_j * 1e3, np.inf)


def oracle_rollout(
    scenario: Scenario,
    duration_s: float,
    seed: int = 0,
    margin_c: float = 1.0,
    iterations: int = 10,
    progress: Callable[[float], None] | None = None,
) -> tuple[Recording, float]:
    """The oracle's recording and its latency target, found by bisection over full episodes."""
    scenario = scenario.model_copy(update={"decision": "stage"})
    probe = TwoStageDetectorEnv(scenario)
    fps = probe.res.period_s and 1.0 / probe.res.period_s
    scenario = scenario.model_copy(update={"episode_frames": episode_frames_for(duration_s, fps)})
    limit = (scenario.trip_c or probe.res.board.throttling.trip_c) - margin_c
    lo, hi = 5.0, 4.0 * probe.res.deadline_ms
    best: tuple[Recording, float] | None = None
    for i in range(iterations + 1):
        target = hi if i == 0 else 0.5 * (lo + hi)
        env = TwoStageDetectorEnv(scenario)
        ctrl = OracleController(env, target)

        def decide(_obs: np.ndarray, _dt_s: float, c: OracleController = ctrl) -> int:
            return c.act()

        rec = run_env(env, decide, "oracle", seed, duration_s, stop_above_c=limit)
        safe = not rec.aborted
        if safe:
            hi, best = target, (rec, target)
        else:
            lo = target
        if progress is not None:
            progress(duration_s / (iterations + 1))
    if best is None:
        raise RuntimeError("the oracle found no safe latency target: the scenario overheats even at min clocks")
    rec, target = best
    # when heat never binds, the target sinks below what the board can reach: report what it achieved
    return rec, min(target, float(rec.frames["latency_ms"].max()))
