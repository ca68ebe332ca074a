"""Pydantic request/response models of the HTTP API (they also document /docs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lotus.core.schema import GovernorMode

if TYPE_CHECKING:
    from lotus.runtime.pipeline import FrameResult


class ErrorBody(BaseModel):
    error: str = Field(description="what is wrong with the request")


class _Response(BaseModel):
    # a field the pipeline produces but the model lacks is an error, never silently dropped
    model_config = ConfigDict(extra="forbid")


class DetectionOut(_Response):
    box: list[float] = Field(description="x0, y0, x1, y1 in original-image pixels (2 decimals)")
    score: float = Field(description="confidence in [0, 1] (4 decimals)")
    label: str = Field(description="class name, or the recognised text (OCR models)")
    class_id: int | None = Field(default=None, description="1-based class index (None for OCR text)")


class Clocks(_Response):
    # int | float: integer clocks stay JSON integers (as the sysfs and the action table give them)
    cpu_khz: int | float | None = Field(default=None, description="CPU clock, kHz (None: not readable)")
    gpu_hz: int | float | None = Field(default=None, description="GPU clock, Hz (None: no GPU domain)")


class FrameGovernor(_Response):
    mode: GovernorMode
    policy: str = Field(description="the policy spec in use, e.g. drl")
    action_stage2: int | None = Field(description="joint clock index chosen for stage 2 (None: mode off)")
    action_next: int | None = Field(description="joint clock index chosen for the next frame (None: mode off)")
    deadline_ms: float = Field(description="the model's per-frame latency target, ms")
    slo_met: bool = Field(description="frame latency <= deadline_ms")


class DetectResponse(_Response):
    """The JSON of ``POST /v1/detect`` (and of each ``WS /v1/stream`` result, plus ``seq``/``dropped``).

    This model is the one definition of that shape: :meth:`from_frame` is the only conversion from
    the pipeline's :class:`~lotus.runtime.pipeline.FrameResult`.
    """

    model: str
    frame: int = Field(description="frame counter of the daemon")
    image_size: list[int] = Field(description="width, height, px")
    detections: list[DetectionOut]
    num_proposals: int = Field(description="proposals stage 1 passed to stage 2")
    timings_ms: dict[str, float] = Field(
        description="queue, decode, stage1, decision_stage2, clock_set_stage2, stage2, decision_next, "
        "clock_set_next, frame, total; ms (3 decimals)"
    )
    clocks_before: Clocks
    clocks_stage2: Clocks
    clocks_after: Clocks = Field(description="clocks chosen for the next frame")
    temps_c: dict[str, float] = Field(description="sensor -> temperature, C (2 decimals)")
    power_w: float = Field(description="board power at the end of the frame, W (3 decimals)")
    energy_j: float = Field(description="board energy over the frame, J (6 decimals)")
    throttled: bool
    governor: FrameGovernor
    source: str = Field(description="who sent the frame: api, ws, kserve or source")
    provider: str = Field(description="ONNX Runtime execution provider the model ran on")

    @classmethod
    def from_frame(cls, result: FrameResult) -> DetectResponse:
        """The response for one frame, rounded for the wire (see the field descriptions).

        Built as one dict and validated in one call: as fast as the plain dict it replaced.
        """
        return cls.model_validate(
            {
                "model": result.model,
                "frame": result.frame,
                "image_size": list(result.image_size),
                "detections": [
                    {
                        "box": [round(v, 2) for v in d.box],
                        "score": round(float(d.score), 4),
                        "label": d.label,
                        "class_id": d.class_id,
                    }
                    for d in result.detections
                ],  # fmt: skip
                "num_proposals": result.num_proposals,
                "timings_ms": {k: round(v, 3) for k, v in result.timings_ms.items()},
                "clocks_before": result.clocks_before,
                "clocks_stage2": result.clocks_stage2,
                "clocks_after": result.clocks_after,
                "temps_c": {k: round(v, 2) for k, v in result.temps_c.items()},
                "power_w": round(result.power_w, 3),
                "energy_j": round(result.energy_j, 6),
                "throttled": result.throttled,
                "governor": result.governor,
                "source": result.source,
                "provider": result.provider,
            }
        )

    def to_json(self, **extra: Any) -> dict[str, Any]:
        """JSON-ready dict (``extra`` keys, e.g. ``seq``, first)."""
        return {**extra, **self.model_dump(mode="json")}


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    ready: bool
    status: str
    provider: str | None
    board: str | None
    models: list[str]
    stages: dict[str, dict[str, dict[str, str | None]]] = Field(
        default_factory=dict,
        description="model -> stage -> provider (the one its ORT session runs on), variant (null: the stage's "
        "own file) and file",
    )
    governor_mode: str | None
    policy: str | None = Field(description="the configured policy")
    deciding: str | None = Field(
        default=None, description="the policy actually deciding: the configured one, or the fallback that replaced it"
    )
    policy_error: str | None = Field(default=None, description="why the configured policy is not deciding")
    debug: dict[str, Any]


class GovernorUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: GovernorMode | None = None
    policy: str | None = Field(default=None, description="performance, powersave, stock, fixed:<khz>,<hz>, drl, ...")


class InferTensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: Any = None


class InferOutputRequest(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[InferTensor]
    outputs: list[InferOutputRequest] | None = None


class FrameEvent(_Response):
    """One per-frame event of ``GET /v1/events`` and ``WS /v1/stream?subscribe=`` (see :mod:`lotus.runtime.events`).

    The first block is the compact sample ``/v1/telemetry`` keeps (its keys predate the rest and
    keep their meaning: ``detections`` is a count); the detections themselves are ``boxes``,
    ``scores``, ``labels`` and ``class_ids``, index by index.
    """

    type: Literal["frame"] = "frame"
    t: float = Field(description="wall-clock time the event was made (Unix), s")
    model: str
    frame: int = Field(description="frame counter of the daemon")
    source: str = Field(description="who sent the frame: api, ws, kserve or source")
    latency_ms: float = Field(description="frame latency, ms (timings_ms.frame)")
    stage1_ms: float
    stage2_ms: float
    proposals: int = Field(description="proposals stage 1 passed to stage 2")
    detections: int = Field(description="number of detections")
    cpu_khz: int | float | None = Field(description="CPU clock chosen for the next frame, kHz")
    gpu_hz: int | float | None = Field(description="GPU clock chosen for the next frame, Hz")
    temps_c: dict[str, float] = Field(description="sensor -> temperature, C")
    power_w: float = Field(description="board power at the end of the frame, W")
    energy_j: float = Field(description="board energy over the frame, J")
    throttled: bool
    mode: GovernorMode
    policy: str
    action: int | None = Field(description="joint clock index chosen for the next frame")
    slo_met: bool
    model_version: str
    provider: str = Field(description="ONNX Runtime execution provider the model ran on")
    image_size: list[int] = Field(description="width, height, px")
    boxes: list[list[float]] = Field(description="x0, y0, x1, y1 per detection, image pixels")
    scores: list[float] = Field(description="confidence per detection, [0, 1]")
    labels: list[str] = Field(description="class name per detection, or the recognised text (OCR models)")
    class_ids: list[int | None] = Field(description="1-based class index per detection (None for OCR text)")
    timings_ms: dict[str, float] = Field(
        description="queue, decode, stage1, decision_stage2, clock_set_stage2, stage2, decision_next, "
        "clock_set_next, frame, total; ms"
    )
    clocks_before: Clocks = Field(description="clocks at the start of the frame (stage 1 ran at these)")
    clocks_stage2: Clocks = Field(description="clocks applied for stage 2")
    clocks_after: Clocks = Field(description="clocks chosen for the next frame")
    source_frame: int | None = Field(description="index of the frame in the --source stream, 0-based (None: API)")
    source_ts: float | None = Field(
        description="source timestamp, s: media position (file, directory) or wall-clock capture time (live)"
    )
    source_clock: Literal["media", "wall"] | None = Field(description="what source_ts measures")
    received_t: float | None = Field(description="wall-clock time the frame was read from the source (Unix), s")


class LaggedNotice(_Response):
    """Sent to a subscriber in place of the events it was too slow to receive (then the stream goes on)."""

    type: Literal["lagged"] = "lagged"
    missed: int = Field(gt=0, description="events dropped since the previous notice")
