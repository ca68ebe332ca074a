"""WS /v1/stream (frames in, results out, or a subscription) and the SSE stream of GET /v1/events.

Sending frames: each connection keeps at most ``server.stream_buffer`` frames waiting; when a new
frame arrives into a full buffer the oldest waiting one is dropped (a live camera wants the newest
frame, not a growing backlog). Every result is a :class:`~lotus.runtime.api.models.DetectResponse`
plus ``seq`` (the frame's index on this connection) and ``dropped`` (frames dropped so far); a
frame that cannot be used gets ``{"seq", "dropped", "error"}`` and the stream goes on.

Subscribing: ``?subscribe=source`` receives the per-frame events of the ``--source`` stream and of
WebSocket frame streams (everything but single requests); ``?subscribe=all`` those of every frame.
Each event is one JSON text message (``{"type": "frame", ...}``, the schema in
:mod:`lotus.runtime.events`, also :class:`~lotus.runtime.api.models.FrameEvent`); the client sends
nothing. ``GET /v1/events`` sends the same events of every frame as Server-Sent Events
(``event: frame``, ``id:`` the daemon's frame counter, ``data:`` the JSON).

Events arrive in order. Each subscriber has its own queue of ``?buffer=`` events (default 64); a
client too slow to keep up loses the oldest ones and is told so before the next event it gets:
``{"type": "lagged", "missed": N}`` (SSE: ``event: lagged``), N the events it missed. The frame
loop never waits for a subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request, WebSocket, WebSocketDisconnect

from lotus.core.errors import BadInputError, NotReadyError
from lotus.runtime.api.models import DetectResponse
from lotus.runtime.daemon import Daemon
from lotus.runtime.events import SUBSCRIBER_QUEUE, Subscriber

router = APIRouter(prefix="/v1", tags=["streaming"])
KEEPALIVE_S = 15.0  # SSE comment line after this long without an event, s
MAX_BUFFER = 4096  # largest ?buffer= a subscriber may ask for, events
# ?subscribe= value -> the frame sources (FrameResult.source) it receives; None: all
SUBSCRIPTIONS: dict[str, frozenset[str] | None] = {"source": frozenset({"source", "ws"}), "all": None}


async def sse_events(
    request: Request, daemon: Daemon, max_events: int = 0, buffer: int = SUBSCRIBER_QUEUE
) -> AsyncIterator[str]:
    """The text of ``GET /v1/events``: every frame's event, ``lagged`` notices, keep-alive comments.

    ``max_events``: close after that many frame events (0: never); ``buffer``: this subscriber's queue, events.
    """
    sub = daemon.telemetry.subscribe(buffer)
    sent = 0
    try:
        yield ": lotus events\n\n"
        while max_events == 0 or sent < max_events:
            try:
                event = await sub.get(KEEPALIVE_S)
            except (TimeoutError, asyncio.TimeoutError):
                if await request.is_disconnected():
                    break
                yield ": keepalive\n\n"
                continue
            if event.get("type") == "lagged":
                yield f"event: lagged\ndata: {json.dumps(event)}\n\n"
                continue
            sent += 1
            yield f"event: frame\nid: {event['frame']}\ndata: {json.dumps(event)}\n\n"
    finally:
        daemon.telemetry.unsubscribe(sub)


async def _subscription(ws: WebSocket, sub: Subscriber) -> None:
    """Send ``sub``'s events until the client goes away (it is not expected to send anything)."""

    async def until_closed() -> None:
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass

    async def forward() -> None:
        while True:
            await ws.send_json(await sub.get())

    tasks = [asyncio.create_task(until_closed()), asyncio.create_task(forward())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task


@router.websocket("/stream")
async def stream(
    ws: WebSocket,
    model: str | None = Query(None),
    subscribe: str | None = Query(None),
    buffer: int = Query(SUBSCRIBER_QUEUE),
) -> None:
    """Binary frames in, one JSON result per frame out; or ``?subscribe=`` to receive events (see module doc)."""
    daemon: Daemon = ws.app.state.daemon
    await ws.accept()
    if subscribe is not None and subscribe not in SUBSCRIPTIONS:
        await ws.send_json({"error": f"unknown subscribe={subscribe!r}; use one of: {', '.join(SUBSCRIPTIONS)}"})
        await ws.close(code=1008)
        return
    if subscribe is not None and not 1 <= buffer <= MAX_BUFFER:
        await ws.send_json({"error": f"buffer={buffer}: give 1 to {MAX_BUFFER} events"})
        await ws.close(code=1008)
        return
    if not daemon.ready:
        await ws.send_json({"error": f"daemon not ready ({daemon.status_text})"})
        await ws.close(code=1013)
        return
    if subscribe is not None:
        sub = daemon.telemetry.subscribe(buffer, SUBSCRIPTIONS[subscribe])
        try:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):  # RuntimeError: sent after close
                await _subscription(ws, sub)
        finally:
            daemon.telemetry.unsubscribe(sub)
            with contextlib.suppress(Exception):
                await ws.close()
        return
    try:
        name = daemon.check_model(model)
    except KeyError:
        await ws.send_json({"error": f"unknown model {model!r}; loaded: {', '.join(daemon.models)}"})
        await ws.close(code=1008)
        return
    waiting: deque[tuple[int, bytes]] = deque()  # frames received, not yet run
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
                if len(waiting) >= limit:
                    waiting.popleft()
                    state["dropped"] += 1
                    daemon.metrics.dropped.labels("ws").inc()
                waiting.append((seq, data))
                seq += 1
                wake.set()
        finally:
            state["closed"] = True
            wake.set()

    async def process() -> None:
        while True:
            await wake.wait()
            wake.clear()
            while waiting:
                seq, data = waiting.popleft()
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
