"""GET /metrics: Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from lotus.runtime.api.deps import DaemonDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", summary="Prometheus metrics (base units)")
async def metrics(daemon: DaemonDep) -> Response:
    gov = daemon.governor
    if gov is not None:
        diag = gov.diagnostics()
        daemon.metrics.fallbacks.set(diag.fallbacks)
        daemon.metrics.stretch.set(diag.deadline_stretch)
        err = gov.lookahead.summary()
        daemon.metrics.lookahead_checked.set(err["checked"])
        for label, key in (("0.5", "p50_c"), ("0.99", "p99_c"), ("0.999", "p999_c"), ("1", "max_c")):
            if err[key] is not None:
                daemon.metrics.lookahead.labels(quantile=label).set(err[key])
    return Response(daemon.metrics.render(), media_type=CONTENT_TYPE_LATEST)
