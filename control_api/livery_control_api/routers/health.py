"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from ..dependencies import Context
from ..errors import error_body

logger = logging.getLogger("livery.control_api.health")

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict:
    """Return 200 while the process serves requests."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(context: Context) -> Response:
    """Return 200 when the control database and the resource store respond, else 503 naming the failing one."""
    try:
        async with context.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        logger.warning("readiness: control database unreachable: %s", type(exc).__name__)
        return JSONResponse(error_body("unavailable", "control database unreachable"), status_code=503)
    try:
        await context.store.list_plans()
    except Exception as exc:
        logger.warning("readiness: resource store unreachable: %s", type(exc).__name__)
        return JSONResponse(error_body("unavailable", "resource store unreachable"), status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics", include_in_schema=False)
async def metrics(context: Context) -> Response:
    return Response(generate_latest(context.metrics.registry), media_type=CONTENT_TYPE_LATEST)
