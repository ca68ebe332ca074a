"""The compact per-frame telemetry sample kept for GET /v1/telemetry.

The fan-out to SSE/WebSocket subscribers, with the full per-frame event, is
:class:`lotus.runtime.events.EventBus`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lotus.runtime.pipeline import FrameResult


def sample_of(result: FrameResult) -> dict[str, Any]:
    """The compact per-frame sample (no detections) kept in the telemetry buffer."""
    return {
        "t": round(time.time(), 4),
        "model": result.model,
        "frame": result.frame,
        "source": result.source,
        "latency_ms": round(result.timings_ms["frame"], 3),
        "stage1_ms": round(result.timings_ms["stage1"], 3),
        "stage2_ms": round(result.timings_ms["stage2"], 3),
        "proposals": result.num_proposals,
        "detections": len(result.detections),
        "cpu_khz": result.clocks_after.get("cpu_khz"),
        "gpu_hz": result.clocks_after.get("gpu_hz"),
        "temps_c": {k: round(v, 2) for k, v in result.temps_c.items()},
        "power_w": round(result.power_w, 3),
        "energy_j": round(result.energy_j, 6),
        "throttled": result.throttled,
        "mode": result.governor["mode"],
        "policy": result.governor["policy"],
        "action": result.governor["action_next"],
        "slo_met": result.governor["slo_met"],
    }
