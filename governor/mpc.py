"""``mpc``: a model-based clock controller, the bar a learned governor has to clear.

It sees only what a board shows (the shared observation) plus the profiles it is told about (in
held-out board variants those are the *nominal* ones, as on a real board). At every decision:

1. **Latency model.** Each candidate joint clock ``a`` gets a predicted stage time from the
   workload cost model, ``cpu_mcycles / f_cpu + gpu_mcycles / f_gpu + mem_ms``, times an online
   correction ``k`` (an EMA of measured / predicted stage-1 time, so a slower board or a heavier
   workload is learnt within a few frames). Stage 2 uses the known proposal count; at the stage-1
   decision the last frame's count stands in for the next.
2. **Latency target.** The frame must end before the next camera frame is due (or the camera
   moves on: a drop) and within the deadline: ``target = margin x min(deadline, period)``.
3. **Thermal model over a receding horizon.** A linearised form of the profile's RC network:
   the hotter die after ``horizon_s`` seconds at candidate power ``P`` is predicted as
   ``T + R_die (P - P_now) + (slope + (P - P_now) / C_sink) * horizon_s`` (the die's fast rise
   over the heatsink, plus the heatsink's drift; the drift is the observed slope averaged over
   ``DRIFT_TAU_S``).
   A candidate is admissible when that stays ``thermal_margin_c`` below the trip point.
4. **Choice**, by ``goal``:

   - ``latency`` (``mpc``, the default: what the suite's objective pays for): the candidate with
     the shortest predicted stage among those whose average power fits a **power budget**, the
     lower power of equals. The budget is a slow PI loop on the hotter die: it grows while the die
     (plus its slope over ``BUDGET_LOOKAHEAD_S``) is under ``trip - thermal_margin_c`` and shrinks
     above it (``BUDGET_KP_PER_C``, ``BUDGET_KI_PER_C_S``, as a share of the candidates' power range),
     starting at the top clocks.
     Drops and misses cost a full deadline each in the objective and energy costs nothing, so in a
     cool room this is the top clocks; in a hot one it levels latency at the power the heatsink
     holds, instead of swinging between top and bottom clocks (the variance costs too).
   - ``energy`` (``mpc-energy``): the lowest-power admissible candidate that meets the latency
     target. When none does, the heatsink cannot sustain that target: it takes the cheapest
     candidate that meets it and relaxes the target by ``STRETCH_UP_PER_S`` per second
     (tightening again at ``STRETCH_DOWN_PER_S`` once the prediction is ``STRETCH_BAND_C``
     cooler), so latency settles at a level the board can hold.

It is re-planned at every decision (receding horizon) with one vectorised pass over the action
table; its state is the correction ``k``, the smoothed drift and the target stretch.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lotus.core.schema import HEADROOM_SCALE_C, IDX, ActionTable
from lotus.envs.board import BoardProfile, load_board
from lotus.envs.physics import dynamic_power_table, segment_power, stage_activity
from lotus.envs.workload import WorkloadProfile, load_workload
from lotus.governor.protocol import NOMINAL_DECISION_S, PolicyBase, TimeStep

CORRECTION_ALPHA = 0.2  # weight of a new measured/predicted ratio in the latency correction
LATENCY_MARGIN = 0.92  # plan frames to end at this fraction of min(deadline, frame period)
HORIZON_S = 20.0  # thermal look-ahead, s
THERMAL_MARGIN_C = 3.0  # keep the predicted hotter die this far below the trip point, C
STRETCH_UP_PER_S = 0.02  # the latency target relaxes by 2 %/s while the thermal limit binds
STRETCH_DOWN_PER_S = 0.01  # and tightens by 1 %/s once the prediction is STRETCH_BAND_C cooler
STRETCH_BAND_C = 2.0
STRETCH_MAX = 2.0
DRIFT_TAU_S = 10.0  # the heatsink drift is the observed slope averaged over this long, s
BUDGET_KP_PER_C = 0.1  # latency goal: budget (share of the candidates' power range) per C of headroom
BUDGET_KI_PER_C_S = 0.002  # and its integral gain, 1/(C s) (tried 0.005-0.01 and 3 s: worse in the enclosure)
BUDGET_LOOKAHEAD_S = 10.0  # the die's slope is projected this far ahead, s


class MpcPolicy(PolicyBase):
    """Model-predictive clock choice from the nominal profiles (see the module docstring).

    :param actions: the joint clock table of the board's power mode.
    :param board: board profile (name, path or object) the controller believes in.
    :param workload: workload profile the controller believes in.
    :param deadline_ms: the scenario's latency deadline, ms.
    :param fps: camera rate (0: back-to-back frames).
    :param power_mode: the nvpmodel mode (the profile's default when None).
    :param goal: ``latency`` (fastest admissible candidate) or ``energy`` (cheapest that meets the target).
    """

    name = "mpc"

    def __init__(
        self,
        actions: ActionTable,
        board: str | Path | BoardProfile = "orin-nano",
        workload: str | Path | WorkloadProfile = "frcnn-lite",
        deadline_ms: float | None = None,
        fps: float | None = None,
        power_mode: str | None = None,
        horizon_s: float = HORIZON_S,
        thermal_margin_c: float = THERMAL_MARGIN_C,
        latency_margin: float = LATENCY_MARGIN,
        goal: str = "latency",
    ) -> None:
        if goal not in ("latency", "energy"):
            raise ValueError(f"mpc goal must be 'latency' or 'energy', got {goal!r}")
        self.goal = goal
        self.name = "mpc" if goal == "latency" else "mpc-energy"
        self.actions = actions
        self.board = board if isinstance(board, BoardProfile) else load_board(board)
        self.workload = workload if isinstance(workload, WorkloadProfile) else load_workload(workload)
        mode = self.board.mode(power_mode)
        self.board = self.board.in_mode(power_mode)
        wl = self.workload
        self.deadline_ms = float(deadline_ms or wl.default_deadline_ms)
        fps = wl.default_fps if fps is None else fps
        self.period_ms = 1e3 / fps if fps > 0 else math.inf
        self.latency_margin = latency_margin  # every board's margin until :attr:`margins` is set
        self.horizon_s, self.margin_c = horizon_s, thermal_margin_c
        cpu_idx, gpu_idx = actions.split(np.arange(actions.n))
        self.f_c = np.asarray(actions.cpu_khz, dtype=float)[cpu_idx] / 1e6  # GHz per joint action
        self.tpc = mode.gpu_tpc_fraction  # GPU throughput share the mode leaves powered
        self.f_g = np.asarray(actions.gpu_hz, dtype=float)[gpu_idx] / 1e9 * self.tpc
        dyn_c, dyn_g = dynamic_power_table(self.board, mode)
        self.dyn_c = np.asarray(dyn_c)[cpu_idx]
        self.dyn_g = np.asarray(dyn_g)[gpu_idx]
        self.budget_w = mode.budget_w
        th = self.board.thermal
        self.r_die = max(th.r_cpu_sink_k_per_w, th.r_gpu_sink_k_per_w)
        self.c_sink = th.c_sink_j_per_k
        self.reset(1)

    def reset(self, n: int = 1) -> None:
        self.k = np.ones(n)
        self.drift = np.zeros(n)  # smoothed dT/dt of the hotter die, C/s
        self.stretch = np.ones(n)  # factor on the latency target while the thermal limit binds
        self._dt = np.full(n, NOMINAL_DECISION_S)
        self.budget_i = np.full(n, np.inf)  # integral part of the latency goal's power budget, W (inf: not started)
        # per board: the latency target's share of min(deadline, frame period) (a learned level sets it)
        self.margins = np.full(n, self.latency_margin)

    def reset_rows(self, rows: np.ndarray) -> None:
        """Restart the boards where ``rows`` (bool ``[n]``) is set, as :meth:`reset` does all of them."""
        self.k[rows], self.drift[rows], self.stretch[rows] = 1.0, 0.0, 1.0
        self._dt[rows], self.budget_i[rows] = NOMINAL_DECISION_S, np.inf

    def _stage_parts(self, stage2: bool, proposals: float) -> tuple[np.ndarray, np.ndarray, float]:
        """``(cpu_ms, gpu_ms, mem_ms)`` of one stage at every joint action (model, no correction)."""
        wl = self.workload
        if stage2:
            fx, pp = wl.stage2_fixed, wl.stage2_per_proposal
            cpu, gpu, mem = (fx.cpu_mcycles + pp.cpu_mcycles * proposals, fx.gpu_mcycles + pp.gpu_mcycles * proposals,
                             fx.mem_ms + pp.mem_ms * proposals)  # fmt: skip
        else:
            s1 = wl.stage1
            cpu, gpu, mem = s1.cpu_mcycles, s1.gpu_mcycles, s1.mem_ms
        return cpu / self.f_c, gpu / self.f_g, mem

    def _busy_power(self, cpu_ms: np.ndarray, gpu_ms: np.ndarray, mem_ms: float, t_c: float, t_g: float) -> np.ndarray:
        total = cpu_ms + gpu_ms + mem_ms
        act_c, act_g = stage_activity(self.board, cpu_ms, gpu_ms, total)
        p_c, p_g, p_s = segment_power(self.board, self.dyn_c, self.dyn_g, act_c, act_g, mem_ms / total, t_c, t_g,
                                      np.exp)  # fmt: skip
        return np.asarray(p_c + p_g + p_s)

    def act(self, obs: np.ndarray, dt_s: TimeStep = None, rows: np.ndarray | None = None) -> np.ndarray:
        """Joint clocks ``int64 [N]`` for ``obs`` ``[N, F]``; with ``rows`` (bool ``[N]``) only those
        boards decide (and move their state); the others' entries are the top clocks."""
        obs = np.atleast_2d(obs)
        out = np.full(obs.shape[0], self.actions.n - 1, dtype=np.int64)
        dts = np.broadcast_to(np.asarray(NOMINAL_DECISION_S if dt_s is None else dt_s, dtype=float), out.shape)
        which = range(obs.shape[0]) if rows is None else np.flatnonzero(rows).tolist()
        for i in which:
            row = obs[i]
            w = 1.0 - math.exp(-float(dts[i]) / DRIFT_TAU_S)
            self.drift[i] += w * (float(row[IDX["temp_slope"]]) - self.drift[i])
            self._dt[i] = float(dts[i])
            out[i] = self._act_one(i, row)
        return out

    def _act_one(self, i: int, o: np.ndarray) -> int:
        wl, deadline = self.workload, self.deadline_ms
        stage2 = o[IDX["stage2_next"]] > 0.5
        proposals = float(o[IDX["proposals"]]) * wl.max_proposals
        trip_proxy = 99.0  # headroom is relative to the trip: only differences to it matter below
        t_c = trip_proxy - float(o[IDX["cpu_headroom"]]) * HEADROOM_SCALE_C
        t_g = trip_proxy - float(o[IDX["gpu_headroom"]]) * HEADROOM_SCALE_C
        if stage2:  # the stage 1 just measured, at the clocks it really ran at, corrects the model
            measured = float(o[IDX["last_stage1"]]) * deadline
            wl1 = wl.stage1
            f_c = float(o[IDX["cpu_freq_frac"]]) * self.actions.cpu_khz[-1] / 1e6
            f_g = float(o[IDX["gpu_freq_frac"]]) * self.actions.gpu_hz[-1] / 1e9 * self.tpc
            predicted = wl1.cpu_mcycles / max(f_c, 1e-6) + wl1.gpu_mcycles / max(f_g, 1e-6) + wl1.mem_ms
            if measured > 0:
                self.k[i] += CORRECTION_ALPHA * (measured / predicted - self.k[i])
        c2, g2, m2 = self._stage_parts(True, proposals)
        s2_ms = c2 + g2 + m2
        if stage2:
            elapsed = (1.0 - float(o[IDX["budget_left"]])) * deadline
            pred = self.k[i] * s2_ms
            busy_ms = pred
            p_busy = self._busy_power(c2, g2, m2, t_c, t_g)
        else:
            c1, g1, m1 = self._stage_parts(False, 0.0)
            s1_ms = c1 + g1 + m1
            pred = self.k[i] * (s1_ms + s2_ms)
            elapsed = 0.0
            busy_ms = pred
            p_busy = self._busy_power(c1, g1, m1, t_c, t_g)
        duty = np.minimum(busy_ms / self.period_ms, 1.0) if math.isfinite(self.period_ms) else np.ones_like(busy_ms)
        p_idle = self._busy_power(np.zeros_like(s2_ms), np.zeros_like(s2_ms), 1e-9, t_c, t_g)
        p_avg = duty * p_busy + (1.0 - duty) * p_idle
        p_now = float(o[IDX["power"]]) * self.budget_w
        slope = float(self.drift[i])
        hot_now = max(t_c, t_g)
        dp = p_avg - p_now
        t_pred = hot_now + self.r_die * dp + (slope + dp / self.c_sink) * self.horizon_s
        limit = trip_proxy - self.margin_c
        if self.goal == "latency":
            return self._fastest_in_budget(i, pred, p_avg, limit - hot_now - slope * BUDGET_LOOKAHEAD_S)
        target_ms = float(self.margins[i]) * min(deadline, self.period_ms) * self.stretch[i]
        meets = pred <= target_ms - (elapsed if stage2 else 0.0)
        good = meets & (t_pred <= limit)
        if good.any():
            choice = int(np.flatnonzero(good)[np.argmin(p_avg[good])])
        elif meets.any():  # the target is too fast for the heatsink: cheapest that meets it, relax it
            choice = int(np.flatnonzero(meets)[np.argmin(p_avg[meets])])
        else:
            choice = int(np.argmin(pred))
        dt = float(self._dt[i])
        if t_pred[choice] > limit:
            self.stretch[i] = min(self.stretch[i] * (1.0 + STRETCH_UP_PER_S * dt), STRETCH_MAX)
        elif t_pred[choice] < limit - STRETCH_BAND_C:
            self.stretch[i] = max(self.stretch[i] * (1.0 - STRETCH_DOWN_PER_S * dt), 1.0)
        return choice

    def _fastest_in_budget(self, i: int, pred: np.ndarray, p_avg: np.ndarray, headroom_c: float) -> int:
        """Latency goal: the shortest predicted stage whose power fits the PI budget (lower power of equals)."""
        if not math.isfinite(self.budget_i[i]):
            self.budget_i[i] = 1.0
        dt = float(self._dt[i])
        # integral with anti-windup, as a share of the candidates' power range [0, 1]
        self.budget_i[i] = min(max(self.budget_i[i] + BUDGET_KI_PER_C_S * headroom_c * dt, 0.0), 1.0)
        share = self.budget_i[i] + BUDGET_KP_PER_C * min(headroom_c, 0.0)
        p_min, p_max = float(p_avg.min()), float(p_avg.max())
        fits = p_avg <= p_min + share * (p_max - p_min) + 1e-9
        if not fits.any():
            return int(np.argmin(p_avg))
        idx = np.flatnonzero(fits)
        order = np.lexsort((p_avg[idx], np.round(pred[idx], 3)))
        return int(idx[order[0]])


def level_allocator(actions: ActionTable, board: str, power_mode: str | None, workload: str,
                    deadline_ms: float | None, fps: float | None) -> MpcPolicy:  # fmt: skip
    """The per-stage allocator a learned latency level drives (``drl --levels``, training and daemon alike):
    ``mpc-energy`` on the nominal profiles (``deadline_ms``, ``fps`` None: the workload's), its
    :attr:`MpcPolicy.margins` set per board to the level."""
    return MpcPolicy(actions, board=board, workload=workload, deadline_ms=deadline_ms, fps=fps,
                     power_mode=power_mode, goal="energy")  # fmt: skip
