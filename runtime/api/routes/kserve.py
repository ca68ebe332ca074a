"""KServe v2 / Open Inference Protocol subset, with Triton's binary tensor data extension.

Input ``image``: ``UINT8 [H, W, 3]`` (or ``[1, H, W, 3]``) RGB pixels, or ``BYTES [1]`` holding an
encoded JPEG/PNG. Outputs: ``boxes FP32 [N, 4]`` (x0, y0, x1, y1 in image pixels), ``scores FP32
[N]``, ``labels BYTES [N]``, ``class_ids INT64 [N]``. Errors are ``{"error": "..."}``; a malformed
request raises :class:`~lotus.core.errors.BadInputError` (400, 413 for an oversized body).
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from lotus.core.errors import BadInputError
from lotus.runtime.api.deps import DaemonDep, read_body
from lotus.runtime.api.models import InferOutputRequest, InferRequest, InferTensor
from lotus.runtime.api.routes.detect import run_frame
from lotus.runtime.daemon import VERSION, Daemon
from lotus.runtime.pipeline import FrameResult, LoadedModel

router = APIRouter(prefix="/v2", tags=["kserve-v2"])
HEADER_LEN = "Inference-Header-Content-Length"
DTYPES = {"UINT8": np.uint8, "FP32": np.float32, "INT64": np.int64, "INT32": np.int32, "FP16": np.float16}


def _model(daemon: Daemon, name: str) -> LoadedModel:
    model = daemon.models.get(name)
    if model is None:
        if not daemon.ready and name in {m.name for m in daemon.settings.models.load}:
            raise HTTPException(503, f"model {name!r} is not ready", headers={"Retry-After": "1"})
        raise HTTPException(404, f"unknown model {name!r}")
    return model


@router.get("", summary="Server metadata")
async def server_meta() -> dict[str, Any]:
    return {"name": "lotus", "version": VERSION, "extensions": ["binary_tensor_data"]}


@router.get("/health/live", summary="Live")
async def live() -> Response:
    return Response(status_code=200)


@router.get("/health/ready", summary="Ready (all models warm)")
async def ready(daemon: DaemonDep) -> Response:
    return Response(status_code=200 if daemon.ready else 503)


@router.get("/models/{name}", summary="Model metadata")
@router.get("/models/{name}/versions/{version}", include_in_schema=False)
async def model_meta(name: str, daemon: DaemonDep, version: str | None = None) -> dict[str, Any]:
    model = _model(daemon, name)
    return {
        "name": name,
        "versions": [model.version],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "image", "datatype": "UINT8", "shape": [-1, -1, 3]}],
        "outputs": [
            {"name": "boxes", "datatype": "FP32", "shape": [-1, 4]},
            {"name": "scores", "datatype": "FP32", "shape": [-1]},
            {"name": "labels", "datatype": "BYTES", "shape": [-1]},
            {"name": "class_ids", "datatype": "INT64", "shape": [-1]},
        ],
    }


@router.get("/models/{name}/ready", summary="Model ready")
@router.get("/models/{name}/versions/{version}/ready", include_in_schema=False)
async def model_ready(name: str, daemon: DaemonDep, version: str | None = None) -> Response:
    _model(daemon, name)
    return Response(status_code=200 if daemon.ready else 503)


def _bytes_elements(raw: bytes) -> list[bytes]:
    out, i = [], 0
    while i + 4 <= len(raw):
        (n,) = struct.unpack_from("<I", raw, i)
        out.append(raw[i + 4 : i + 4 + n])
        i += 4 + n
    return out


def _image_input(tensor: InferTensor, binary: bytes | None) -> np.ndarray | bytes:
    """The decoded RGB array, or encoded image bytes (decoded on the worker thread)."""
    dt = tensor.datatype.upper()
    if dt == "BYTES":
        if binary is not None:
            elements = _bytes_elements(binary)
        else:
            data = tensor.data if isinstance(tensor.data, list) else [tensor.data]
            elements = []
            for item in data:
                if not isinstance(item, str):
                    raise BadInputError("BYTES input 'image' must hold strings (base64 image) in JSON")
                try:
                    elements.append(base64.b64decode(item, validate=True))
                except ValueError:
                    elements.append(item.encode())
        if len(elements) != 1:
            raise BadInputError(f"BYTES input 'image' must hold exactly one encoded image, got {len(elements)}")
        return elements[0]
    if dt != "UINT8":
        raise BadInputError(f"input 'image' must be UINT8 [H,W,3] pixels or BYTES [1], not {tensor.datatype}")
    shape = list(tensor.shape)
    if len(shape) == 4 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 3 or shape[2] != 3 or min(shape) <= 0:
        raise BadInputError(f"input 'image' must have shape [H, W, 3], got {tensor.shape}")
    try:
        if binary is not None:
            arr = np.frombuffer(binary, dtype=np.uint8)
        else:
            arr = np.asarray(tensor.data, dtype=np.uint8).reshape(-1)
        return arr.reshape(shape).copy()
    except (ValueError, TypeError, OverflowError) as exc:  # OverflowError: a value outside 0..255
        raise BadInputError(f"input 'image' data does not match shape {tensor.shape}: {exc}") from None


def _outputs(result: FrameResult) -> dict[str, tuple[str, list[int], np.ndarray | list[bytes]]]:
    dets = result.detections
    boxes = np.array([d.box for d in dets], dtype=np.float32).reshape(-1, 4)
    scores = np.array([d.score for d in dets], dtype=np.float32)
    ids = np.array([d.class_id if d.class_id is not None else -1 for d in dets], dtype=np.int64)
    labels = [d.label.encode() for d in dets]
    return {
        "boxes": ("FP32", [len(dets), 4], boxes),
        "scores": ("FP32", [len(dets)], scores),
        "labels": ("BYTES", [len(dets)], labels),
        "class_ids": ("INT64", [len(dets)], ids),
    }


def _serialize(dtype: str, value: Any) -> bytes:
    if dtype == "BYTES":
        return b"".join(struct.pack("<I", len(b)) + b for b in value)
    return np.ascontiguousarray(value).tobytes()


@router.post("/models/{name}/infer", summary="Inference (JSON or binary tensor data)")
@router.post("/models/{name}/versions/{version}/infer", include_in_schema=False)
async def infer(name: str, request: Request, daemon: DaemonDep, version: str | None = None) -> Response:
    model = _model(daemon, name)
    body = await read_body(request, daemon.settings.server.max_body_bytes)
    header_len = request.headers.get(HEADER_LEN)
    try:
        n = int(header_len) if header_len is not None else len(body)
        if not 0 < n <= len(body):
            raise ValueError(f"{HEADER_LEN}={header_len} outside the body")
        req = InferRequest.model_validate_json(body[:n])
    except (ValueError, ValidationError) as exc:
        raise BadInputError(f"malformed inference request: {str(exc).splitlines()[0]}") from None
    binary = body[n:]
    image_tensor, image_binary, offset = None, None, 0
    for tensor in req.inputs:
        size = (tensor.parameters or {}).get("binary_data_size")
        chunk = None
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise BadInputError(f"input {tensor.name!r}: binary_data_size must be a byte count, got {size!r}")
            chunk = binary[offset : offset + size]
            if len(chunk) != size:
                raise BadInputError(f"input {tensor.name!r}: binary data shorter than binary_data_size")
            offset += size
        if tensor.name == "image" or (image_tensor is None and len(req.inputs) == 1):
            image_tensor, image_binary = tensor, chunk
    if image_tensor is None:
        raise BadInputError("request has no input named 'image'")
    if image_binary is None and image_tensor.data is None:
        raise BadInputError("input 'image' has neither data nor binary_data_size")
    data = _image_input(image_tensor, image_binary)
    result = await run_frame(daemon, data, model.name, source="kserve")
    outs = _outputs(result)
    params = req.parameters or {}
    requested = req.outputs or [InferOutputRequest(name=k) for k in outs]
    binary_all = bool(params.get("binary_data_output", False))
    out_json, blobs = [], []
    for o in requested:
        if o.name not in outs:
            raise BadInputError(f"unknown output {o.name!r}; outputs: {', '.join(outs)}")
        dtype, shape, value = outs[o.name]
        want_binary = bool((o.parameters or {}).get("binary_data", binary_all))
        entry: dict[str, Any] = {"name": o.name, "datatype": dtype, "shape": shape}
        if want_binary:
            blob = _serialize(dtype, value)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = [b.decode() for b in value] if dtype == "BYTES" else np.asarray(value).reshape(-1).tolist()
        out_json.append(entry)
    doc = {
        "model_name": name,
        "model_version": model.version,
        "id": req.id or "",
        "parameters": {"num_proposals": result.num_proposals, "energy_j": result.energy_j,
                       "latency_ms": round(result.timings_ms["frame"], 3)},
        "outputs": out_json,
    }  # fmt: skip
    if not blobs:
        return JSONResponse(doc)
    header = json.dumps(doc).encode()
    return Response(
        header + b"".join(blobs), media_type="application/octet-stream", headers={HEADER_LEN: str(len(header))}
    )
