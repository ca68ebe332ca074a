"""GET /v1/telemetry (recent compact per-frame samples) and GET /v1/events (every frame's full event, live, SSE)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from lotus.runtime.api.deps import DaemonDep
from lotus.runtime.api.routes.stream import MAX_BUFFER, sse_events
from lotus.runtime.events import SUBSCRIBER_QUEUE

router = APIRouter(prefix="/v1", tags=["telemetry"])


@router.get("/telemetry", summary="Recent per-frame samples, oldest first")
async def telemetry(daemon: DaemonDep, limit: int = Query(100, ge=1, le=100_000)) -> dict[str, Any]:
    gov = daemon.governor
    return {
        "samples": daemon.telemetry.recent(limit),
        "queue_depth": daemon.pending,
        "governor": gov.status() if gov else None,
        "source": daemon.source_stats,
    }


@router.get("/events", summary="Server-Sent Events: one `frame` event per processed frame, `lagged` after a gap")
async def events(
    request: Request,
    daemon: DaemonDep,
    max_events: int = Query(0, ge=0, description="close after N frame events (0: never)"),
    buffer: int = Query(SUBSCRIBER_QUEUE, ge=1, le=MAX_BUFFER, description="events this client may fall behind"),
) -> StreamingResponse:
    """The per-frame events of :mod:`lotus.runtime.events` (schema and lag handling: :mod:`.stream`)."""
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(
        sse_events(request, daemon, max_events, buffer), media_type="text/event-stream", headers=headers
    )
