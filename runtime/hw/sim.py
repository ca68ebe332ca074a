"""The ``sim`` backend: a virtual board driven by the simulator's physics in wall-clock time.

It is what ``lotus serve`` falls back to when no real board is found, so the whole loop (sensors,
governor, clock writes, throttling, energy) runs on any machine. The thermal network, dynamic and
leakage power and the firmware throttle are those of :mod:`envs.core` / :mod:`envs.thermal` for a
board profile (``orin-nano`` by default); time advances with :func:`time.monotonic` (or an
injected clock in tests). Whether a stage is running comes from :meth:`SimBoard.note_activity`,
which real backends do not have (the pipeline calls it when present).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lotus.envs.board import BoardProfile, load_board
from lotus.envs.core import CPU_THREADS_SHARE, _volts
from lotus.envs.thermal import advance, coefficient_table
from lotus.runtime.hw.base import (
    BoardDescription,
    ClockDomainInfo,
    NvpMode,
    RailInfo,
    Snapshot,
    TripPoint,
    ZoneInfo,
    register_backend,
)

BUSY_GPU_SHARE = 0.6  # share of a busy stage the GPU is active (frcnn-like two-stage detector, assumption)
MEM_SHARE = 0.15  # share of a busy stage that is memory-bound (assumption)
MAX_SEGMENT_S = 0.25  # longer gaps are integrated in pieces so throttle polls are not skipped


class SimClockDomain:
    """One simulated clock domain; frequencies in kHz (CPU) or Hz (GPU), like the kernel's."""

    def __init__(self, board: SimBoard, name: str, kind: str, unit: str, table: tuple[int, ...]) -> None:
        self._board, self.name, self.kind, self.unit = board, name, kind, unit
        self._table = table
        self._req = len(table) - 1
        self._governor = "schedutil" if kind == "cpu" else "nvhost_podgov"
        self.method = "userspace"

    def available(self) -> tuple[int, ...]:
        return self._table

    def requested_index(self) -> int:
        return self._req

    def applied_index(self) -> int:
        cap = self._board._cap_c if self.kind == "cpu" else self._board._cap_g
        return min(self._req, cap)

    def current(self) -> int | None:
        return self._table[self.applied_index()]

    def limits(self) -> tuple[int | None, int | None]:
        return self._table[0], self._table[-1]

    def governor(self) -> str | None:
        return self._governor

    def governors(self) -> tuple[str, ...]:
        return ("userspace", "performance", "powersave", self._governor)

    def set_governor(self, name: str) -> None:
        self._governor = name

    def set(self, freq: int) -> None:
        if freq not in self._table:
            raise ValueError(f"{self.name}: {freq} {self.unit} is not one of {self._table}")
        with self._board._lock:
            self._board._advance_locked()
            self._req = self._table.index(freq)

    def set_limits(self, lo: int, hi: int) -> None:
        if lo > hi:
            raise ValueError(f"{self.name}: min {lo} > max {hi}")

    def info(self) -> ClockDomainInfo:
        return ClockDomainInfo(
            name=self.name, kind=self.kind, unit=self.unit, path=f"sim:{self.name}", available=self._table,
            current=self.current(), min=self._table[0], max=self._table[-1], governor=self._governor,
            governors=self.governors(), writable=True, method="userspace",
        )  # fmt: skip

    def state_record(self) -> dict[str, Any]:
        return {"kind": "sim", "name": self.name}


class SimBoard:
    """A simulated board (default: Orin Nano 15W, passive heatsink) advanced by elapsed wall time.

    :param profile: board profile name or YAML path (:func:`envs.board.load_board`).
    :param power_mode: nvpmodel mode name (the profile's default when None).
    :param ambient_c: room temperature, C; the board starts at it.
    :param clock: monotonic time source in seconds (tests inject a fake one).
    :param time_scale: simulated seconds per wall second (speeds up thermal tests).
    """

    backend = "sim"

    def __init__(
        self,
        profile: str | Path | BoardProfile = "orin-nano",
        power_mode: str | None = None,
        ambient_c: float = 25.0,
        clock: Callable[[], float] = time.monotonic,
        time_scale: float = 1.0,
        trip_c: float | None = None,
    ) -> None:
        self.profile = profile if isinstance(profile, BoardProfile) else load_board(profile)
        self.mode_name = power_mode or self.profile.default_mode
        mode = self.profile.mode(power_mode)
        self.sysfs_root = Path("/")
        self._clock, self._scale = clock, time_scale
        self._lock = threading.RLock()
        self.amb = ambient_c
        self.trip = trip_c or self.profile.throttling.trip_c
        self.budget_w = mode.budget_w
        cpu_hz = np.asarray(mode.cpu_freqs_khz, dtype=float) * 1e3
        gpu_hz = np.asarray(mode.gpu_freqs_hz, dtype=float)
        b = self.profile
        self._dyn_c = [float(x) for x in mode.cpu_online * b.cpu.c_eff_nf * 1e-9 * _volts(b.cpu, cpu_hz) ** 2 * cpu_hz]
        self._dyn_g = [float(x) for x in b.gpu.c_eff_nf * 1e-9 * _volts(b.gpu, gpu_hz) ** 2 * gpu_hz]
        self._coef = coefficient_table(b, 1.0)[0]  # passive heatsink, fan off
        self.domains: dict[str, SimClockDomain] = {
            "cpu0": SimClockDomain(self, "cpu0", "cpu", "kHz", tuple(mode.cpu_freqs_khz)),
            "gpu": SimClockDomain(self, "gpu", "gpu", "Hz", tuple(mode.gpu_freqs_hz)),
        }
        self._cap_c = len(mode.cpu_freqs_khz) - 1
        self._cap_g = len(mode.gpu_freqs_hz) - 1
        self.th_c = self.th_g = self.th_s = 0.0
        self.energy_j = 0.0
        self.power_w = 0.0
        self.busy = False
        self._busy_s = 0.0
        self._gpu_busy_s = 0.0
        self._util_window_start = 0.0
        self.throttle_events = 0
        self._t = self._now()
        self._util_window_start = self._t

    # --- physics -----------------------------------------------------------------------------
    def _now(self) -> float:
        return self._clock() * self._scale

    def _segment(self, dt: float) -> None:
        b = self.profile
        ci, gi = self.domains["cpu0"].applied_index(), self.domains["gpu"].applied_index()
        if self.busy:
            act_c = CPU_THREADS_SHARE * (1 - BUSY_GPU_SHARE - MEM_SHARE) + b.cpu.idle_activity
            act_g, mem = BUSY_GPU_SHARE + b.gpu.idle_activity, MEM_SHARE
        else:
            act_c, act_g, mem = b.cpu.idle_activity, b.gpu.idle_activity, 0.0
        p_c = self._dyn_c[ci] * act_c + b.cpu.static_w_25c * math.exp(b.cpu.leak_per_c * (self.th_c + self.amb - 25.0))
        p_g = self._dyn_g[gi] * act_g + b.gpu.static_w_25c * math.exp(b.gpu.leak_per_c * (self.th_g + self.amb - 25.0))
        p_s = b.base_w + b.mem_active_w * mem
        th = advance(self._coef, self.th_c, self.th_g, self.th_s, p_c, p_g, p_s, dt, math.exp)
        self.th_c, self.th_g, self.th_s = (float(x) for x in th)
        self.power_w = float(p_c + p_g + p_s)
        self.energy_j += self.power_w * dt
        if self.busy:
            self._busy_s += dt
            self._gpu_busy_s += dt * BUSY_GPU_SHARE

    def _poll(self) -> None:
        """Firmware step-wise throttle: one step down per poll while hot, one up once cool."""
        th = self.profile.throttling
        hottest = max(self.th_c, self.th_g) + self.amb
        was = self.throttled
        if hottest > self.trip:
            self._cap_c = max(self._cap_c - th.steps_per_poll, 0)
            self._cap_g = max(self._cap_g - th.steps_per_poll, 0)
        elif hottest < self.trip - th.hysteresis_c:
            self._cap_c = min(self._cap_c + 1, len(self.domains["cpu0"].available()) - 1)
            self._cap_g = min(self._cap_g + 1, len(self.domains["gpu"].available()) - 1)
        if self.throttled and not was:
            self.throttle_events += 1

    def _advance_locked(self) -> None:
        now = self._now()
        poll = self.profile.throttling.poll_s
        while now > self._t:
            nxt_poll = (math.floor(self._t / poll) + 1) * poll
            end = min(now, nxt_poll, self._t + MAX_SEGMENT_S)
            self._segment(end - self._t)
            self._t = end
            if end >= nxt_poll:
                self._poll()

    def advance(self) -> None:
        """Bring the physics up to now."""
        with self._lock:
            self._advance_locked()

    @property
    def throttled(self) -> bool:
        return (
            self._cap_c < len(self.domains["cpu0"].available()) - 1
            or self._cap_g < len(self.domains["gpu"].available()) - 1
        )

    def note_activity(self, busy: bool) -> None:
        """The pipeline starts (True) or stops (False) running a stage: changes the power drawn."""
        with self._lock:
            self._advance_locked()
            self.busy = busy

    def temps(self) -> tuple[float, float]:
        return self.th_c + self.amb, self.th_g + self.amb

    # --- Board protocol ----------------------------------------------------------------------
    def snapshot(self, *, temps: bool = True, power: bool = True, util: bool = True) -> Snapshot:
        with self._lock:
            self._advance_locked()
            window = max(self._t - self._util_window_start, 1e-9)
            cpu_util = 100.0 * min(self._busy_s / window, 1.0)
            gpu_util = 100.0 * min(self._gpu_busy_s / window, 1.0)
            if util:
                self._busy_s = self._gpu_busy_s = 0.0
                self._util_window_start = self._t
            t_c, t_g = self.temps()
            return Snapshot(
                t_mono_s=time.monotonic(),
                freqs={name: d.current() for name, d in self.domains.items()},
                temps_c={"cpu-thermal": t_c, "gpu-thermal": t_g, "soc0-thermal": self.th_s + self.amb} if temps else {},
                power_w={"VDD_IN": self.power_w} if power else {},
                energy_j={"VDD_IN": self.energy_j} if power else {},
                cpu_util_pct=cpu_util if util else None,
                gpu_load_pct=gpu_util if util else None,
                fan_pwm=0,
            )

    def set_clocks(self, cpu: int | None = None, gpu: int | None = None) -> None:
        if cpu is not None:
            self.domains["cpu0"].set(cpu)
        if gpu is not None:
            self.domains["gpu"].set(gpu)

    def take_control(self) -> list[str]:
        for d in self.domains.values():
            d.set_governor("userspace")
        return [f"{name}: userspace" for name in self.domains]

    def nvpmodel(self) -> NvpMode | None:
        return NvpMode(id=0, name=self.mode_name, fan_mode="quiet")

    def set_fan_pwm(self, pwm: int) -> None:
        return None

    def describe(self) -> BoardDescription:
        trips = (TripPoint(0, "passive", self.trip), TripPoint(1, "critical", self.profile.throttling.shutdown_c))
        t_c, t_g = self.temps()
        return BoardDescription(
            backend="sim",
            model=f"simulated {self.profile.name} ({self.mode_name})",
            sysfs_root="(simulated)",
            domains=[d.info() for d in self.domains.values()],
            zones=[ZoneInfo("cpu-thermal", "sim", t_c, trips), ZoneInfo("gpu-thermal", "sim", t_g, trips)],
            rails=[RailInfo("VDD_IN", "sim", "sim", True)],
            nvpmodel=self.nvpmodel(),
            cpu_util=True,
            gpu_load=True,
            notes=["simulated board: clocks, temperatures and power come from the simulator physics"],
        )

    def state_records(self) -> list[dict[str, Any]]:
        return []  # nothing real to restore

    def close(self) -> None:
        return None


def detect(sysfs_root: Path = Path("/")) -> SimBoard:
    """The sim backend always "detects" (it is the fallback of ``backend: auto``)."""
    return SimBoard()


def ensure_registered() -> None:
    """Register the ``sim`` backend (done on import; again if a test reset the registry)."""
    from lotus.runtime.hw.base import BACKENDS

    if "sim" not in BACKENDS:
        register_backend("sim", "lotus.runtime.hw.sim:detect")


ensure_registered()
