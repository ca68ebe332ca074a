"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from lotus.runtime.api.deps import DaemonDep
from lotus.runtime.api.models import Health, Ready

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is up")
async def healthz() -> Health:
    return Health()


@router.get("/readyz", response_model=Ready, responses={503: {"model": Ready}}, summary="Models warm, board open")
async def readyz(daemon: DaemonDep) -> JSONResponse:
    gov = daemon.governor
    body = Ready(
        ready=daemon.ready,
        status=daemon.status_text,
        provider=daemon.provider,
        board=daemon.board.backend if daemon.board is not None else None,
        models=list(daemon.models),
        stages={name: model.pipeline.stage_info() for name, model in daemon.models.items()},
        governor_mode=gov.mode if gov else None,
        policy=gov.policy_spec if gov else None,
        deciding=gov.deciding if gov else None,
        policy_error=gov.diagnostics().load_error if gov else None,
        debug=daemon.debug_info(),
    )
    return JSONResponse(
        body.model_dump(),
        status_code=200 if daemon.ready else 503,
        headers=None if daemon.ready else {"Retry-After": "1"},
    )
