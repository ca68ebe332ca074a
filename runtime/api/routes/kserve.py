"""KServe v2 / Open Inference Protocol, with Triton's extensions (works with ``tritonclient[http]``).

Core protocol: server and model metadata, liveness/readiness, ``POST /v2/models/{name}/infer``;
every per-model route also answers under ``/versions/{v}`` (404 unless ``v`` is the loaded version).
Extensions (``GET /v2`` lists them):

- ``binary_tensor_data``: tensors as raw bytes after the JSON header (``Inference-Header-Content-Length``);
- ``model_configuration``: ``GET /v2/models/{name}/config``, a Triton model configuration;
- ``model_repository``: ``POST /v2/repository/index``, ``POST /v2/repository/models/{name}/load``
  and ``/unload`` (load/unload need ``Authorization: Bearer <governor.token>``; 403 without a token
  configured; see :mod:`lotus.runtime.model_control`);
- ``statistics``: ``GET /v2/models/stats`` and ``/v2/models/{name}/stats``, Triton's format
  (see :mod:`lotus.runtime.model_stats`).

Input ``image``: ``UINT8 [H, W, 3]`` RGB pixels, or ``BYTES [1]`` holding an encoded JPEG/PNG.
Outputs: ``boxes FP32 [N, 4]`` (x0, y0, x1, y1 in image pixels), ``scores FP32 [N]``, ``labels
BYTES [N]``, ``class_ids INT64 [N]`` (-1: none, OCR text) and ``num_detections INT64 [1]``.
Batches: ``UINT8 [B, H, W, 3]`` with ``1 <= B <= server.max_batch_size`` runs the images one after
another (each with its own governor decisions) and every output gets the leading batch dimension:
``boxes [B, N, 4]``, ``scores``/``labels``/``class_ids [B, N]`` padded to the largest ``N`` of the
batch (score 0, label empty, class id -1), ``num_detections [B]`` the real counts.

Errors are ``{"error": "..."}``; a malformed request raises :class:`~lotus.core.errors.BadInputError`
(400, 413 for an oversized body).
"""

from __future__ import annotations

import base64
import hmac
import json
import struct
import time
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from lotus.core.errors import BadInputError
from lotus.runtime.api.deps import DaemonDep, read_body
from lotus.runtime.api.models import InferOutputRequest, InferRequest, InferTensor
from lotus.runtime.api.routes.detect import run_frame
from lotus.runtime.daemon import VERSION, Daemon
from lotus.runtime.model_control import ControlError
from lotus.runtime.pipeline import FrameResult, LoadedModel

router = APIRouter(prefix="/v2", tags=["kserve-v2"])
HEADER_LEN = "Inference-Header-Content-Length"
EXTENSIONS = ["binary_tensor_data", "model_configuration", "model_repository", "statistics"]
OUTPUTS = ("boxes", "scores", "labels", "class_ids", "num_detections")
CONTROL_BODY_LIMIT = 64 * 1024  # load/unload/index bodies are small JSON documents
TRITON_TYPES = {"BYTES": "TYPE_STRING"}  # else TYPE_<KServe datatype>


def _model(daemon: Daemon, name: str, version: str | None = None) -> LoadedModel:
    """The loaded model ``name``; 404 when it (or its ``version``) is not loaded, 503 while warming up."""
    model = daemon.models.get(name)
    if model is None:
        if not daemon.ready and name in {m.name for m in daemon.settings.models.load}:
            raise HTTPException(503, f"model {name!r} is not ready", headers={"Retry-After": "1"})
        raise HTTPException(404, f"unknown model {name!r}")
    if version is not None and version != model.version:
        raise HTTPException(404, f"model {name!r} has no version {version!r} (serving version {model.version!r})")
    return model


async def require_control_token(request: Request, daemon: DaemonDep) -> None:
    """Load/unload need ``Authorization: Bearer <governor.token>``; 403 when no token is configured."""
    if daemon.token is None:
        raise HTTPException(403, "model control is disabled: set governor.token or governor.token_file")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), daemon.token.encode()):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


ControlDep = Annotated[None, Depends(require_control_token)]


# --- metadata, configuration ----------------------------------------------------------------------
def _batch_limit(daemon: Daemon) -> int:
    return daemon.settings.server.max_batch_size


def served_io(model: LoadedModel, max_batch: int) -> dict[str, Any]:
    """What ``/infer`` takes and returns for ``model`` (KServe metadata form), and its ONNX stage tensors.

    With batching (``max_batch > 0``) shapes start with the batch dimension (-1), as in Triton's
    metadata; a request without it gets outputs without it.
    """
    spec = model.io_spec()
    lead = [-1] if max_batch > 0 else []
    inputs = [{**t, "shape": lead + list(t["shape"])} for t in spec["inputs"]]
    outputs = [{**t, "shape": lead + list(t["shape"])} for t in spec["outputs"]]
    outputs.append({"name": "num_detections", "datatype": "INT64", "shape": [-1] if max_batch > 0 else [1]})
    return {"inputs": inputs, "outputs": outputs, "stages": spec["stages"]}


@router.get("", summary="Server metadata")
async def server_meta() -> dict[str, Any]:
    return {"name": "lotus", "version": VERSION, "extensions": EXTENSIONS}


@router.get("/health/live", summary="Live")
async def live() -> Response:
    return Response(status_code=200)


@router.get("/health/ready", summary="Ready (all models warm)")
async def ready(daemon: DaemonDep) -> Response:
    return Response(status_code=200 if daemon.ready else 503)


@router.get("/models/stats", summary="Inference statistics of every loaded model (Triton statistics)")
async def all_stats(daemon: DaemonDep) -> dict[str, Any]:
    models = [(m.name, m.version) for m in list(daemon.models.values())]
    return {"model_stats": daemon.model_stats.snapshot(models)}


@router.get("/models/{name}/stats", summary="Inference statistics of one model (Triton statistics)")
@router.get("/models/{name}/versions/{version}/stats", include_in_schema=False)
async def model_stats(name: str, daemon: DaemonDep, version: str | None = None) -> dict[str, Any]:
    model = _model(daemon, name, version)
    return {"model_stats": daemon.model_stats.snapshot([(model.name, model.version)])}


@router.get("/models/{name}", summary="Model metadata")
@router.get("/models/{name}/versions/{version}", include_in_schema=False)
async def model_meta(name: str, daemon: DaemonDep, version: str | None = None) -> dict[str, Any]:
    model = _model(daemon, name, version)
    io = served_io(model, _batch_limit(daemon))
    return {
        "name": name,
        "versions": [model.version],
        "platform": "onnxruntime_onnx",
        "inputs": io["inputs"],
        "outputs": io["outputs"],
        "parameters": {"kind": model.kind, "provider": model.provider, "deadline_ms": model.deadline_ms,
                       "max_batch_size": _batch_limit(daemon)},
        "stages": io["stages"],
    }  # fmt: skip


def _config_tensor(t: dict[str, Any], batched: bool) -> dict[str, Any]:
    """A served tensor in Triton config form (``dims`` without the batch dimension)."""
    out: dict[str, Any] = {"name": t["name"], "data_type": TRITON_TYPES.get(t["datatype"], f"TYPE_{t['datatype']}")}
    dims = list(t["shape"][1:] if batched else t["shape"])
    if t["name"] == "num_detections":  # one count per image: dims [1], a scalar per entry of a batch
        out["dims"] = [1]
        if batched:
            out["reshape"] = {"shape": []}
    else:
        out["dims"] = dims
    if t["name"] == "image":
        out["format"] = "FORMAT_NHWC"
    return out


def _graph_tensor(t: dict[str, Any]) -> dict[str, Any]:
    """An ONNX graph tensor in Triton config form, with its role."""
    dtype = TRITON_TYPES.get(t["datatype"], f"TYPE_{t['datatype']}")
    return {"name": t["name"], "data_type": dtype, "dims": list(t["shape"]), "role": t.get("role")}


def model_config(model: LoadedModel, max_batch: int) -> dict[str, Any]:
    """``model`` as a Triton model configuration (JSON form of ``config.pbtxt``)."""
    io = served_io(model, max_batch)
    batched = max_batch > 0
    gpu = model.provider != "CPUExecutionProvider"
    stages = [
        {"name": name, "role": next(st.role for st in model.manifest.stages if st.name == name),
         "input": [_graph_tensor(t) for t in spec["inputs"]], "output": [_graph_tensor(t) for t in spec["outputs"]]}
        for name, spec in io["stages"].items()
    ]  # fmt: skip
    return {
        "name": model.name,
        "platform": "onnxruntime_onnx",
        "backend": "onnxruntime",
        "version_policy": {"latest": {"num_versions": 1}},
        "max_batch_size": max_batch,
        "input": [_config_tensor(t, batched) for t in io["inputs"]],
        "output": [_config_tensor(t, batched) for t in io["outputs"]],
        "instance_group": [{"name": f"{model.name}_0", "kind": "KIND_GPU" if gpu else "KIND_CPU", "count": 1}],
        "parameters": {
            "kind": {"string_value": model.kind},
            "version": {"string_value": model.version},
            "provider": {"string_value": model.provider},
            "deadline_ms": {"string_value": str(model.deadline_ms)},
            "source": {"string_value": "shipped" if model.shipped else "repository"},
        },
        "stages": stages,  # lotus only: the model's ONNX graphs, their tensors and roles
    }


@router.get("/models/{name}/config", summary="Model configuration (Triton)")
@router.get("/models/{name}/versions/{version}/config", include_in_schema=False)
async def get_model_config(name: str, daemon: DaemonDep, version: str | None = None) -> dict[str, Any]:
    return model_config(_model(daemon, name, version), _batch_limit(daemon))


@router.get("/models/{name}/ready", summary="Model ready")
@router.get("/models/{name}/versions/{version}/ready", include_in_schema=False)
async def model_ready(name: str, daemon: DaemonDep, version: str | None = None) -> Response:
    _model(daemon, name, version)
    return Response(status_code=200 if daemon.ready else 503)


# --- model repository -----------------------------------------------------------------------------
async def _json_body(request: Request) -> dict[str, Any]:
    """The (optional) JSON object body of a repository request."""
    body = await read_body(request, CONTROL_BODY_LIMIT)
    if not body.strip():
        return {}
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise BadInputError(f"request body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadInputError("request body must be a JSON object")
    return doc


def _control_error(exc: ControlError) -> HTTPException:
    return HTTPException(exc.status, str(exc), headers={"Retry-After": "1"} if exc.status == 503 else None)


@router.post("/repository/index", summary="Models in the repository and their state (Triton)")
async def repository_index(request: Request, daemon: DaemonDep) -> list[dict[str, Any]]:
    doc = await _json_body(request)
    return daemon.model_control.index(ready_only=bool(doc.get("ready", False)))


@router.post("/repository/models/{name}/load", summary="Load or reload a model from the repository (token)")
async def load_model(name: str, request: Request, daemon: DaemonDep, _: ControlDep) -> dict[str, Any]:
    params = (await _json_body(request)).get("parameters") or {}
    if not isinstance(params, dict):
        raise BadInputError("parameters must be a JSON object")
    if "config" in params or any(str(k).startswith("file:") for k in params):
        raise BadInputError("load with an override config or files is not supported: models come from the repository")
    try:
        model = await daemon.model_control.load(name)
    except ControlError as exc:
        raise _control_error(exc) from None
    return {"name": model.name, "version": model.version, "state": "READY"}


@router.post("/repository/models/{name}/unload", summary="Stop serving a model (token)")
async def unload_model(name: str, request: Request, daemon: DaemonDep, _: ControlDep) -> dict[str, Any]:
    await _json_body(request)  # unload_dependents: lotus models have no dependents
    try:
        await daemon.model_control.unload(name)
    except ControlError as exc:
        raise _control_error(exc) from None
    return {"name": name, "state": "UNAVAILABLE", "reason": "unloaded"}


# --- inference ------------------------------------------------------------------------------------
def _bytes_elements(raw: bytes) -> list[bytes]:
    out, i = [], 0
    while i + 4 <= len(raw):
        (n,) = struct.unpack_from("<I", raw, i)
        out.append(raw[i + 4 : i + 4 + n])
        i += 4 + n
    return out


def _image_input(tensor: InferTensor, binary: bytes | None, max_batch: int) -> tuple[list[np.ndarray | bytes], bool]:
    """The images of the request (RGB arrays, or encoded bytes decoded later) and whether it is batched."""
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
        return [elements[0]], False
    if dt != "UINT8":
        raise BadInputError(f"input 'image' must be UINT8 [H,W,3] pixels or BYTES [1], not {tensor.datatype}")
    shape = list(tensor.shape)
    batched = len(shape) == 4
    if len(shape) not in (3, 4) or shape[-1] != 3 or min(shape) <= 0:
        raise BadInputError(f"input 'image' must have shape [H, W, 3] or [B, H, W, 3], got {tensor.shape}")
    if batched and max_batch == 0:
        raise BadInputError("batching is off (server.max_batch_size=0): send one image as [H, W, 3]")
    if batched and shape[0] > max_batch:
        raise BadInputError(f"batch of {shape[0]} images is more than server.max_batch_size={max_batch}")
    try:
        if binary is not None:
            arr = np.frombuffer(binary, dtype=np.uint8)
        else:
            arr = np.asarray(tensor.data, dtype=np.uint8).reshape(-1)
        arr = arr.reshape(shape).copy()
    except (ValueError, TypeError, OverflowError) as exc:  # OverflowError: a value outside 0..255
        raise BadInputError(f"input 'image' data does not match shape {tensor.shape}: {exc}") from None
    images: list[np.ndarray | bytes] = list(arr) if batched else [arr]
    return images, batched


def _outputs(results: list[FrameResult], batched: bool) -> dict[str, tuple[str, list[int], Any]]:
    """name -> (datatype, shape, value): detections padded to the batch's largest count (see the module doc)."""
    b, n = len(results), max((len(r.detections) for r in results), default=0)
    boxes = np.zeros((b, n, 4), dtype=np.float32)
    scores = np.zeros((b, n), dtype=np.float32)
    ids = np.full((b, n), -1, dtype=np.int64)
    labels = [b""] * (b * n)
    counts = np.array([len(r.detections) for r in results], dtype=np.int64)
    for i, r in enumerate(results):
        for j, d in enumerate(r.detections):
            boxes[i, j], scores[i, j], labels[i * n + j] = d.box, d.score, d.label.encode()
            if d.class_id is not None:
                ids[i, j] = d.class_id
    if not batched:
        return {"boxes": ("FP32", [n, 4], boxes[0]), "scores": ("FP32", [n], scores[0]),
                "labels": ("BYTES", [n], labels), "class_ids": ("INT64", [n], ids[0]),
                "num_detections": ("INT64", [1], counts)}  # fmt: skip
    return {"boxes": ("FP32", [b, n, 4], boxes), "scores": ("FP32", [b, n], scores),
            "labels": ("BYTES", [b, n], labels), "class_ids": ("INT64", [b, n], ids),
            "num_detections": ("INT64", [b], counts)}  # fmt: skip


def _serialize(dtype: str, value: Any) -> bytes:
    if dtype == "BYTES":
        return b"".join(struct.pack("<I", len(b)) + b for b in value)
    return np.ascontiguousarray(value).tobytes()


def _parse(request: Request, body: bytes, max_batch: int) -> tuple[InferRequest, list[np.ndarray | bytes], bool]:
    """The request's JSON header, its images and whether they are a batch (BadInputError when malformed)."""
    header_len = request.headers.get(HEADER_LEN)
    try:
        n = int(header_len) if header_len is not None else len(body)
        if not 0 < n <= len(body):
            raise ValueError(f"{HEADER_LEN}={header_len} outside the body")
        req = InferRequest.model_validate_json(body[:n])
    except (ValueError, ValidationError) as exc:
        raise BadInputError(f"malformed inference request: {str(exc).splitlines()[0]}") from None
    for o in req.outputs or []:
        if o.name not in OUTPUTS:
            raise BadInputError(f"unknown output {o.name!r}; outputs: {', '.join(OUTPUTS)}")
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
    images, batched = _image_input(image_tensor, image_binary, max_batch)
    return req, images, batched


def _response(req: InferRequest, name: str, version: str, results: list[FrameResult], batched: bool) -> Response:
    outs = _outputs(results, batched)
    params = req.parameters or {}
    requested = req.outputs or [InferOutputRequest(name=k) for k in outs]
    binary_all = bool(params.get("binary_data_output", False))
    out_json, blobs = [], []
    for o in requested:
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
    latency_ms = round(sum(r.timings_ms["frame"] for r in results), 3)
    energy_j = sum(r.energy_j for r in results)
    info: dict[str, Any] = {"energy_j": energy_j, "latency_ms": latency_ms}
    info.update({"batch_size": len(results)} if batched else {"num_proposals": results[0].num_proposals})
    doc = {"model_name": name, "model_version": version, "id": req.id or "", "parameters": info, "outputs": out_json}
    if not blobs:
        return JSONResponse(doc)
    header = json.dumps(doc).encode()
    return Response(
        header + b"".join(blobs), media_type="application/octet-stream", headers={HEADER_LEN: str(len(header))}
    )


@router.post("/models/{name}/infer", summary="Inference (JSON or binary tensor data, optional batch dimension)")
@router.post("/models/{name}/versions/{version}/infer", include_in_schema=False)
async def infer(name: str, request: Request, daemon: DaemonDep, version: str | None = None) -> Response:
    model = _model(daemon, name, version)
    with daemon.model_stats.track(model.name, model.version) as timer:
        body = await read_body(request, daemon.settings.server.max_body_bytes)
        t_in = time.perf_counter_ns()
        req, images, batched = _parse(request, body, _batch_limit(daemon))
        timer.add_input_ns(time.perf_counter_ns() - t_in)
        results = []
        for i, image in enumerate(images):  # the batch was admitted with its first image
            result = await run_frame(daemon, image, model.name, source="kserve", admit=i == 0)
            timer.add_frame(result)
            results.append(result)
        t_out = time.perf_counter_ns()
        response = _response(req, name, model.version, results, batched)
        timer.add_output_ns(time.perf_counter_ns() - t_out)
    return response
