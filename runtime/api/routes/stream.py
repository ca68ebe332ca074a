"""WS /v1/stream: binary frames in, one JSON result per frame out, in order, dropping stale frames.

Each connection keeps at most ``server.stream_buffer`` frames waiting; when a new frame arrives
into a full buffer the oldest waiting one is dropped (a live camera wants the newest frame, not a
growing backlog). Every result is a :class:`~lotus.runtime.api.models.DetectResponse` plus ``seq``
(the frame's index on this connection) and ``dropped`` (frames dropped so far); a frame that
cannot be used gets ``{"seq", "dropped", "error"}`` and the stream goes on. ``?subscribe=source``
receives the per-frame samples of the configured streaming source instead of sending frames.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect

from lotus.core.errors import BadInputError, NotReadyError
from lotus.runtime.api.models import DetectResponse
from lotus.runtime.daemon import Daemon

router = APIRouter(prefix="/v1", tags=["streaming"])


async def _subscribe_source(ws: WebSocket, daemon: Daemon) -> None:
    handle = daemon.telemetry.subscribe()
    try:
        while True:
            sample = await handle[1].get()
            if sample.get("source") != "api":
                await ws.send_json(sample)
    finally:
        daemon.telemetry.unsubscribe(handle)


@router.websocket("/stream")
async def stream(ws: WebSocket, model: str | None = Query(None), subscribe: str | None = Query(None)) -> None:
    """Binary frames in, one JSON result per frame out (see module doc)."""
    daemon: Daemon = ws.app.state.daemon
    await ws.accept()
    if not daemon.ready:
        await ws.send_json({"error": f"daemon not ready ({daemon.status_text})"})
        await ws.close(code=1013)
        return
    if subscribe == "source":
        with contextlib.suppress(WebSocketDisconnect):
            await _subscribe_source(ws, daemon)
        return
    try:
        name = daemon.check_model(model)
    except KeyError:
        await ws.send_json({"error": f"unknown model {model!r}; loaded: {', '.join(daemon.models)}"})
        await ws.close(code=1008)
        return
    buffer: deque[tuple[int, bytes]] = deque()
    state: dict[str, Any] = {"dropped": 0, "closed": False}
    wake = asyncio.Event()
    limit = daemon.settings.server.stream_buffer

    async def receive() -> None:
        seq = 0
        try:
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    break
                data = msg.get("bytes")
                if data is None:
                    await ws.send_json({"seq": seq, "error": "send frames as binary messages (JPEG/PNG bytes)"})
                    seq += 1
                    continue
                if len(buffer) >= limit:
                    buffer.popleft()
                    state["dropped"] += 1
                    daemon.metrics.dropped.labels("ws").inc()
                buffer.append((seq, data))
                seq += 1
                wake.set()
        finally:
            state["closed"] = True
            wake.set()

    async def process() -> None:
        while True:
            await wake.wait()
            wake.clear()
            while buffer:
                seq, data = buffer.popleft()
                result: DetectResponse | None = None
                error = None
                try:
                    result = DetectResponse.from_frame(await daemon.infer(data, name, source="ws", admit=False))
                except BadInputError as exc:
                    error = str(exc)
                except NotReadyError as exc:
                    error = f"daemon {exc}"
                except (TimeoutError, asyncio.TimeoutError):
                    error = "inference did not finish within server.request_timeout_s"
                head = {"seq": seq, "dropped": state["dropped"]}  # drops counted while this frame ran
                body = result.to_json(**head) if result is not None else {**head, "error": error}
                if state["closed"]:
                    return
                await ws.send_json(body)
            if state["closed"]:
                return

    receiver = asyncio.create_task(receive())
    processor = asyncio.create_task(process())
    try:
        await asyncio.wait({receiver, processor}, return_when=asyncio.FIRST_COMPLETED)
        if receiver.done() and not processor.done():
            # client finished sending: let the frames already accepted complete (it may be half-closed)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(processor, daemon.settings.server.request_timeout_s)
    finally:
        for task in (receiver, processor):
            task.cancel()
        with contextlib.suppress(Exception):
            await ws.close()
