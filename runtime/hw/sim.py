"""The ``sim`` backend: a virtual board driven by the simulator's physics in wall-clock time.

It is what ``lotus serve`` falls back to when no real board is found, so the whole loop (sensors,
governor, clock writes, throttling, energy) runs on any machine. Dynamic and leakage power and the
firmware throttle are the simulator's own functions (:mod:`lotus.envs.physics`), the heat flow is
:mod:`lotus.envs.thermal`, for a board profile (``orin-nano`` by default); nothing is re-derived
here. Time advances with :func:`time.monotonic` (or an injected clock in tests), integrated in
constant-power segments that end at every firmware poll. Whether a stage is running comes from
:meth:`SimBoard.note_activity` (the pipeline calls it). Imports no gymnasium, torch or matplotlib.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lotus.core.errors import DeviceError
from lotus.envs.board import BoardProfile, load_board
from lotus.envs.ops import SCALAR
from lotus.envs.physics import (
    dynamic_power_table,
    is_capped,
    polls_crossed,
    segment_power,
    sensor_readings,
    stage_activity,
    throttle_poll,
)
from lotus.envs.thermal import advance, coefficient_table
from lotus.runtime.hw.base import (
    BoardDescription,
    ClockDomainInfo,
    NvpMode,
    RailInfo,
    RestoreReport,
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
        """Request clock ``freq`` (kHz or Hz); the firmware cap may hold the applied clock lower.

        :raises DeviceError: ``freq`` is not in the domain's table.
        """
        if freq not in self._table:
            raise DeviceError(f"{self.name}: {freq} {self.unit} is not one of {self._table}")
        with self._board._lock:
            self._board._advance_locked()
            self._req = self._table.index(freq)

    def set_limits(self, lo: int, hi: int) -> None:
        """Accepted and ignored (the simulated board has no min/max clamps).

        :raises DeviceError: ``lo > hi``.
        """
        if lo > hi:
            raise DeviceError(f"{self.name}: min {lo} > max {hi}")

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
        board = profile if isinstance(profile, BoardProfile) else load_board(profile)
        self.mode_name = power_mode or board.default_mode
        mode = board.mode(power_mode)
        self.profile = board.in_mode(self.mode_name)
        self.sysfs_root = Path("/")
        self._clock, self._scale = clock, time_scale
        self._lock = threading.RLock()
        self.amb = ambient_c
        self.trip = trip_c or self.profile.throttling.trip_c
        self.budget_w = mode.budget_w
        self._dyn_c, self._dyn_g = dynamic_power_table(self.profile, mode)
        self._coef = coefficient_table(self.profile, 1.0)[0]  # passive heatsink, fan off
        self.domains: dict[str, SimClockDomain] = {
            "cpu0": SimClockDomain(self, "cpu0", "cpu", "kHz", tuple(mode.cpu_freqs_khz)),
            "gpu": SimClockDomain(self, "gpu", "gpu", "Hz", tuple(mode.gpu_freqs_hz)),
        }
        self._cap_c = len(mode.cpu_freqs_khz) - 1
        self._cap_g = len(mode.gpu_freqs_hz) - 1
        self.th_c = self.th_g = self.th_s = 0.0
        self._poll_tmax = ambient_c  # hotter die at the last firmware poll (step-wise trend)
        self._sensor_key = 0  # RNG key of the reading noise (physics.sensor_reading)
        self.energy_j = 0.0
        self.power_w = 0.0
        self.busy = False
        self._busy_s = 0.0
        self._gpu_busy_s = 0.0
        self._util_window_start = 0.0
        self.throttle_events = 0
        self._saved_governors: dict[str, str | None] | None = None  # what release_control gives back
        self._t = self._now()
        self._util_window_start = self._t

    # --- physics -----------------------------------------------------------------------------
    def _now(self) -> float:
        return self._clock() * self._scale

    def activity(self) -> tuple[float, float, float]:
        """``(act_cpu, act_gpu, mem_frac)`` of the current load: a busy stage, or idle."""
        if self.busy:
            act_c, act_g = stage_activity(self.profile, 1.0 - BUSY_GPU_SHARE - MEM_SHARE, BUSY_GPU_SHARE, 1.0)
            return act_c, act_g, MEM_SHARE
        act_c, act_g = stage_activity(self.profile, 0.0, 0.0, 1.0)
        return act_c, act_g, 0.0

    def _segment(self, dt: float) -> None:
        """``dt`` seconds at the current clocks and activity: heat, power, energy, busy time."""
        ci, gi = self.domains["cpu0"].applied_index(), self.domains["gpu"].applied_index()
        act_c, act_g, mem = self.activity()
        p_c, p_g, p_s = segment_power(
            self.profile, self._dyn_c[ci], self._dyn_g[gi], act_c, act_g, mem,
            self.th_c + self.amb, self.th_g + self.amb, math.exp,
        )  # fmt: skip
        th = advance(self._coef, self.th_c, self.th_g, self.th_s, p_c, p_g, p_s, dt, math.exp)
        self.th_c, self.th_g, self.th_s = (float(x) for x in th)
        self.power_w = float(p_c + p_g + p_s)
        self.energy_j += self.power_w * dt
        if self.busy:
            self._busy_s += dt
            self._gpu_busy_s += dt * BUSY_GPU_SHARE

    def _poll(self, polls: int) -> None:
        """The firmware's step-wise throttle (:func:`lotus.envs.physics.throttle_poll`) for ``polls`` polls."""
        was = self.firmware_throttled()
        hottest = max(self.th_c, self.th_g) + self.amb
        self._cap_c, self._cap_g = throttle_poll(
            self.profile.throttling, self._cap_c, self._cap_g, hottest, self._poll_tmax, self.trip, polls,
            len(self.domains["cpu0"].available()), len(self.domains["gpu"].available()), SCALAR,
        )  # fmt: skip
        self._poll_tmax = hottest
        if self.firmware_throttled() and not was:
            self.throttle_events += 1

    def _advance_locked(self) -> None:
        now = self._now()
        poll = self.profile.throttling.poll_s
        while now > self._t:
            nxt_poll = (math.floor(self._t / poll) + 1) * poll
            if nxt_poll <= self._t:  # rounding put _t on a boundary floor() had not reached yet
                nxt_poll += poll
            end = min(now, nxt_poll, self._t + MAX_SEGMENT_S)
            self._segment(end - self._t)
            polls = polls_crossed(self._t, end, poll, SCALAR)
            self._t = end
            if polls:
                self._poll(polls)

    def advance(self) -> None:
        """Bring the physics up to now."""
        with self._lock:
            self._advance_locked()

    def firmware_throttled(self) -> bool:
        """Whether the simulated firmware caps a clock below the top of its table now."""
        n_cpu, n_gpu = len(self.domains["cpu0"].available()), len(self.domains["gpu"].available())
        return bool(is_capped(self._cap_c, self._cap_g, n_cpu, n_gpu))

    def note_activity(self, busy: bool) -> None:
        """The pipeline starts (True) or stops (False) running a stage: changes the power drawn."""
        with self._lock:
            self._advance_locked()
            self.busy = busy

    def temps(self) -> tuple[float, float]:
        """CPU and GPU readings, C: the true die temperatures through the profile's sensor model."""
        sen = self.profile.sensors
        sample = math.floor(self._t / sen.update_s) if sen.update_s > 0 else math.floor(self._t * 1e6)
        return sensor_readings(sen, self.th_c + self.amb, self.th_g + self.amb, self._sensor_key, sample, SCALAR)

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

    def take_control(self, originals: Sequence[Mapping[str, Any]] = ()) -> list[str]:
        """Save each domain's governor (once) and switch it to ``userspace``; ``originals`` is ignored.

        Nothing real is changed, so a crashed run leaves nothing to restore.
        """
        if self._saved_governors is None:
            self._saved_governors = {name: d.governor() for name, d in self.domains.items()}
        for d in self.domains.values():
            d.set_governor("userspace")
        return [f"{name}: userspace" for name in self.domains]

    def release_control(self) -> RestoreReport:
        """Give the saved governors back (simulated: never fails); empty report when control was not taken."""
        report = RestoreReport()
        saved, self._saved_governors = self._saved_governors, None
        for name, governor in (saved or {}).items():
            if governor is not None:
                self.domains[name].set_governor(governor)
                report.restored.append(f"{name}: governor {governor}")
        return report

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
        """Give control back if held (idempotent)."""
        self.release_control()


def detect(sysfs_root: Path = Path("/")) -> SimBoard:
    """The sim backend always "detects" (it is the fallback of ``backend: auto``)."""
    return SimBoard()


def ensure_registered() -> None:
    """Register the ``sim`` backend (done on import; again if a test reset the registry)."""
    from lotus.runtime.hw.base import BACKENDS

    if "sim" not in BACKENDS:
        register_backend("sim", "lotus.runtime.hw.sim:detect")


ensure_registered()
