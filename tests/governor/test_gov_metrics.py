"""Run metrics that count every camera frame, and the seed-mean confidence interval."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lotus.governor.metrics import mean_ci95, run_metrics


def _run(lat: list[float], dropped: int = 0, duration: float = 1.0, fps: float = 10.0, **kw: object) -> dict:
    n = len(lat)
    args = dict(latency_ms=np.array(lat), frame_energy_j=np.full(n, 0.5), dropped=dropped, deadline_ms=40.0,
                duration_s=duration, fps=fps, step_dt_s=np.full(4, 0.25), step_throttled=np.array([0, 1, 0, 0]),
                step_max_temp_c=np.array([50.0, 60.0, 55.0, 52.0]), shutdown=False)  # fmt: skip
    args.update(kw)
    return run_metrics(**args)  # type: ignore[arg-type]


def test_drops_count_as_misses() -> None:
    # 10 camera frames in 1 s at 10 fps: 6 processed (5 on time), 4 dropped
    m = _run([30, 30, 30, 30, 30, 50], dropped=4)
    assert m["camera_frames"] == 10
    assert m["on_time_pct"] == pytest.approx(50.0)
    assert m["drop_pct"] == pytest.approx(40.0)
    assert m["latency_mean_ms"] == pytest.approx(200 / 6)
    assert m["energy_per_frame_j"] == pytest.approx(0.5)
    assert m["energy_per_camera_frame_j"] == pytest.approx(0.3)
    assert m["throttled_pct"] == pytest.approx(25.0)
    std = float(np.std([30, 30, 30, 30, 30, 50]))
    assert m["objective"] == pytest.approx(200 / 6 + 0.1 * std**2 + 40.0 * 0.5)


def test_dropping_frames_does_not_pay() -> None:
    """Processing every frame at 38 ms beats processing every other frame at 20 ms."""
    all_frames = _run([38.0] * 10)
    half = _run([20.0] * 5, dropped=5)
    assert all_frames["on_time_pct"] == 100.0 and half["on_time_pct"] == 50.0
    assert all_frames["objective"] < half["objective"]


def test_shutdown_owes_the_rest_of_the_run() -> None:
    m = _run([30.0] * 10, duration=10.0, shutdown=True, shutdown_time_s=1.0)
    assert m["shutdown"] is True and m["shutdown_time_s"] == 1.0
    assert m["camera_frames"] == 100 and m["on_time_pct"] == pytest.approx(10.0)


def test_nothing_processed_is_an_infinite_objective_not_a_crash() -> None:
    m = _run([], dropped=0, shutdown=True, shutdown_time_s=0.0)
    assert m["on_time_pct"] == 0.0 and math.isinf(m["objective"]) and math.isnan(m["latency_mean_ms"])


def test_mean_ci95() -> None:
    mean, half = mean_ci95([1.0, 2.0, 3.0, 4.0, 5.0])
    assert mean == 3.0
    assert half == pytest.approx(2.776 * np.std([1, 2, 3, 4, 5], ddof=1) / math.sqrt(5))
    assert mean_ci95([7.0]) == (7.0, 0.0)
    assert all(math.isnan(v) for v in mean_ci95([]))
