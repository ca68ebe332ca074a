"""Run metrics that count every camera frame: a frame dropped (or never reached) is a miss.

The camera produces ``floor(duration_s * fps)`` frames whatever the detector does. A frame is on
time when it was processed and its latency (camera arrival to end of stage 2) is within the
deadline. Dropped frames (the camera moved on while the detector was busy, or the shield's
admission rule skipped the frame to keep the board from shutting down) and frames after a
thermal shutdown (the board is off) are misses. Latency statistics are over the processed frames.

The Lotus objective (lower is better, ms) is ``mean + ALPHA * variance + deadline * miss fraction``
with the miss fraction over *camera* frames, so dropping frames no longer pays. Temperature limits
are constraints reported on their own (``throttled_pct``, ``shutdown``), not bought with a weight.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from lotus.envs.reward import OBJECTIVE_ALPHA_PER_MS

ALPHA_PER_MS = OBJECTIVE_ALPHA_PER_MS  # weight of the latency variance, 1/ms (the Lotus formulation)

METRIC_KEYS = (
    "on_time_pct", "drop_pct", "latency_mean_ms", "latency_std_ms", "latency_p50_ms", "latency_p99_ms",
    "throttled_pct", "max_temp_c", "energy_per_frame_j", "energy_per_camera_frame_j", "objective", "shutdown",
    "shutdown_time_s", "camera_frames", "processed_frames", "dropped_frames", "skipped_frames",
)  # fmt: skip


def camera_frames(duration_s: float, fps: float, processed: int, dropped: int) -> int:
    """Frames the camera produced in ``duration_s``; back-to-back runs (fps 0) count what was started."""
    if fps <= 0:
        return processed + dropped
    return max(int(math.floor(duration_s * fps + 1e-9)), processed + dropped)


def run_metrics(
    latency_ms: np.ndarray,
    frame_energy_j: np.ndarray,
    dropped: int,
    deadline_ms: float,
    duration_s: float,
    fps: float,
    step_dt_s: np.ndarray,
    step_throttled: np.ndarray,
    step_max_temp_c: np.ndarray,
    shutdown: bool,
    shutdown_time_s: float | None = None,
    skipped: int = 0,
) -> dict[str, Any]:
    """The per-run metrics of :data:`METRIC_KEYS`.

    :param latency_ms: ``[F]`` latencies of the processed frames.
    :param frame_energy_j: ``[F]`` energy of each processed frame, J.
    :param dropped: frames the camera produced that were not processed: dropped while the detector
        was busy, or skipped by admission (these are also counted in ``skipped``).
    :param duration_s: the scenario's length, s (a shutdown run still owes every frame of it).
    :param step_dt_s: ``[S]`` simulated time of each decision step, s.
    :param step_throttled: ``[S]`` 1 where firmware throttling capped a clock during the step.
    :param step_max_temp_c: ``[S]`` hotter die after each step, C.
    :param skipped: frames the admission rule skipped (part of ``dropped``; reported on their own).
    """
    lat = np.asarray(latency_ms, dtype=float)
    n_proc = int(lat.size)
    n_cam = camera_frames(duration_s, fps, n_proc, int(dropped))
    on_time = int((lat <= deadline_ms).sum())
    on_frac = on_time / n_cam if n_cam else 0.0
    mean = float(lat.mean()) if n_proc else float("nan")
    std = float(lat.std()) if n_proc else float("nan")
    dt = np.asarray(step_dt_s, dtype=float)
    total_t = max(float(dt.sum()), 1e-9)
    energy = float(np.asarray(frame_energy_j, dtype=float).sum())
    objective = mean + ALPHA_PER_MS * std**2 + deadline_ms * (1.0 - on_frac) if n_proc else float("inf")
    return {
        "on_time_pct": 100.0 * on_frac,
        "drop_pct": 100.0 * dropped / n_cam if n_cam else 0.0,
        "latency_mean_ms": mean,
        "latency_std_ms": std,
        "latency_p50_ms": float(np.percentile(lat, 50)) if n_proc else float("nan"),
        "latency_p99_ms": float(np.percentile(lat, 99)) if n_proc else float("nan"),
        "throttled_pct": 100.0 * float((dt * np.asarray(step_throttled, dtype=float)).sum()) / total_t,
        "max_temp_c": float(np.max(step_max_temp_c)) if np.size(step_max_temp_c) else float("nan"),
        "energy_per_frame_j": energy / n_proc if n_proc else float("nan"),
        "energy_per_camera_frame_j": energy / n_cam if n_cam else float("nan"),
        "objective": float(objective),
        "shutdown": bool(shutdown),
        "shutdown_time_s": float(shutdown_time_s) if shutdown and shutdown_time_s is not None else None,
        "camera_frames": n_cam,
        "processed_frames": n_proc,
        "dropped_frames": int(dropped),
        "skipped_frames": int(skipped),
    }


def failed_run_metrics(duration_s: float, fps: float) -> dict[str, Any]:
    """The metrics of a run that never produced a frame (an infeasible room for the reference)."""
    empty = np.zeros(0)
    return run_metrics(empty, empty, 0, 1.0, duration_s, fps, np.ones(1), np.zeros(1), empty, True, 0.0)


def recording_metrics(rec: Any, duration_s: float, fps: float) -> dict[str, Any]:
    """:func:`run_metrics` of a :class:`lotus.governor.rollout.Recording` (camera rate ``fps``, 0: none)."""
    steps, frames = rec.steps, rec.frames
    hottest = np.maximum(np.asarray(steps["cpu_temp_c"], dtype=float), np.asarray(steps["gpu_temp_c"], dtype=float))
    t = np.asarray(steps["time_s"], dtype=float)
    return run_metrics(
        frames["latency_ms"], frames["frame_energy_j"], rec.dropped_frames, rec.deadline_ms, duration_s, fps,
        steps["dt_s"], steps["throttled"], hottest, rec.shutdown, float(t[-1]) if rec.shutdown and t.size else None,
        int(getattr(rec, "skipped_frames", 0)),
    )  # fmt: skip


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of its 95 % confidence interval (Student t; 0 for one value)."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size == 1:
        return float(x[0]), 0.0
    half = float(_t975(x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return float(x.mean()), half


# two-sided 95 % Student t quantiles for 1..30 degrees of freedom (standard tables)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)  # fmt: skip


def _t975(dof: int) -> float:
    return _T975[dof - 1] if dof <= len(_T975) else 1.96
