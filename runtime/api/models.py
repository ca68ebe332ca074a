"""Pydantic request/response models of the HTTP API (they also document /docs)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lotus.core.schema import GovernorMode


class ErrorBody(BaseModel):
    error: str = Field(description="what is wrong with the request")


class DetectionOut(BaseModel):
    box: list[float] = Field(description="x0, y0, x1, y1 in original-image pixels")
    score: float
    label: str = Field(description="class name, or the recognised text (OCR models)")
    class_id: int | None = None


class Clocks(BaseModel):
    cpu_khz: float | None = None
    gpu_hz: float | None = None


class DetectResponse(BaseModel):
    model: str
    frame: int = Field(description="frame counter of the daemon")
    image_size: list[int] = Field(description="width, height")
    detections: list[DetectionOut]
    num_proposals: int = Field(description="proposals stage 1 passed to stage 2")
    timings_ms: dict[str, float] = Field(description="queue, decode, stage1, decision, clock set, stage2, ... ms")
    clocks_before: Clocks
    clocks_stage2: Clocks
    clocks_after: Clocks = Field(description="clocks chosen for the next frame")
    temps_c: dict[str, float]
    power_w: float
    energy_j: float = Field(description="board energy over the frame, J")
    throttled: bool
    governor: dict[str, Any]
    source: str
    provider: str


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    ready: bool
    status: str
    provider: str | None
    board: str | None
    models: list[str]
    governor_mode: str | None
    policy: str | None
    debug: dict[str, Any]


class GovernorUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: GovernorMode | None = None
    policy: str | None = Field(None, description="performance, powersave, stock, fixed:<khz>,<hz>, drl, ...")


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
