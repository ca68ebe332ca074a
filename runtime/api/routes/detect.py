"""POST /v1/detect: one image (raw JPEG/PNG body or multipart ``file``) -> detections.

Bad payloads raise :class:`~lotus.core.errors.BadInputError`; the app answers it with its
``status`` (400, 413 or 415) and ``{"error": ...}`` (see :mod:`lotus.runtime.api`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from lotus.core.errors import BadInputError, NotReadyError, OverloadedError
from lotus.runtime.api.deps import ReadyDaemon, read_body
from lotus.runtime.api.models import DetectResponse, ErrorBody
from lotus.runtime.daemon import Daemon
from lotus.runtime.pipeline import FrameResult

router = APIRouter(prefix="/v1", tags=["inference"])
RAW_TYPES = {"image/jpeg", "image/jpg", "image/png", "image/bmp", "image/webp", "application/octet-stream", ""}


async def run_frame(daemon: Daemon, data: Any, model: str, source: str = "api", admit: bool = True) -> FrameResult:
    """Submit a frame and map the daemon's failures to HTTP errors (BadInputError passes through).

    ``admit``: refuse with 503 when the queue is full (False for the later images of an admitted batch).
    """
    try:
        return await daemon.infer(data, model, source=source, admit=admit)
    except KeyError:
        if model in daemon.models:
            raise
        raise HTTPException(404, f"model {model!r} was unloaded") from None
    except OverloadedError as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "1"}) from None
    except NotReadyError as exc:
        raise HTTPException(503, f"daemon {exc}", headers={"Retry-After": "1"}) from None
    except (TimeoutError, asyncio.TimeoutError):
        raise HTTPException(504, "inference did not finish within server.request_timeout_s") from None


def resolve_model(daemon: Daemon, name: str | None) -> str:
    """The loaded model ``name`` (the first one when None); 404 when it is not loaded."""
    try:
        return daemon.check_model(name)
    except KeyError:
        raise HTTPException(404, f"unknown model {name!r}; loaded: {', '.join(daemon.models)}") from None


async def image_bytes(request: Request, limit: int) -> bytes:
    """The encoded image of a raw or multipart body (at most ``limit`` bytes); BadInputError 400/413/415."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=8, max_part_size=limit)
        upload = form.get("file") or next((v for v in form.values() if isinstance(v, UploadFile)), None)
        if not isinstance(upload, UploadFile):
            raise BadInputError("multipart body has no file part (send the image as field 'file')")
        return await upload.read()
    if ctype not in RAW_TYPES:
        raise BadInputError(f"unsupported content type {ctype!r}: send image/jpeg, image/png or multipart", 415)
    return await read_body(request, limit)


@router.post(
    "/detect",
    response_model=DetectResponse,
    responses={400: {"model": ErrorBody}, 404: {"model": ErrorBody}, 413: {"model": ErrorBody},
               415: {"model": ErrorBody}, 503: {"model": ErrorBody}, 504: {"model": ErrorBody}},
    summary="Detect objects (or text) in one image",
)  # fmt: skip
async def detect(
    request: Request, daemon: ReadyDaemon, model: str | None = Query(None, description="model name (default: first)")
) -> Response:
    name = resolve_model(daemon, model)
    with daemon.model_stats.track(name, daemon.models[name].version) as timer:
        data = await image_bytes(request, daemon.settings.server.max_body_bytes)
        result = await run_frame(daemon, data, name)
        timer.add_frame(result)
        t_out = time.perf_counter_ns()
        # serialised straight from the model (FastAPI would validate it a second time against response_model)
        body = DetectResponse.from_frame(result).model_dump_json()
        timer.add_output_ns(time.perf_counter_ns() - t_out)
    return Response(body, media_type="application/json")
