"""GET /v1/telemetry (recent per-frame samples) and GET /v1/events (the same, live, as SSE)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from lotus.runtime.api.deps import DaemonDep

router = APIRouter(prefix="/v1", tags=["telemetry"])
KEEPALIVE_S = 15.0


@router.get("/telemetry", summary="Recent per-frame samples, oldest first")
async def telemetry(daemon: DaemonDep, limit: int = Query(100, ge=1, le=100_000)) -> dict[str, Any]:
    gov = daemon.governor
    return {
        "samples": daemon.telemetry.recent(limit),
        "queue_depth": daemon.pending,
        "governor": gov.status() if gov else None,
        "source": daemon.source_stats,
    }


@router.get("/events", summary="Server-Sent Events: one `frame` event per processed frame")
async def events(
    request: Request, daemon: DaemonDep, max_events: int = Query(0, ge=0, description="close after N (0: never)")
) -> StreamingResponse:
    handle = daemon.telemetry.subscribe()

    async def stream() -> AsyncIterator[str]:
        sent = 0
        try:
            yield ": lotus telemetry\n\n"
            while max_events == 0 or sent < max_events:
                try:
                    sample = await asyncio.wait_for(handle[1].get(), KEEPALIVE_S)
                except (TimeoutError, asyncio.TimeoutError):
                    if await request.is_disconnected():
                        break
                    yield ": keepalive\n\n"
                    continue
                sent += 1
                yield f"event: frame\nid: {sample['frame']}\ndata: {json.dumps(sample)}\n\n"
        finally:
            daemon.telemetry.unsubscribe(handle)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
