"""Dependencies shared by the routers: the daemon, readiness, the governor's bearer token."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from lotus.core.errors import BadInputError
from lotus.runtime.daemon import Daemon


async def get_daemon(request: Request) -> Daemon:
    """The app's one :class:`Daemon` (``app.state.daemon``)."""
    daemon: Daemon = request.app.state.daemon
    return daemon


DaemonDep = Annotated[Daemon, Depends(get_daemon)]


async def get_ready_daemon(daemon: DaemonDep) -> Daemon:
    """The daemon, or 503 + Retry-After while it warms up or shuts down."""
    if not daemon.ready:
        state = "shutting down" if daemon.stopping else f"not ready yet ({daemon.status_text})"
        raise HTTPException(503, f"daemon {state}", headers={"Retry-After": "1"})
    return daemon


ReadyDaemon = Annotated[Daemon, Depends(get_ready_daemon)]


async def require_token(request: Request, daemon: DaemonDep) -> None:
    """PUT /v1/governor needs ``Authorization: Bearer <token>``; 403 when no token is configured."""
    if daemon.token is None:
        raise HTTPException(403, "changing the governor is disabled: set governor.token or governor.token_file")
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), daemon.token.encode()):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


TokenDep = Annotated[None, Depends(require_token)]


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body; BadInputError 413 as soon as it grows past ``limit`` bytes (chunked bodies included)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadInputError(f"body larger than server.max_body_bytes={limit}", 413)
        chunks.append(chunk)
    return b"".join(chunks)
