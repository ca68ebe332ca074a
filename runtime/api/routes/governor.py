"""GET/PUT /v1/governor: mode (active/shadow/off) and policy, switchable at run time."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException

from lotus.core.errors import LotusError
from lotus.runtime.api.deps import DaemonDep, ReadyDaemon, TokenDep
from lotus.runtime.api.models import ErrorBody, GovernorUpdate

router = APIRouter(prefix="/v1", tags=["governor"])


@router.get("/governor", summary="Governor mode, policy, version and counters")
async def get_governor(daemon: ReadyDaemon) -> dict[str, Any]:
    assert daemon.governor is not None
    return daemon.governor.status()


@router.put(
    "/governor",
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 400: {"model": ErrorBody}},
    summary="Change mode and/or policy (bearer token)",
)
async def put_governor(update: GovernorUpdate, _: TokenDep, daemon: DaemonDep) -> dict[str, Any]:
    gov = daemon.governor
    if gov is None or not daemon.ready:
        raise HTTPException(503, "daemon not ready", headers={"Retry-After": "1"})
    try:
        # policy build and clock restore touch files: keep them off the event loop and the frame
        loop = asyncio.get_running_loop()
        if update.policy is not None:
            await loop.run_in_executor(daemon.executor, gov.set_policy, update.policy)
        if update.mode is not None:
            await loop.run_in_executor(daemon.executor, gov.set_mode, update.mode)
    except LotusError as exc:
        raise HTTPException(400, str(exc)) from None
    daemon._policy_info()
    return gov.status()
