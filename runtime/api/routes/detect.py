"""POST /v1/detect: one image (raw JPEG/PNG body or multipart ``file``) -> detections."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from lotus.core.errors import BadInputError, NotReadyError, OverloadedError
from lotus.runtime.api.deps import ReadyDaemon, read_body
from lotus.runtime.api.models import DetectResponse, ErrorBody
from lotus.runtime.daemon import Daemon
from lotus.runtime.pipeline import FrameResult

router = APIRouter(prefix="/v1", tags=["inference"])
RAW_TYPES = {"image/jpeg", "image/jpg", "image/png", "image/bmp", "image/webp", "application/octet-stream", ""}


async def run_frame(daemon: Daemon, data: Any, model: str, source: str = "api") -> FrameResult:
    """Submit a frame and map the daemon's failures to HTTP errors."""
    try:
        return await daemon.infer(data, model, source=source)
    except OverloadedError as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "1"}) from None
    except NotReadyError as exc:
        raise HTTPException(503, f"daemon {exc}", headers={"Retry-After": "1"}) from None
    except BadInputError as exc:
        raise HTTPException(400, str(exc)) from None
    except (TimeoutError, asyncio.TimeoutError):
        raise HTTPException(504, "inference did not finish within server.request_timeout_s") from None


def resolve_model(daemon: Daemon, name: str | None) -> str:
    try:
        return daemon.check_model(name)
    except KeyError:
        raise HTTPException(404, f"unknown model {name!r}; loaded: {', '.join(daemon.models)}") from None


async def image_bytes(request: Request, limit: int) -> bytes:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=8, max_part_size=limit)
        upload = form.get("file") or next((v for v in form.values() if isinstance(v, UploadFile)), None)
        if not isinstance(upload, UploadFile):
            raise HTTPException(400, "multipart body has no file part (send the image as field 'file')")
        return await upload.read()
    if ctype not in RAW_TYPES:
        raise HTTPException(415, f"unsupported content type {ctype!r}: send image/jpeg, image/png or multipart")
    return await read_body(request, limit)


@router.post(
    "/detect",
    response_model=DetectResponse,
    responses={400: {"model": ErrorBody}, 404: {"model": ErrorBody}, 413: {"model": ErrorBody},
               415: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    summary="Detect objects (or text) in one image",
)  # fmt: skip
async def detect(
    request: Request, daemon: ReadyDaemon, model: str | None = Query(None, description="model name (default: first)")
) -> JSONResponse:
    name = resolve_model(daemon, model)
    data = await image_bytes(request, daemon.settings.server.max_body_bytes)
    result = await run_frame(daemon, data, name)
    return JSONResponse(result.to_dict())  # already shaped like DetectResponse: skip re-validation
