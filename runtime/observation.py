"""Build the governor's observation from a board's real sensors, exactly as the simulator does.

The simulator fills :data:`lotus.core.schema.RAW_FIELDS` in ``SimCore.raw_readings``; this module fills
the same dict from a :class:`~lotus.runtime.hw.base.Snapshot` plus the pipeline's timings, and both go
through :func:`lotus.core.schema.encode_observation`. The two filters (temperature slope with time
constant ``TEMP_SLOPE_TAU_S``, latency EMA with ``LATENCY_EMA_ALPHA``) are the simulator's own
:class:`lotus.core.filters.ObservationFilters`: the slope is fed after every stage, the EMA after
every frame, exactly as ``lotus.envs.core.SimCore`` feeds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lotus.core.filters import ObservationFilters
from lotus.core.schema import ActionTable, encode_observation
from lotus.runtime.hw.base import Board, Snapshot

DEFAULT_TRIP_C = 99.0  # Orin passive sw-throttle trip (boards.md 4.3)
NO_GPU_HZ = (1,)  # placeholder GPU table for boards without a controllable GPU


def action_table(board: Board) -> ActionTable:
    """The joint (CPU kHz, GPU Hz) table of a board's first CPU and GPU domains."""
    cpu = next((d for d in board.domains.values() if d.kind == "cpu"), None)
    gpu = next((d for d in board.domains.values() if d.kind == "gpu"), None)
    cpu_t = tuple(sorted(cpu.available())) if cpu is not None and cpu.available() else (1,)
    gpu_t = tuple(sorted(gpu.available())) if gpu is not None and gpu.available() else NO_GPU_HZ
    return ActionTable(cpu_t, gpu_t)


def board_trip_c(board: Board, override: float | None = None) -> float:
    """The lowest passive trip of the board's zones (``override`` wins; 99 C when none is set)."""
    if override is not None:
        return float(override)
    trips = [z.passive_c for z in board.describe().zones if z.passive_c]
    return float(min(trips)) if trips else DEFAULT_TRIP_C


def _pick(temps: dict[str, float], *prefixes: str) -> float | None:
    for prefix in prefixes:
        for name, value in temps.items():
            if name.lower().startswith(prefix):
                return value
    return None


@dataclass
class SensorView:
    """The physical readings one snapshot gives (units in the names)."""

    cpu_khz: float
    gpu_hz: float
    cpu_temp_c: float
    gpu_temp_c: float
    power_w: float
    energy_j: float | None
    gpu_util: float | None
    fan_pwm: float


def sensor_view(snap: Snapshot, actions: ActionTable) -> SensorView:
    """Map backend-specific names (zones, rails, domains) onto the schema's quantities."""
    cpu_khz = gpu_hz = None
    for name, value in snap.freqs.items():
        if value is None:
            continue
        if name.startswith("cpu") or name.startswith("policy"):
            cpu_khz = cpu_khz if cpu_khz is not None else value
        elif name.startswith("gpu"):
            gpu_hz = value
    t_cpu = _pick(snap.temps_c, "cpu", "x86_pkg", "package", "tj", "soc")
    t_gpu = _pick(snap.temps_c, "gpu")
    t_cpu = t_cpu if t_cpu is not None else (t_gpu if t_gpu is not None else 25.0)
    power = snap.power_w.get("VDD_IN")
    if power is None:
        power = snap.power_w.get("package-0", sum(snap.power_w.values()) if snap.power_w else 0.0)
    energy = snap.energy_j.get("VDD_IN", snap.energy_j.get("package-0")) if snap.energy_j else None
    return SensorView(
        cpu_khz=float(cpu_khz if cpu_khz is not None else actions.cpu_khz[-1]),
        gpu_hz=float(gpu_hz if gpu_hz is not None else actions.gpu_hz[-1]),
        cpu_temp_c=float(t_cpu),
        gpu_temp_c=float(t_gpu if t_gpu is not None else t_cpu),
        power_w=float(power),
        energy_j=None if energy is None else float(energy),
        gpu_util=None if snap.gpu_load_pct is None else snap.gpu_load_pct / 100.0,
        fan_pwm=0.0 if snap.fan_pwm is None else snap.fan_pwm / 255.0,
    )


class ObservationBuilder:
    """Per-board filter state plus the assembly of the raw dict; one instance per daemon.

    :param actions: the board's joint clock table (its tops normalise the clock features).
    :param trip_c: passive trip point, C.
    :param budget_w: power-mode budget, W.
    """

    def __init__(self, actions: ActionTable, trip_c: float, budget_w: float) -> None:
        self.actions, self.trip_c, self.budget_w = actions, trip_c, budget_w
        self.filters = ObservationFilters()
        self.t_prev: float | None = None  # time of the last temperature sample, s (None: none yet)
        self.last_latency_ms = 0.0
        self.last_stage1_ms = 0.0
        self.last_proposals = 0
        self.frames = 0

    # --- filters (lotus.core.filters, fed as envs.core.SimCore._stage feeds them) --------------
    @property
    def slope(self) -> float:
        """Smoothed dT/dt of the hotter die, C/s."""
        return float(self.filters.slope)

    @property
    def lat_ema(self) -> float:
        """Latency EMA, ms."""
        return float(self.filters.lat_ema)

    def update_slope(self, t_s: float, tmax_c: float) -> float:
        """Feed the hotter die's temperature (C) at time ``t_s`` (s); returns the smoothed slope, C/s.

        The first sample only starts the filter (as a simulator reset does).
        """
        if self.t_prev is None:
            self.filters.tmax_prev = tmax_c
        else:
            self.filters.update_slope(tmax_c, t_s - self.t_prev)
        self.t_prev = t_s
        return self.slope

    def frame_done(self, latency_ms: float, stage1_ms: float, proposals: int) -> None:
        """After stage 2: last latency, latency EMA (first frame seeds it), proposals."""
        self.filters.update_latency(latency_ms, first=self.frames == 0)
        self.last_latency_ms = latency_ms
        self.last_stage1_ms = stage1_ms
        self.last_proposals = proposals
        self.frames += 1

    # --- assembly -------------------------------------------------------------------------------
    def raw(
        self,
        view: SensorView,
        *,
        stage2_next: bool,
        proposals: int,
        max_proposals: int,
        deadline_ms: float,
        frame_elapsed_ms: float,
        next_frame_in_ms: float,
        cpu_util: float,
        gpu_util: float | None,
        throttled: bool,
        stage1_ms: float | None = None,
    ) -> dict[str, Any]:
        """The :data:`lotus.core.schema.RAW_FIELDS` dict for one decision."""
        return {
            "stage2_next": 1.0 if stage2_next else 0.0,
            "cpu_khz": view.cpu_khz,
            "gpu_hz": view.gpu_hz,
            "cpu_max_khz": float(self.actions.cpu_khz[-1]),
            "gpu_max_hz": float(self.actions.gpu_hz[-1]),
            "cpu_temp_c": view.cpu_temp_c,
            "gpu_temp_c": view.gpu_temp_c,
            "trip_c": self.trip_c,
            "temp_slope_c_per_s": self.filters.slope,
            "proposals": proposals,
            "max_proposals": max_proposals,
            "deadline_ms": deadline_ms,
            "frame_elapsed_ms": frame_elapsed_ms,
            "last_latency_ms": self.last_latency_ms,
            "latency_ema_ms": self.filters.lat_ema,
            "last_stage1_ms": self.last_stage1_ms if stage1_ms is None else stage1_ms,
            "next_frame_in_ms": next_frame_in_ms,
            "power_w": view.power_w,
            "budget_w": self.budget_w,
            "cpu_util": min(max(cpu_util, 0.0), 1.0),
            "gpu_util": min(max(cpu_util if gpu_util is None else gpu_util, 0.0), 1.0),
            "throttled": 1.0 if throttled else 0.0,
            "fan_pwm": view.fan_pwm,
        }

    def encode(self, raw: dict[str, Any]) -> np.ndarray:
        """``float32`` observation ``[1, N_FEATURES]`` ready for ``policy.act``."""
        return encode_observation(raw)[None, :]
