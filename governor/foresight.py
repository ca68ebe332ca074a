"""The foresight reference: the simulator's exact model and the whole future, optimising the reported objective.

It is not a governor a board could run: it reads the simulator's internals (true temperatures,
caps, the proposal trace and the jitter the simulator is about to draw) and exists only in the
simulator, as the bar no policy should clear. Every run it is part of is compared with it, and a
run that beats it is flagged (``beats_foresight`` in :mod:`lotus.governor.evaluate`).

**What it optimises.** The reported Lotus objective (:mod:`lotus.governor.metrics`) is
``mean + ALPHA * var + deadline * miss_fraction`` over every camera frame. With ``mu`` the mean
latency, ``mean + ALPHA * var`` is the frame average of ``L + ALPHA * (L - mu)^2``, so the
objective is a sum of per-frame terms once ``mu`` is fixed, coupled over time only through heat.
That coupling is priced by a Lagrange multiplier ``lam`` (ms per J) on the energy drawn, the
source of heat (Lagrangian relaxation of the thermal constraint). With a camera the frame period
is fixed, so what a choice adds is the energy above what the board would draw idling at its
lowest clocks over the same time (otherwise racing to idle always looks cheapest).

**Per frame** (exact): before stage 1, for every pair (stage-1 clocks, stage-2 clocks) of the
mode's table it computes the frame's latency ``L`` (camera wait, clock-change stalls, both
stages with the frame's true proposal count and jitter, at the firmware caps) and energy ``E``,
and takes the pair minimising ``L + ALPHA (L - mu)^2 + deadline [L > deadline] + lam E``, with
``mu`` the running mean latency of the run; before stage 2 it re-plans stage 2 alone with the
stage-1 time it really took. Only Pareto-efficient clocks per stage (no other is both faster and
cheaper) are paired, which makes this a few hundred pairs per frame.

**Skipping** (as the shield's admission rule and a served-share ``drl`` may): before stage 1 it
also prices skipping the frame, a miss (``deadline``) that leaves the mean latency at ``mu`` and
idles the board at its clocks until the next camera frame (``lam`` times that energy), and skips
when that is cheaper than the best pair. So with ``lam = 0`` it skips only frames it cannot finish
in time (serving them adds latency and variance to the same miss), and in a hot room it trades
frames for heat when the price says so.

**Over the run**: a search over ``lam`` with full-length rollouts, keeping the rollout with the
lowest objective (a shutdown ranks last). ``lam = 0`` comes first: the best frame every time,
heat ignored, then once more with ``mu`` fixed at that run's mean latency; if the first run never
throttles that is all (2 rollouts). Otherwise the prices of
:data:`LAM_GRID` are tried with the running mean as ``mu``; at the best price, fixed ``mu`` at
:data:`MU_FACTORS` times that run's mean latency; at the best pair, the price times
:data:`LAM_STEPS`: 12 rollouts per search (and a second search with skipping, see
:func:`foresight_rollout`). The search over ``mu`` is exact in principle: for any
``mu``, ``mean(L) + ALPHA mean((L - mu)^2) >= mean + ALPHA var`` with equality at the mean, so
the objective is the minimum over ``mu`` of frame-separable objectives.
One scalar price for the whole run is the limit of this reference: it spends the thermal budget
at a constant exchange rate, which is optimal for an energy budget and close to optimal for a peak
temperature when the room is steady. docs/simulator.md says more.

**Under the no-throttling constraint** (:data:`COOL_NAME`, ``foresight-cool``): the same search,
with the rollouts ranked first by their throttled share of the run and only then by the
objective, two more prices (:data:`COOL_LAM_GRID`) so that a price high enough to keep the die
under the trip is among those tried, and then a bisection for the lowest price that still never
throttles (:func:`_bisect_cool_price`; a grid price above it buys coolness with frames). It
answers "what could a policy that never throttles score here": issue 11 asks ``drl`` for 0 %
throttling, and the plain reference may throttle for a third of a hot run (as the firmware lets
it) to score lower.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

from lotus.envs.detector_env import TwoStageDetectorEnv
from lotus.envs.physics import segment_power, stage_activity
from lotus.envs.scenario import Scenario
from lotus.governor.metrics import ALPHA_PER_MS, recording_metrics
from lotus.governor.rollout import Recording, episode_frames_for, run_env

NAME = "foresight"  # the reference's policy name in evaluations
COOL_NAME = "foresight-cool"  # the reference under the no-throttling constraint
REFERENCES = (NAME, COOL_NAME)  # names that are references, not policies: excluded from rankings and bests
LAM_GRID = (10.0, 50.0, 250.0, 1250.0)  # energy prices tried when lam = 0 heats the board, ms per J
COOL_LAM_GRID = LAM_GRID + (6250.0, 31250.0)  # with the no-throttling constraint: prices high enough to stay cool
MU_FACTORS = (0.8, 1.0, 1.3, 1.7)  # fixed mean latencies tried, times the best run's mean so far
LAM_STEPS = (1.0 / 3.0, 3.0)  # last round: the best price times these
COOL_BISECT_STEPS = 5  # with the constraint: bisections for the lowest price that keeps the run cool
COOL_ONSETS_C = (None, 6.0, 3.0)  # with the constraint: the price acts only within this of the trip (None: always)
MAX_ROLLOUTS = 2 + len(COOL_ONSETS_C) * (len(COOL_LAM_GRID) + COOL_BISECT_STEPS) + len(MU_FACTORS) + len(LAM_STEPS)


def pareto_front(t: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both ``t`` and ``e`` (ties keep the first), by ``t``."""
    order = np.lexsort((e, t))
    e_sorted = e[order]
    best_before = np.minimum.accumulate(np.concatenate(([np.inf], e_sorted[:-1])))
    return order[e_sorted < best_before]


class ForesightController:
    """Chooses clocks from the true simulator state at energy price ``lam`` (ms/J) around mean ``mu_ms``.

    ``mu_ms`` None: the running mean latency of the run so far. ``skips``: it may also skip a
    camera frame (:meth:`admit`), as the shield's admission rule and a served-share ``drl`` can.
    ``onset_c``: the price applies only while the hotter die is within this many degrees of the
    trip (0 below that); None: always.
    """

    name = "foresight"

    def __init__(self, env: TwoStageDetectorEnv, lam: float, mu_ms: float | None = None, skips: bool = True,
                 onset_c: float | None = None) -> None:  # fmt: skip
        self.env, self.lam, self.mu_ms, self.skips, self.onset_c = env, lam, mu_ms, skips, onset_c
        self._planned: tuple[int, int] | None = None  # the plan admit() made for the frame about to start
        res = env.res
        a = res.actions
        idx = np.arange(a.n)
        self.c_idx, self.g_idx = idx % a.n_cpu, idx // a.n_cpu
        self.cpu_ghz, self.gpu_speed = np.asarray(res.cpu_ghz), np.asarray(res.gpu_speed_ghz)
        self.dyn_c, self.dyn_g = np.asarray(res.dyn_cpu_w), np.asarray(res.dyn_gpu_w)
        act = res.board.actuation
        self.cpu_sw_ms, self.gpu_sw_ms = act.cpu_switch_us * 1e-3, act.gpu_switch_us * 1e-3
        self.deadline = res.deadline_ms
        self._plan2 = 0
        self._lat_sum, self._frames = 0.0, 0

    # -- exact costs ---------------------------------------------------------------------------
    def _price(self) -> float:
        """The energy price (ms/J) now: ``lam``, or 0 while the hotter die is further than ``onset_c`` from the trip."""
        if self.onset_c is None or self.lam == 0.0:
            return self.lam
        core = self.env.core
        hottest = max(float(np.max(core.th_c)), float(np.max(core.th_g))) + float(np.max(core.amb))
        return self.lam if hottest >= float(np.max(core.trip)) - self.onset_c else 0.0

    def _applied(self) -> tuple[np.ndarray, np.ndarray]:
        core = self.env.core
        return np.minimum(self.c_idx, core.cap_c), np.minimum(self.g_idx, core.cap_g)

    def _stage(self, stage: int, counter: int, fc: np.ndarray, fg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Time (ms) and energy (J) of ``stage`` at every joint action (applied indices ``fc``, ``fg``)."""
        core, res = self.env.core, self.env.res
        wl, b = res.workload, res.board
        jitter = core.jitter(counter) * core.wl_scale
        if stage == 1:
            c = wl.stage1
            cyc_c, cyc_g, mem = c.cpu_mcycles, c.gpu_mcycles, c.mem_ms
        else:
            fx, pp, n = wl.stage2_fixed, wl.stage2_per_proposal, core.proposals
            cyc_c, cyc_g = fx.cpu_mcycles + pp.cpu_mcycles * n, fx.gpu_mcycles + pp.gpu_mcycles * n
            mem = fx.mem_ms + pp.mem_ms * n
        cpu = cyc_c / self.cpu_ghz[fc] * jitter
        gpu = cyc_g / self.gpu_speed[fg] * jitter
        mem = np.full_like(cpu, mem * jitter)
        t = cpu + gpu + mem
        act_c, act_g = stage_activity(b, cpu, gpu, t)
        p_c, p_g, p_s = segment_power(b, self.dyn_c[fc], self.dyn_g[fg], act_c, act_g, mem / t,
                                      core.th_c + core.amb, core.th_g + core.amb, np.exp)  # fmt: skip
        power = p_c + p_g + p_s
        if self.env.res.period_s > 0:  # camera-paced: the time a stage saves is spent idling, not off
            power = power - self._idle_floor_w()
        return t, power * t * 1e-3

    def _idle_floor_w(self) -> float:
        """Power (W) of the board waiting for the camera at its lowest clocks, now."""
        core, b = self.env.core, self.env.res.board
        p = segment_power(b, self.dyn_c[0], self.dyn_g[0], b.cpu.idle_activity, b.gpu.idle_activity, 0.0,
                          core.th_c + core.amb, core.th_g + core.amb, math.exp)  # fmt: skip
        return float(sum(p))

    def _idle(self, wait_s: float, fc: np.ndarray, fg: np.ndarray) -> np.ndarray:
        """Energy (J) of waiting ``wait_s`` for the camera at each joint action's clocks, above the idle floor."""
        core, b = self.env.core, self.env.res.board
        p_c, p_g, p_s = segment_power(b, self.dyn_c[fc], self.dyn_g[fg], b.cpu.idle_activity, b.gpu.idle_activity,
                                      0.0, core.th_c + core.amb, core.th_g + core.amb, np.exp)  # fmt: skip
        return (p_c + p_g + p_s - self._idle_floor_w()) * wait_s

    def _stall_ms(self, fc: np.ndarray, fg: np.ndarray, from_c: np.ndarray | int, from_g: np.ndarray | int
                  ) -> np.ndarray:  # fmt: skip
        return (fc != from_c) * self.cpu_sw_ms + (fg != from_g) * self.gpu_sw_ms

    def _cost(self, latency_ms: np.ndarray, energy_j: np.ndarray, start_s: float) -> np.ndarray:
        """Per-frame objective terms (ms) of a frame whose stage 1 starts at ``start_s`` (board time, s).

        A late frame is a miss; a frame still running half a period after the next camera frame
        arrived makes the simulator drop that frame (and any later ones), a miss each.
        """
        if self.mu_ms is not None:
            mu = self.mu_ms
        else:
            mu = self._lat_sum / self._frames if self._frames else float(np.min(latency_ms))
        miss = np.where(latency_ms > self.deadline, self.deadline, 0.0)
        period = self.env.res.period_s
        if period > 0:
            overrun_s = start_s + latency_ms * 1e-3 - (self.env.core.arrival + period)
            miss = miss + self.deadline * np.maximum(np.floor(overrun_s / period + 0.5), 0.0)
        return latency_ms + ALPHA_PER_MS * (latency_ms - mu) ** 2 + miss + self._price() * energy_j

    # -- decisions -----------------------------------------------------------------------------
    def _plan_frame(self) -> tuple[int, int, float]:
        """Before stage 1: the best (stage-1, stage-2) joint actions for the frame, and its cost (ms)."""
        core = self.env.core
        fc, fg = self._applied()
        wait_s = max(core.arrival - core.t, 0.0)
        stall1 = np.maximum(self._stall_ms(fc, fg, core.app_c, core.app_g) - wait_s * 1e3, 0.0)
        t1, e1 = self._stage(1, core.counter, fc, fg)
        t1, e1 = t1 + stall1, e1 + self._idle(wait_s, fc, fg)
        t2, e2 = self._stage(2, core.counter + 1, fc, fg)
        p1, p2 = pareto_front(t1, e1), pareto_front(t2, e2)
        stall2 = self._stall_ms(fc[p2][None, :], fg[p2][None, :], fc[p1][:, None], fg[p1][:, None])
        latency = t1[p1][:, None] + t2[p2][None, :] + stall2  # from the start of stage 1, as the metrics count
        cost = self._cost(latency, e1[p1][:, None] + e2[p2][None, :], core.t + wait_s)
        i, j = divmod(int(np.argmin(cost)), len(p2))
        return int(p1[i]), int(p2[j]), float(cost[i, j])

    def admit(self, _obs: np.ndarray, _dt_s: float, _gap_c: float) -> bool:
        """Before stage 1 (with ``skips``): run the frame, or skip it when that costs the objective less.

        A skipped frame is a miss (``deadline``) and leaves the mean latency where it is (``mu``);
        the board idles at its present clocks until the next camera frame (``lam`` times that
        energy). A served one costs what :meth:`_cost` says of the best clock pair.
        """
        if not self.skips:
            return True
        core = self.env.core
        first, second, serve = self._plan_frame()
        period = self.env.res.period_s
        wait_s = max(core.arrival + period - core.t, 0.0) if period > 0 else max(core.last_latency * 1e-3, 1e-3)
        fc = np.array([min(core.req_c, core.cap_c)])
        fg = np.array([min(core.req_g, core.cap_g)])
        mu = self.mu_ms if self.mu_ms is not None else (self._lat_sum / self._frames if self._frames else 0.0)
        skip = self.deadline + mu + self._price() * float(self._idle(wait_s, fc, fg)[0])
        if self._frames and skip < serve:
            return False
        self._planned = (first, second)
        return True

    def act(self) -> int:
        core = self.env.core
        if core.phase == 0:  # before stage 1: plan the frame (admit may have done it already)
            first, self._plan2 = self._planned if self._planned is not None else self._plan_frame()[:2]
            self._planned = None
            return first
        fc, fg = self._applied()
        # before stage 2: re-plan it with the stage-1 time really taken
        elapsed = (core.t - core.frame_start) * 1e3
        t2, e2 = self._stage(2, core.counter, fc, fg)
        t2 = t2 + self._stall_ms(fc, fg, core.app_c, core.app_g)
        a2 = int(np.argmin(self._cost(elapsed + t2, e2, core.frame_start)))
        self._lat_sum += float(elapsed + t2[a2])
        self._frames += 1
        return a2


def _run(scenario: Scenario, duration_s: float, seed: int, lam: float, mu_ms: float | None,
         skips: bool = True, onset_c: float | None = None) -> Recording:  # fmt: skip
    env = TwoStageDetectorEnv(scenario)
    ctrl = ForesightController(env, lam, mu_ms, skips, onset_c)

    def decide(_obs: np.ndarray, _dt_s: float, c: ForesightController = ctrl) -> int:
        return c.act()

    return run_env(env, decide, "foresight", seed, duration_s, admit=ctrl.admit if skips else None)


def foresight_rollout(
    scenario: Scenario,
    duration_s: float,
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
    cool: bool = False,
) -> tuple[Recording, dict[str, float | None]]:
    """The foresight reference's best recording over its energy-price search, and what it chose.

    The search runs without skipping first. When its best run misses any frame (or shuts down),
    it runs again with skipping allowed, and the better of the two is kept (ties: the first), so
    the skip action can only lower the reference's objective.

    :param cool: rank the rollouts by throttled share first, then by objective
        (:data:`COOL_NAME`), over :data:`COOL_LAM_GRID`.
    :return: the recording with the lowest objective (a shutdown ranks last; with ``cool``, the
        least throttled first) and
        ``{"foresight_lam_ms_per_j": lam, "foresight_mu_ms": mu (None: the running mean),
        "foresight_onset_c": the price's onset below the trip (None: always priced),
        "foresight_rollouts": n, "foresight_skips": 1.0 if the kept run may skip else 0.0}``.
    """
    scenario = scenario.model_copy(update={"decision": "stage"})
    probe = TwoStageDetectorEnv(scenario)
    fps = 1.0 / probe.res.period_s if probe.res.period_s > 0 else 0.0
    scenario = scenario.model_copy(update={"episode_frames": episode_frames_for(duration_s, fps)})
    share = duration_s / (2 * MAX_ROLLOUTS)  # progress per rollout: two searches at most
    plain = _search(scenario, duration_s, seed, fps, False, progress, share, cool)
    runs = len(plain)
    key, lam, mu, onset, rec = min(plain, key=lambda item: item[0])
    skips = 0.0
    m = recording_metrics(rec, duration_s, fps)
    if m["shutdown"] or m["on_time_pct"] < 100.0:  # a miss to trade: try the skip action too
        skipping = _search(scenario, duration_s, seed, fps, True, progress, share, cool)
        runs += len(skipping)
        best_skip = min(skipping, key=lambda item: item[0])
        if best_skip[0] < key:
            key, lam, mu, onset, rec = best_skip
            skips = 1.0
    if progress is not None:  # the searches may stop early: account for the rollouts not run
        progress(max(0.0, duration_s - share * runs))
    return rec, {"foresight_lam_ms_per_j": lam, "foresight_mu_ms": mu, "foresight_onset_c": onset,
                 "foresight_rollouts": float(runs), "foresight_skips": skips}  # fmt: skip


RankKey = tuple[float, float]  # (throttled % or 0, objective ms; a shutdown: infinity), lower is better
Tried = tuple[RankKey, float, float | None, float | None, Recording]  # (key, lam, mu, onset_c, recording)


def _bisect_cool_price(tried: list[Tried], attempt: Callable[[float], Recording]) -> None:
    """Bisect (geometrically, :data:`COOL_BISECT_STEPS` times) for the lowest energy price that never throttles.

    ``tried`` holds the grid's rollouts at one price onset. The throttled share falls as the price
    rises, and by Lagrangian duality the lowest price that meets the constraint is the one that
    spends the whole thermal budget; a coarse grid overshoots it and buys coolness with frames.
    Nothing happens when no price of the grid kept the run cool.
    """
    cool = sorted(lam for key, lam, mu, _, _ in tried if mu is None and key[0] == 0.0 and lam > 0)
    hot = sorted(lam for key, lam, mu, _, _ in tried if mu is None and key[0] > 0.0 and lam > 0)
    if not cool:
        return
    hi = cool[0]
    lo = max((lam for lam in hot if lam < hi), default=hi / 5.0)
    for _ in range(COOL_BISECT_STEPS):
        mid = math.sqrt(lo * hi)
        rec = attempt(mid)
        if np.any(rec.steps["throttled"]) or rec.shutdown:
            lo = mid
        else:
            hi = mid


def _search(
    scenario: Scenario, duration_s: float, seed: int, fps: float, skips: bool,
    progress: Callable[[float], None] | None, share: float, cool: bool = False,
) -> list[Tried]:  # fmt: skip
    """One search over the energy price and the mean (see the module docstring): every rollout tried,
    as ``(rank key, lam, mu, onset_c, recording)``. The key is ``(0, objective)``, with ``cool``
    ``(throttled %, objective)``; a shutdown is ``(inf, inf)``. With ``cool`` the price is also
    tried gated to the last degrees before the trip (:data:`COOL_ONSETS_C`)."""
    tried: list[Tried] = []

    def attempt(lam: float, mu: float | None = None, onset_c: float | None = None) -> Recording:
        rec = _run(scenario, duration_s, seed, lam, mu, skips, onset_c)
        m = recording_metrics(rec, duration_s, fps)
        if m["shutdown"]:
            key = (math.inf, math.inf)
        else:
            key = (float(m["throttled_pct"]) if cool else 0.0, float(m["objective"]))
        tried.append((key, lam, mu, onset_c, rec))
        if progress is not None:
            progress(share)
        return rec

    def best() -> Tried:
        return min(tried, key=lambda item: item[0])

    first = attempt(0.0)
    if len(first.frames["latency_ms"]):  # the fixed point of mu: the first run's own mean
        attempt(0.0, float(np.mean(first.frames["latency_ms"])))
    if first.shutdown or np.any(first.steps["throttled"]):  # heat binds: search (lam, mu) on the objective
        for onset in COOL_ONSETS_C if cool else (None,):
            n = len(tried)
            for lam in COOL_LAM_GRID if cool else LAM_GRID:
                attempt(lam, None, onset)
            if cool:  # the lowest price that keeps the run cool: bisect between the grid's neighbours
                _bisect_cool_price(tried[n:], functools.partial(attempt, mu=None, onset_c=onset))
        _, lam, _, onset, rec = best()
        mean_ms = float(np.mean(rec.frames["latency_ms"])) if len(rec.frames["latency_ms"]) else 0.0
        for factor in MU_FACTORS:
            attempt(lam, factor * mean_ms, onset)
        _, lam, mu, onset, _ = best()
        for factor in LAM_STEPS:
            attempt(lam * factor if lam > 0 else LAM_GRID[0] * factor, mu, onset)
    return tried
