"""Per-frame events: the ring buffer behind GET /v1/telemetry and the live fan-out behind the streams.

:class:`EventBus` keeps the compact samples of :func:`~lotus.runtime.telemetry.sample_of` for
``/v1/telemetry`` and hands each live subscriber (``GET /v1/events``, ``WS /v1/stream?subscribe=``)
the full per-frame event of :func:`frame_event`. ``publish`` runs on the inference worker thread and
never waits: it schedules the event onto each subscriber's loop with ``call_soon_threadsafe``.

Each :class:`Subscriber` holds at most ``limit`` events, in publication order. When a slow client
lets it fill up, the oldest event is dropped and counted; the next :meth:`Subscriber.get` returns
``{"type": "lagged", "missed": N}`` (the events dropped since the last notice) before the events
that are still queued, so a client always learns about a gap, and where it was.

A frame event is the compact sample (every key it always had, ``detections`` still being the
count) plus::

    type          "frame"
    model_version the version of the model that ran (manifest version)
    provider      ONNX Runtime execution provider
    image_size    [width, height], px
    boxes         [[x0, y0, x1, y1], ...] in image pixels (2 decimals)
    scores        [float, ...] in [0, 1] (4 decimals)
    labels        [str, ...] class names, or the recognised text for OCR models
    class_ids     [int | null, ...] 1-based class index (null for OCR text)
    timings_ms    queue, decode (for --source frames: reading and decoding the frame from the source),
                  stage1 (includes pre-processing), decision_stage2, clock_set_stage2, stage2,
                  decision_next, clock_set_next, frame, total; ms (3 decimals)
    clocks_before {cpu_khz, gpu_hz} at the start of the frame (stage 1 ran at these)
    clocks_stage2 {cpu_khz, gpu_hz} applied for stage 2
    clocks_after  {cpu_khz, gpu_hz} chosen for the next frame (== the flat cpu_khz/gpu_hz)
    source_frame  index of the frame in the --source stream, 0-based, counting skipped frames
                  (null for frames sent by API clients)
    source_ts     source timestamp, s: the media position for a file or directory source, the
                  wall-clock capture time (Unix) for a camera or network stream (null: not a source frame)
    source_clock  "media" or "wall": what source_ts measures (null: not a source frame)
    received_t    wall-clock time the frame was read from the source (Unix), s (null: not a source frame)

A ``--source`` frame the governor's admission rule skipped (the board within a few C of its trip
point, :mod:`lotus.governor.admission`) is not run and sends :func:`skip_event` instead::

    type          "skipped"
    reason        "thermal" (the shield's rule) or "policy" (the policy's served share)
    t, model, source, frame (the daemon's frame counter, not advanced), temps_c, power_w, cpu_khz,
    gpu_hz, mode, policy; source_frame, source_ts, source_clock, received_t as above

It does not enter the ``/v1/telemetry`` samples (they describe frames that ran); the
``lotus_frames_skipped_total`` counter counts it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lotus.runtime.pipeline import FrameResult

SUBSCRIBER_QUEUE = 64  # events a subscriber may have waiting before the oldest is dropped
Event = dict[str, Any]


def frame_event(result: FrameResult, sample: Event) -> Event:
    """The full per-frame event (see the module doc): ``sample`` plus detections, timings, clocks, origin."""
    dets = result.detections
    origin = result.origin
    return {
        "type": "frame",
        **sample,
        "model_version": result.model_version,
        "provider": result.provider,
        "image_size": list(result.image_size),
        "boxes": [[round(float(v), 2) for v in d.box] for d in dets],
        "scores": [round(float(d.score), 4) for d in dets],
        "labels": [d.label for d in dets],
        "class_ids": [d.class_id for d in dets],
        "timings_ms": {k: round(v, 3) for k, v in result.timings_ms.items()},
        "clocks_before": dict(result.clocks_before),
        "clocks_stage2": dict(result.clocks_stage2),
        "clocks_after": dict(result.clocks_after),
        "source_frame": origin.index if origin else None,
        "source_ts": round(origin.ts_s, 6) if origin else None,
        "source_clock": origin.clock if origin else None,
        "received_t": round(origin.received_s, 6) if origin else None,
    }


def skip_event(result: FrameResult) -> Event:
    """The event of a frame the admission rule skipped (see the module doc)."""
    origin = result.origin
    return {
        "type": "skipped",
        "reason": result.skipped or "thermal",
        "t": round(time.time(), 4),
        "model": result.model,
        "source": result.source,
        "frame": result.frame,
        "temps_c": {k: round(v, 2) for k, v in result.temps_c.items()},
        "power_w": round(result.power_w, 3),
        "cpu_khz": result.clocks_after.get("cpu_khz"),
        "gpu_hz": result.clocks_after.get("gpu_hz"),
        "mode": result.governor["mode"],
        "policy": result.governor["policy"],
        "source_frame": origin.index if origin else None,
        "source_ts": round(origin.ts_s, 6) if origin else None,
        "source_clock": origin.clock if origin else None,
        "received_t": round(origin.received_s, 6) if origin else None,
    }


class Subscriber:
    """One live client's bounded, ordered event queue (lives on the server's event loop).

    :param limit: events held at most; on overflow the oldest is dropped and counted in ``missed``
    :param sources: frame sources (``FrameResult.source``) this subscriber wants; None: all
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int, sources: Collection[str] | None) -> None:
        self.loop, self.limit = loop, max(int(limit), 1)
        self.sources = frozenset(sources) if sources is not None else None
        self.missed_total = 0  # events dropped over the subscription's life
        self._missed = 0  # dropped since the last lagged notice
        self._items: deque[Event] = deque()
        self._wake = asyncio.Event()

    def wants(self, source: str) -> bool:
        return self.sources is None or source in self.sources

    def put(self, event: Event) -> None:
        """Queue ``event`` (on the loop's thread), dropping the oldest one when full."""
        if len(self._items) >= self.limit:
            self._items.popleft()
            self._missed += 1
            self.missed_total += 1
        self._items.append(event)
        self._wake.set()

    async def get(self, timeout_s: float | None = None) -> Event:
        """The next event, or a ``lagged`` notice first when events were dropped since the last call.

        :raises TimeoutError: nothing arrived within ``timeout_s`` seconds
        """
        while not self._items and not self._missed:
            self._wake.clear()
            await asyncio.wait_for(self._wake.wait(), timeout_s)
        if self._missed:
            missed, self._missed = self._missed, 0
            return {"type": "lagged", "missed": missed}
        return self._items.popleft()

    @property
    def pending(self) -> int:
        return len(self._items)


class EventBus:
    """Recent compact samples plus live subscribers (see module doc)."""

    def __init__(self, keep: int = 512) -> None:
        self.samples: deque[Event] = deque(maxlen=keep)
        self._subs: set[Subscriber] = set()
        self._lock = threading.Lock()

    def publish(self, sample: Event, event: Callable[[], Event] | Event | None = None) -> None:
        """Keep ``sample``; send ``event`` (built only when someone listens; default ``sample``) to subscribers.

        Thread-safe and non-blocking: called from the inference worker thread.
        """
        self.samples.append(sample)
        with self._lock:
            subs = [s for s in self._subs if s.wants(sample.get("source", ""))]
        if not subs:
            return
        full = event() if callable(event) else (event if event is not None else sample)
        for sub in subs:
            try:
                sub.loop.call_soon_threadsafe(sub.put, full)
            except RuntimeError:  # its loop is closed
                self.unsubscribe(sub)

    def notify(self, event: Event, source: str) -> None:
        """Send ``event`` to the live subscribers of ``source`` only (not kept in the samples); thread-safe."""
        with self._lock:
            subs = [s for s in self._subs if s.wants(source)]
        for sub in subs:
            try:
                sub.loop.call_soon_threadsafe(sub.put, event)
            except RuntimeError:  # its loop is closed
                self.unsubscribe(sub)

    def subscribe(self, limit: int = SUBSCRIBER_QUEUE, sources: Collection[str] | None = None) -> Subscriber:
        """A new subscriber on the running loop; it receives every event published from now on."""
        sub = Subscriber(asyncio.get_running_loop(), limit, sources)
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            self._subs.discard(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def recent(self, limit: int) -> list[Event]:
        items = list(self.samples)
        return items[-limit:] if limit > 0 else []
