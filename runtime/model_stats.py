"""Per-model inference statistics in the shape of Triton's statistics extension (``/v2/models/stats``).

Every ``/v2/models/{name}/infer`` and ``/v1/detect`` request for a loaded model is one request
here: :meth:`ModelStats.track` times it and records it once it ends (success or failure). The
phases map onto the frame's timings (:class:`~lotus.runtime.pipeline.FrameResult.timings_ms`):

- ``queue``: waiting for the inference worker (the queue and the pipeline lock);
- ``compute_input``: parsing the request's tensors and decoding the image (pre-processing runs
  inside the stage-1 timing, so it is counted in ``compute_infer``);
- ``compute_infer``: both ONNX stages and the two governor decisions with their clock writes;
- ``compute_output``: building the response (tensors or JSON).

A request of ``B`` images counts once in ``success`` and each phase, and ``B`` times in
``inference_count`` and ``execution_count`` (the daemon runs its frames one after another);
``batch_stats`` is keyed by that request batch size. Durations are nanoseconds, as in Triton.
The accumulator is thread-safe: one lock guards all entries.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lotus.runtime.pipeline import FrameResult

PHASES = ("queue", "compute_input", "compute_infer", "compute_output")
INFER_STEPS = ("stage1", "decision_stage2", "clock_set_stage2", "stage2", "decision_next", "clock_set_next")


@dataclass
class Duration:
    """A count and the nanoseconds summed over it (Triton's ``StatisticDuration``)."""

    count: int = 0
    ns: int = 0

    def add(self, ns: int) -> None:
        self.count += 1
        self.ns += max(int(ns), 0)

    def json(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass
class _Entry:
    version: str
    last_inference_ms: int = 0
    inference_count: int = 0
    execution_count: int = 0
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    phases: dict[str, Duration] = field(default_factory=lambda: {p: Duration() for p in PHASES})
    batches: dict[int, dict[str, Duration]] = field(default_factory=dict)


def _empty(name: str, version: str) -> dict[str, Any]:
    return _json(name, _Entry(version))


def _json(name: str, e: _Entry) -> dict[str, Any]:
    stats = {"success": e.success.json(), "fail": e.fail.json(), **{p: d.json() for p, d in e.phases.items()},
             "cache_hit": Duration().json(), "cache_miss": Duration().json()}  # fmt: skip
    batches = [
        {"batch_size": size, **{p: d.json() for p, d in phases.items()}} for size, phases in sorted(e.batches.items())
    ]
    return {
        "name": name,
        "version": e.version,
        "last_inference": e.last_inference_ms,
        "inference_count": e.inference_count,
        "execution_count": e.execution_count,
        "inference_stats": stats,
        "batch_stats": batches,
        "memory_usage": [],
    }


class RequestTimer:
    """One request being timed; use as ``with stats.track(name, version) as timer:``.

    Add phase times with :meth:`add_input_ns`, :meth:`add_frame` and :meth:`add_output_ns`; on
    leaving the block the request is recorded as a success, or as a failure when it raised.
    """

    def __init__(self, stats: ModelStats, name: str, version: str) -> None:
        self.stats, self.name, self.version = stats, name, version
        self.t0 = time.perf_counter_ns()
        self.frames = 0
        self.ns = dict.fromkeys(PHASES, 0)

    def add_input_ns(self, ns: int) -> None:
        """Time spent parsing the request's tensors."""
        self.ns["compute_input"] += ns

    def add_frame(self, result: FrameResult) -> None:
        """One frame's queue wait, decode and inference (from its ``timings_ms``)."""
        t = result.timings_ms
        self.frames += 1
        self.ns["queue"] += int(t.get("queue", 0.0) * 1e6)
        self.ns["compute_input"] += int(t.get("decode", 0.0) * 1e6)
        self.ns["compute_infer"] += int(sum(t.get(k, 0.0) for k in INFER_STEPS) * 1e6)

    def add_output_ns(self, ns: int) -> None:
        """Time spent building the response."""
        self.ns["compute_output"] += ns

    def __enter__(self) -> RequestTimer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stats.record(self, ok=exc_type is None)


class ModelStats:
    """Thread-safe per-model request statistics (see the module doc)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def track(self, name: str, version: str) -> RequestTimer:
        """A timer for one request to model ``name`` (version ``version``)."""
        return RequestTimer(self, name, version)

    def record(self, timer: RequestTimer, ok: bool) -> None:
        """Add a finished request (called by :class:`RequestTimer` on exit)."""
        total = time.perf_counter_ns() - timer.t0
        with self._lock:
            e = self._entries.get(timer.name)
            if e is None or e.version != timer.version:  # a new version starts from zero
                e = self._entries[timer.name] = _Entry(timer.version)
            e.last_inference_ms = int(time.time() * 1e3)
            if not ok:
                e.fail.add(total)
                return
            e.success.add(total)
            e.inference_count += timer.frames
            e.execution_count += timer.frames
            for phase, ns in timer.ns.items():
                e.phases[phase].add(ns)
            batch = e.batches.setdefault(max(timer.frames, 1), {p: Duration() for p in PHASES[1:]})
            for phase, d in batch.items():
                d.add(timer.ns[phase])

    def drop(self, name: str) -> None:
        """Forget model ``name`` (it was unloaded)."""
        with self._lock:
            self._entries.pop(name, None)

    def snapshot(self, models: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
        """Triton ``model_stats`` entries for ``(name, version)`` pairs; zeros for a model not used yet."""
        out = []
        with self._lock:
            for name, version in models:
                e = self._entries.get(name)
                out.append(_json(name, e) if e is not None and e.version == version else _empty(name, version))
        return out
