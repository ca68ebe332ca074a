"""Prometheus metrics of the daemon, in base units (``_seconds``, ``_joules``, ``_celsius``, ``_hertz``).

Each daemon owns its own :class:`~prometheus_client.CollectorRegistry` (tests start several apps
in one process). Names follow the Prometheus conventions: counters end in ``_total``, metadata
goes in ``*_info``, labels are low-cardinality (model, stage, policy, mode, reason, source).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

if TYPE_CHECKING:  # the pipeline imports this module
    from lotus.runtime.governor_loop import Decision
    from lotus.runtime.pipeline import FrameResult

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)
DECISION_BUCKETS = (10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 5e-3, 0.02)
ENERGY_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class Metrics:
    """Every metric the daemon exports, bound to one registry."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.stage_seconds = Histogram(
            "lotus_inference_duration_seconds", "Time per pipeline stage (decode, stage1, stage2, frame)",
            ["model", "stage"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_seconds = Histogram(
            "lotus_queue_duration_seconds", "Time a frame waited for the inference worker", ["model"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.frames = Counter("lotus_frames_total", "Frames processed", ["model", "source"], registry=r)
        self.slo_violations = Counter(
            "lotus_slo_violations_total", "Frames slower than the model's deadline", ["model"], registry=r
        )
        self.energy = Counter("lotus_energy_joules_total", "Board energy spent on frames", ["model"], registry=r)
        self.frame_energy = Histogram(
            "lotus_frame_energy_joules", "Board energy per frame", ["model"], buckets=ENERGY_BUCKETS, registry=r
        )
        self.rejected = Counter("lotus_rejected_requests_total", "Requests refused", ["reason"], registry=r)
        self.dropped = Counter("lotus_frames_dropped_total", "Stream frames dropped (stale)", ["source"], registry=r)
        self.skipped = Counter(
            "lotus_frames_skipped_total", "Stream frames not run: the governor's admission rule skipped them",
            ["model", "reason"], registry=r,
        )  # fmt: skip
        self.queue_depth = Gauge("lotus_queue_depth", "Frames waiting for or in the inference worker", registry=r)
        self.decisions = Counter(
            "lotus_governor_decisions_total", "Governor decisions", ["policy", "mode", "stage"], registry=r
        )
        self.decision_seconds = Histogram(
            "lotus_governor_decision_duration_seconds", "Time of policy.act (observation to action)",
            buckets=DECISION_BUCKETS, registry=r,
        )  # fmt: skip
        self.clock_set_seconds = Histogram(
            "lotus_clock_set_duration_seconds", "Time to write the chosen clocks", buckets=DECISION_BUCKETS, registry=r
        )
        self.throttle_events = Counter(
            "lotus_thermal_throttle_events_total", "Times firmware throttling started capping a clock", registry=r
        )
        self.cpu_hz = Gauge("lotus_cpu_frequency_hertz", "CPU clock after the last decision", registry=r)
        self.gpu_hz = Gauge("lotus_gpu_frequency_hertz", "GPU clock after the last decision", registry=r)
        self.temp = Gauge("lotus_temperature_celsius", "Thermal zone temperature", ["zone"], registry=r)
        self.power = Gauge("lotus_power_watts", "Board input power", registry=r)
        self.build = Info("lotus_build", "Daemon build, ORT version, active provider and board", registry=r)
        self.policy = Info("lotus_policy", "Active governor policy, its version and mode", registry=r)
        self.fallbacks = Gauge("lotus_governor_fallbacks", "Decisions the shield's fallback answered", registry=r)
        self.stretch = Gauge(
            "lotus_governor_deadline_stretch", "Deadline factor the shield shows the policy (1: none)", registry=r
        )
        self.lookahead = Gauge(
            "lotus_shield_lookahead_error_celsius",
            "How optimistic the shield's 1.5 s temperature prediction was near the trip, C (predicted minus sensed)",
            ["quantile"], registry=r,
        )  # fmt: skip
        self.lookahead_checked = Gauge(
            "lotus_shield_lookahead_checks", "Predictions near the trip checked against the sensors", registry=r
        )

    def observe_frame(self, result: FrameResult, d1: Decision, d2: Decision, throttle_started: bool) -> None:
        """Record one frame: stage times, energy, the two governor decisions (before stage 2 and
        for the next frame), throttling, clocks, temperatures and power."""
        m = result.model
        t = result.timings_ms
        for stage in ("decode", "stage1", "stage2", "frame"):
            self.stage_seconds.labels(m, stage).observe(t[stage] / 1e3)
        self.queue_seconds.labels(m).observe(t["queue"] / 1e3)
        self.frames.labels(m, result.source).inc()
        if not result.governor["slo_met"]:
            self.slo_violations.labels(m).inc()
        self.energy.labels(m).inc(max(result.energy_j, 0.0))
        self.frame_energy.labels(m).observe(max(result.energy_j, 0.0))
        gov = result.governor
        for stage, d in (("stage2", d1), ("next_frame", d2)):
            if d.action is not None:
                self.decisions.labels(gov["policy"], gov["mode"], stage).inc()
                self.decision_seconds.observe(d.decision_s)
                if d.applied:
                    self.clock_set_seconds.observe(d.clock_set_s)
        if throttle_started:
            self.throttle_events.inc()
        cpu_khz, gpu_hz = result.clocks_after.get("cpu_khz"), result.clocks_after.get("gpu_hz")
        if cpu_khz is not None:
            self.cpu_hz.set(float(cpu_khz) * 1e3)
        if gpu_hz is not None:
            self.gpu_hz.set(float(gpu_hz))
        for zone, value in result.temps_c.items():
            self.temp.labels(zone).set(value)
        self.power.set(result.power_w)

    def observe_skip(self, result: FrameResult) -> None:
        """Record a frame the admission rule skipped (``result.skipped`` is the reason), and the sensors it read."""
        self.skipped.labels(result.model, result.skipped or "thermal").inc()
        for zone, value in result.temps_c.items():
            self.temp.labels(zone).set(value)
        self.power.set(result.power_w)

    def render(self) -> bytes:
        return generate_latest(self.registry)
