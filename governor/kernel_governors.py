"""Ports of the two kernel governors a Jetson runs without lotus, as timer-driven state machines.

Both are written from the algorithms as L4T documents and implements them (the facts and
constants are collected, with sources, in ``shared/reference/physics-sources.md`` section 4):

- :class:`Podgov`: ``nvhost_podgov``, the GPU devfreq governor (L4T 35/36
  ``drivers/devfreq/governor_pod_scaling.c``). Polled every 25 ms; per poll an exponential average
  of busy cycles (``smooth`` 10); a change at most every ``block_window`` 50 ms; the boost is
  proportional to ``bias`` x (busyness - ``load_target`` 700 per mille), capped at f_max / 3, or a
  jump of f_max / 3 when the instantaneous load exceeds ``load_max`` 900; the result is averaged
  (``damp`` 7 of 10 on the new value, 10 of 10 after a jump) and rounded up to a table clock.
  Busy time counts every cycle the graphics engine is active, memory stalls included (the PMU's
  engine-level idle counter), so the caller passes the whole GPU-active time.
- :class:`Schedutil`: the CPU governor (``kernel/sched/cpufreq_schedutil.c``) on PELT
  utilisation: util decays and grows with a 32 ms half-life, frequency-invariant (a task at
  half the top clock accrues half the utilisation); next clock = lowest table clock >=
  1.25 x f_max x util / 1024; at most one change per ``rate_limit_s`` 10 ms (T234: 300 us
  transition latency x 1000, capped at 10 ms).

Each is advanced with :meth:`tick` at its own timer in simulated (or wall) time, with the busy
fraction of the elapsed window; neither depends on the detector's stage boundaries.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lotus.core.schema import IDX, ActionTable
from lotus.governor.protocol import NOMINAL_DECISION_S, PolicyBase, TimeStep

PODGOV_POLL_S = 0.025
SCHEDUTIL_RATE_LIMIT_S = 0.010
PELT_HALF_LIFE_S = 0.032
PELT_MAX = 1024.0


@dataclass(frozen=True)
class PodgovParams:
    """Tunables of ``nvhost_podgov`` (L4T defaults), loads in per mille."""

    load_max: int = 900
    load_target: int = 700
    bias: int = 80
    smooth: int = 10
    damp: int = 7
    block_window_s: float = 0.050
    poll_s: float = PODGOV_POLL_S


class Podgov:
    """``nvhost_podgov`` over a GPU clock table in Hz; :meth:`tick` once per poll window.

    :param table_hz: the GPU clocks the power mode allows, ascending.
    """

    def __init__(self, table_hz: Sequence[int], params: PodgovParams | None = None) -> None:
        self.table_mhz = [int(f) / 1e6 for f in table_hz]
        self.p = params or PodgovParams()
        self.reset(len(self.table_mhz) - 1)

    def reset(self, index: int) -> None:
        """Start at table entry ``index`` with empty averages."""
        self.index = index
        f = self.table_mhz[index]
        self.cycles_avg = 0.0
        self.freq_avg = f
        self.last_scale_s = -math.inf

    def tick(self, now_s: float, busy_frac: float) -> int:
        """One poll: ``busy_frac`` of the window the GPU was active. Returns the table index to run at."""
        p = self.p
        f_cur = self.table_mhz[self.index]
        busy = min(max(busy_frac, 0.0), 1.0)
        self.cycles_avg = (p.smooth * self.cycles_avg + f_cur * busy) / (p.smooth + 1)
        rt_load = 1000.0 * busy
        if now_s - self.last_scale_s < p.block_window_s - 1e-9:
            return self.index
        f_max = self.table_mhz[-1]
        busyness = 1000.0 * self.cycles_avg / f_cur
        damp = p.damp
        if rt_load > p.load_max:
            boost = f_max / 3.0
            damp = 10
        else:
            boost = min(p.bias * f_cur * (busyness - p.load_target) / (100.0 * p.load_target), f_max / 3.0)
        res = f_cur + boost
        self.freq_avg = (p.smooth * self.freq_avg + res) / (p.smooth + 1)
        out = (damp * res + (10 - damp) * self.freq_avg) / 10.0
        out = min(max(out, self.table_mhz[0]), f_max)
        index = min(bisect_left(self.table_mhz, out - 1e-9), len(self.table_mhz) - 1)  # round up
        if index != self.index:
            self.index = index
            self.last_scale_s = now_s
        return self.index


class Schedutil:
    """schedutil on PELT utilisation over a CPU clock table in kHz; :meth:`tick` per update.

    :param table_khz: the CPU clocks the power mode allows, ascending.
    """

    def __init__(self, table_khz: Sequence[int], rate_limit_s: float = SCHEDUTIL_RATE_LIMIT_S) -> None:
        self.table = [int(f) for f in table_khz]
        self.rate_limit_s = rate_limit_s
        self.reset(len(self.table) - 1)

    def reset(self, index: int, util: float = 0.0) -> None:
        self.index = index
        self.util = util
        self.last_update_s = -math.inf

    def accrue(self, dt_s: float, running_frac: float) -> None:
        """PELT over ``dt_s`` seconds during which the task ran ``running_frac`` of the time at the current clock."""
        if dt_s <= 0:
            return
        decay = 0.5 ** (dt_s / PELT_HALF_LIFE_S)
        invariant = min(max(running_frac, 0.0), 1.0) * self.table[self.index] / self.table[-1]
        self.util = self.util * decay + PELT_MAX * invariant * (1.0 - decay)

    def tick(self, now_s: float, dt_s: float, running_frac: float) -> int:
        """Accrue ``dt_s`` of history, then pick the clock (at most once per rate limit)."""
        self.accrue(dt_s, running_frac)
        if now_s - self.last_update_s < self.rate_limit_s - 1e-9:
            return self.index
        target = 1.25 * self.table[-1] * self.util / PELT_MAX
        index = min(bisect_left(self.table, target - 1e-6), len(self.table) - 1)
        self.last_update_s = now_s
        self.index = index
        return self.index


class KernelStockPolicy(PolicyBase):
    """``stock``: :class:`Schedutil` for the CPU and :class:`Podgov` for the GPU, on their own timers.

    Each board keeps its own simulated (or wall) time from the ``dt_s`` of every call; podgov polls
    at every 25 ms boundary crossed since the previous call and schedutil accrues PELT over the
    whole interval, each with the busy fraction the observation reports for that interval. The
    clocks they choose take effect at the next call, so a decision can lag a timer by up to one
    stage (the simulator changes clocks only at stage boundaries). The current clocks are read
    back from the observation, so a firmware cap is what the governors see, as on a board.
    """

    name = "stock"

    def __init__(self, actions: ActionTable) -> None:
        self.actions = actions
        self.reset(1)

    def reset(self, n: int = 1) -> None:
        self.cpu = [Schedutil(self.actions.cpu_khz) for _ in range(n)]
        self.gpu = [Podgov(self.actions.gpu_hz) for _ in range(n)]
        self.t_s = [0.0] * n

    def act(self, obs: np.ndarray, dt_s: TimeStep = None) -> np.ndarray:
        obs = np.atleast_2d(obs)
        if obs.shape[0] != len(self.cpu):
            self.reset(obs.shape[0])
        dts = np.broadcast_to(np.asarray(NOMINAL_DECISION_S if dt_s is None else dt_s, dtype=float), obs.shape[:1])
        out = np.empty(obs.shape[0], dtype=np.int64)
        cpu_top, gpu_top = self.actions.cpu_khz[-1], self.actions.gpu_hz[-1]
        for i, o in enumerate(obs):
            dt = float(dts[i]) if math.isfinite(float(dts[i])) and dts[i] > 0 else 0.0
            t0, t1 = self.t_s[i], self.t_s[i] + dt
            self.t_s[i] = t1
            c_idx = self.actions.nearest(float(o[IDX["cpu_freq_frac"]]) * cpu_top, 0.0)
            g_idx = self.actions.nearest(0.0, float(o[IDX["gpu_freq_frac"]]) * gpu_top) // self.actions.n_cpu
            sched, pod = self.cpu[i], self.gpu[i]
            sched.index, pod.index = c_idx % self.actions.n_cpu, g_idx
            cpu = sched.tick(t1, dt, float(o[IDX["cpu_util"]]))
            poll = pod.p.poll_s
            k = math.floor(t0 / poll + 1e-9) + 1
            while k * poll <= t1 + 1e-12:
                pod.tick(k * poll, float(o[IDX["gpu_util"]]))
                k += 1
            out[i] = self.actions.index(cpu, pod.index)
        return out
