"""The HTTP API: ``create_app(settings, devices)`` builds the FastAPI app around one Daemon.

The lifespan starts the daemon in a background thread (open board, take control, load and warm
the models), so /healthz answers at once and /readyz says 503 until warm; a start-up failure calls
``on_fatal`` (``lotus serve`` exits non-zero). On shutdown the lifespan's ``finally`` stops the
streaming source and restores the clocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from lotus.core.errors import BadInputError
from lotus.runtime.config import Settings
from lotus.runtime.daemon import VERSION, Daemon
from lotus.runtime.hw.base import Board

log = logging.getLogger(__name__)


class BodyLimit:
    """Pure ASGI middleware: 413 when Content-Length says the body is too large (before reading it)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "http":
            for key, value in scope.get("headers", []):
                if key == b"content-length":
                    try:
                        too_big = int(value) > self.limit
                    except ValueError:
                        too_big = False
                    if too_big:
                        response = JSONResponse(
                            {"error": f"body larger than server.max_body_bytes={self.limit}"}, status_code=413,
                            headers={"Connection": "close"},
                        )  # fmt: skip
                        await response(scope, receive, send)
                        return
        await self.app(scope, receive, send)


def create_app(
    settings: Settings,
    devices: Board | None = None,
    on_fatal: Callable[[BaseException], None] | None = None,
) -> FastAPI:
    """The app. ``devices``: a board to use instead of opening ``settings.board`` (tests, bench)."""
    from lotus.runtime.api.routes import detect, governor, health, kserve, metrics, stream, telemetry

    daemon = Daemon(settings, board=devices)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks: list[asyncio.Task] = []

        async def start() -> None:
            try:
                await asyncio.to_thread(daemon.start)
            except BaseException as exc:  # noqa: BLE001 - reported, then the server is told to exit
                app.state.startup_error = exc
                daemon.status_text = f"failed: {exc}"
                log.error("start-up failed: %s", exc)
                if on_fatal is not None:
                    on_fatal(exc)
                return
            tasks.append(asyncio.create_task(daemon.heartbeat()))
            if settings.source.uri:
                from lotus.runtime.source import run_source

                tasks.append(asyncio.create_task(run_source(daemon, settings.source)))

        tasks.append(asyncio.create_task(start()))
        try:
            yield
        finally:
            daemon.stopping, daemon.ready = True, False
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
            await asyncio.to_thread(daemon.stop)

    app = FastAPI(
        title="lotus-edge",
        version=VERSION,
        description="On-device two-stage inference with a learned CPU+GPU clock governor.",
        lifespan=lifespan,
    )
    app.state.daemon = daemon
    app.state.startup_error = None

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(BadInputError)
    async def bad_input(request: Request, exc: BadInputError) -> JSONResponse:
        # a bad payload (not an image, wrong tensor, too large, wrong type): 400, 413 or 415, never 5xx
        status = exc.status if exc.status in (400, 413, 415) else 400
        return JSONResponse({"error": str(exc)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"error": "; ".join(parts)}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)

    for module in (health, detect, stream, telemetry, governor, kserve, metrics):
        app.include_router(module.router)
    app.add_middleware(BodyLimit, limit=settings.server.max_body_bytes)
    return app
