"""Per-frame telemetry: a ring buffer for GET /v1/telemetry and a fan-out to SSE/WS subscribers.

``publish`` is called from the inference worker thread; it hands the sample to each subscriber's
asyncio queue with ``call_soon_threadsafe``. A slow subscriber loses its oldest samples (bounded
queues), never blocks inference.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lotus.runtime.pipeline import FrameResult

SUBSCRIBER_QUEUE = 64
Subscription = tuple[asyncio.AbstractEventLoop, "asyncio.Queue[dict[str, Any]]"]  # (server loop, its queue)


def sample_of(result: FrameResult) -> dict[str, Any]:
    """The compact per-frame sample (no detections) published on /v1/events and kept in the buffer."""
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


class TelemetryBus:
    """Recent samples plus live subscribers (each an asyncio queue on the server's loop)."""

    def __init__(self, keep: int = 512) -> None:
        self.samples: deque[dict[str, Any]] = deque(maxlen=keep)
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()

    def publish(self, sample: dict[str, Any]) -> None:
        self.samples.append(sample)
        with self._lock:
            subs = list(self._subs)
        for loop, queue in subs:
            try:
                loop.call_soon_threadsafe(_put_drop_oldest, queue, sample)
            except RuntimeError:  # loop closed
                self.unsubscribe((loop, queue))

    def subscribe(self) -> Subscription:
        """A new subscriber on the running loop: its queue receives every published sample."""
        handle: Subscription = (asyncio.get_running_loop(), asyncio.Queue(SUBSCRIBER_QUEUE))
        with self._lock:
            self._subs.add(handle)
        return handle

    def unsubscribe(self, handle: Subscription) -> None:
        with self._lock:
            self._subs.discard(handle)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def recent(self, limit: int) -> list[dict[str, Any]]:
        items = list(self.samples)
        return items[-limit:] if limit > 0 else []


def _put_drop_oldest(queue: asyncio.Queue[dict[str, Any]], item: dict[str, Any]) -> None:
    if queue.full():
        try:
            queue.get_nowait()
        except asyncio.QueueEmpty:
            pass
    queue.put_nowait(item)
