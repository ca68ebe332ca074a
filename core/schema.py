"""The one observation/action schema shared by the simulator and the daemon.

A governor decides twice per frame (``stage`` decisions, as Lotus does) or once per frame
(``frame`` decisions, as zTT does). At each decision it sees an observation built by
:func:`encode_observation` from *physical* readings (clocks in kHz/Hz, temperatures in C, times
in ms, power in W). The simulator fills those readings from its state; the daemon fills them
from the board's sensors. Both call the same function, so a policy sees the same features.

Observation (``float32``, shape ``[N_FEATURES]``):

=====  ==================  =========================================================  ===========
index  name                meaning (raw unit)                                         range
=====  ==================  =========================================================  ===========
0      stage2_next         1 when deciding the clocks for stage 2 (proposals known)   {0, 1}
1      cpu_freq_frac       CPU clock / top CPU clock of the power mode                 (0, 1]
2      gpu_freq_frac       GPU clock / top GPU clock of the power mode                 (0, 1]
3      cpu_headroom        (trip - T_cpu) / 30 C                                       [-1, 2]
4      gpu_headroom        (trip - T_gpu) / 30 C                                       [-1, 2]
5      temp_slope          smoothed dT/dt of the hotter die / (1 C/s)                  [-3, 3]
6      proposals           proposals / max proposals (last frame's at stage 1)         [0, 1]
7      budget_left         (deadline - time spent in this frame) / deadline            [-1, 1]
8      last_latency        last frame latency / deadline                               [0, 4]
9      latency_ema         smoothed frame latency / deadline                           [0, 4]
10     last_stage1         last stage-1 time / deadline                                [0, 4]
11     next_frame_in       time until the next frame is due / deadline (0: no camera)  [0, 4]
12     power               board power / power-mode budget                             [0, 2]
13     cpu_util            inference-thread busy fraction since the last decision      [0, 1]
14     gpu_util            GPU busy fraction since the last decision                   [0, 1]
15     throttled           1 when firmware throttling caps a clock                     {0, 1}
16     fan                 fan PWM fraction                                            [0, 1]
=====  ==================  =========================================================  ===========

Actions are indices into an :class:`ActionTable` of joint (CPU, GPU) clocks. The index order is
``a = gpu_idx * n_cpu + cpu_idx`` (the order of the Lotus code, 100 actions on Orin Nano 15W).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

SCHEMA_VERSION = 1

GovernorMode = Literal["active", "shadow", "off"]
"""``active`` decides and writes clocks; ``shadow`` decides and only records; ``off`` does neither."""
GOVERNOR_MODES: tuple[GovernorMode, ...] = get_args(GovernorMode)
HEADROOM_SCALE_C = 30.0
# filter constants; the filters themselves are lotus.core.filters.ObservationFilters
TEMP_SLOPE_TAU_S = 2.0  # time constant of the temperature-slope filter, s
LATENCY_EMA_ALPHA = 0.1  # weight of each new frame in the latency EMA

# name -> (low, high) after normalisation
FEATURES: dict[str, tuple[float, float]] = {
    "stage2_next": (0.0, 1.0),
    "cpu_freq_frac": (0.0, 1.0),
    "gpu_freq_frac": (0.0, 1.0),
    "cpu_headroom": (-1.0, 2.0),
    "gpu_headroom": (-1.0, 2.0),
    "temp_slope": (-3.0, 3.0),
    "proposals": (0.0, 1.0),
    "budget_left": (-1.0, 1.0),
    "last_latency": (0.0, 4.0),
    "latency_ema": (0.0, 4.0),
    "last_stage1": (0.0, 4.0),
    "next_frame_in": (0.0, 4.0),
    "power": (0.0, 2.0),
    "cpu_util": (0.0, 1.0),
    "gpu_util": (0.0, 1.0),
    "throttled": (0.0, 1.0),
    "fan": (0.0, 1.0),
}
FEATURE_NAMES: tuple[str, ...] = tuple(FEATURES)
N_FEATURES = len(FEATURE_NAMES)
IDX = {name: i for i, name in enumerate(FEATURE_NAMES)}
LOW = np.array([lo for lo, _ in FEATURES.values()], dtype=np.float32)
HIGH = np.array([hi for _, hi in FEATURES.values()], dtype=np.float32)
_LOW_COLUMN, _HIGH_COLUMN = LOW[:, None].copy(), HIGH[:, None].copy()  # the bounds of features laid out as rows

# Physical readings the observation is built from, with their units.
RAW_FIELDS: dict[str, str] = {
    "stage2_next": "1 if the decision sets stage-2 clocks, else 0",
    "cpu_khz": "current CPU clock, kHz",
    "gpu_hz": "current GPU clock, Hz",
    "cpu_max_khz": "top CPU clock of the power mode, kHz",
    "gpu_max_hz": "top GPU clock of the power mode, Hz",
    "cpu_temp_c": "CPU die temperature, C",
    "gpu_temp_c": "GPU die temperature, C",
    "trip_c": "passive (throttling) trip point, C",
    "temp_slope_c_per_s": "smoothed dT/dt of the hotter die, C/s",
    "proposals": "proposal count (stage 2) or last frame's count (stage 1)",
    "max_proposals": "largest proposal count stage 1 emits",
    "deadline_ms": "latency target, ms",
    "frame_elapsed_ms": "time spent on the current frame so far, ms",
    "last_latency_ms": "last frame's latency, ms",
    "latency_ema_ms": "smoothed frame latency, ms",
    "last_stage1_ms": "last stage-1 time, ms",
    "next_frame_in_ms": "time until the next frame is due, ms (0 without a camera clock)",
    "power_w": "board power, W",
    "budget_w": "power-mode budget, W",
    "cpu_util": "CPU busy fraction since the last decision",
    "gpu_util": "GPU busy fraction since the last decision",
    "throttled": "1 if firmware throttling caps a clock",
    "fan_pwm": "fan PWM fraction",
}


def _features(r: Mapping[str, Any]) -> list[Any]:
    deadline = r["deadline_ms"]
    hotter_slope = r["temp_slope_c_per_s"]
    return [
        r["stage2_next"],
        r["cpu_khz"] / r["cpu_max_khz"],
        r["gpu_hz"] / r["gpu_max_hz"],
        (r["trip_c"] - r["cpu_temp_c"]) / HEADROOM_SCALE_C,
        (r["trip_c"] - r["gpu_temp_c"]) / HEADROOM_SCALE_C,
        hotter_slope,
        r["proposals"] / r["max_proposals"],
        (deadline - r["frame_elapsed_ms"]) / deadline,
        r["last_latency_ms"] / deadline,
        r["latency_ema_ms"] / deadline,
        r["last_stage1_ms"] / deadline,
        r["next_frame_in_ms"] / deadline,
        r["power_w"] / r["budget_w"],
        r["cpu_util"],
        r["gpu_util"],
        r["throttled"],
        r["fan_pwm"],
    ]


def encode_observation(raw: Mapping[str, Any]) -> np.ndarray:
    """Normalise physical readings into observations.

    :param raw: every key of :data:`RAW_FIELDS`, each a float (one board) or an array ``[N]``.
    :return: ``float32`` array ``[N_FEATURES]`` for scalars, ``[N, N_FEATURES]`` for arrays,
        clipped to the observation space.
    """
    feats = _features(raw)
    if isinstance(raw["cpu_temp_c"], np.ndarray):
        # filled feature by feature as rows (contiguous writes), clipped, then laid out [N, N_FEATURES]
        rows = np.empty((N_FEATURES, raw["cpu_temp_c"].shape[0]), dtype=np.float32)
        for i, value in enumerate(feats):
            rows[i] = value
        np.maximum(rows, _LOW_COLUMN, out=rows)
        np.minimum(rows, _HIGH_COLUMN, out=rows)
        return rows.T.copy()
    out = np.array(feats, dtype=np.float32)
    np.maximum(out, LOW, out=out)
    return np.minimum(out, HIGH, out=out)


@dataclass(frozen=True)
class ActionTable:
    """Joint (CPU, GPU) clock choices. Index ``a = gpu_idx * n_cpu + cpu_idx``."""

    cpu_khz: tuple[int, ...]
    gpu_hz: tuple[int, ...]

    @classmethod
    def from_mode(cls, mode: Any) -> ActionTable:
        """The full table of a :class:`envs.board.PowerMode`."""
        return cls(tuple(mode.cpu_freqs_khz), tuple(mode.gpu_freqs_hz))

    @property
    def n_cpu(self) -> int:
        return len(self.cpu_khz)

    @property
    def n_gpu(self) -> int:
        return len(self.gpu_hz)

    @property
    def n(self) -> int:
        return self.n_cpu * self.n_gpu

    def index(self, cpu_idx: Any, gpu_idx: Any) -> Any:
        """Joint index from per-domain indices (ints or integer arrays)."""
        return gpu_idx * self.n_cpu + cpu_idx

    def split(self, action: Any) -> tuple[Any, Any]:
        """Per-domain indices ``(cpu_idx, gpu_idx)`` of a joint index (int or integer array)."""
        return action % self.n_cpu, action // self.n_cpu

    def clocks(self, action: int) -> tuple[int, int]:
        """``(cpu_khz, gpu_hz)`` of a joint index."""
        c, g = self.split(int(action))
        return self.cpu_khz[c], self.gpu_hz[g]

    def nearest(self, cpu_khz: float, gpu_hz: float) -> int:
        """The joint index whose clocks are closest to the given ones."""
        c = int(np.argmin(np.abs(np.asarray(self.cpu_khz) - cpu_khz)))
        g = int(np.argmin(np.abs(np.asarray(self.gpu_hz) - gpu_hz)))
        return int(self.index(c, g))

    def to_dict(self) -> dict[str, list[int]]:
        return {"cpu_khz": list(self.cpu_khz), "gpu_hz": list(self.gpu_hz)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActionTable:
        return cls(tuple(int(x) for x in data["cpu_khz"]), tuple(int(x) for x in data["gpu_hz"]))
