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
