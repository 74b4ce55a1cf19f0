"""Health, readiness, metrics, the theme stylesheet and branding images."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from livery.storage import InvalidKeyError, ObjectNotFoundError, check_key
from livery.tenant_schema import HEAD_REVISION

from ..errors import not_found
from ..files import sniff_image_type
from ..hosts import is_direct_request
from ..rendering import loaded_config

logger = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
BRANDING_FOLDER = "branding/"
# ICO files start with a reserved zero word and type 1; browsers show them as favicons.
ICO_SIGNATURE = b"\x00\x00\x01\x00"


@router.get("/healthz")
async def healthz() -> Response:
    """Report that the process is alive; the database is not checked."""
    return PlainTextResponse("ok\n")


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    """Report readiness: the database is reachable and its schema is at the app's migration head."""
    try:
        revision = await request.app.state.tenant_database.schema_revision()
    except Exception as exc:  # noqa: BLE001 - any database failure means not ready
        logger.warning("readiness check failed: database unreachable: %s", type(exc).__name__)
        return JSONResponse({"ready": False, "reason": "DatabaseUnreachable"}, status_code=503)
    if revision != HEAD_REVISION:
        return JSONResponse(
            {"ready": False, "reason": "MigrationsPending", "revision": revision, "expected": HEAD_REVISION},
            status_code=503,
        )
    return JSONResponse({"ready": True, "revision": revision})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Serve Prometheus metrics to direct requests only, such as a scrape of the pod IP.

    Through a tenant host the tenant's customers could read its traffic, so
    such requests get the same 404 as any unknown path.
    """
    if not is_direct_request(request.scope, loaded_config(request).hosts):
        raise StarletteHTTPException(404, "Not Found")
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/theme.css", name="theme_css")
async def theme_css(request: Request) -> Response:
    """Serve the tenant's colours and sanitised custom CSS. Pages link it with `?v=<digest>`, so it may be cached."""
    theme = loaded_config(request).theme
    return Response(
        theme.stylesheet,
        media_type="text/css",
        headers={"cache-control": "public, max-age=300", "etag": f'"{theme.version}"'},
    )


@router.get("/branding/{name}")
async def branding_image(name: str, request: Request) -> Response:
    """Serve an uploaded logo or favicon from storage: PNG, JPEG, GIF, WebP or ICO only.

    The type comes from the file's first bytes, never from its name, so no
    stored object is ever served as SVG, HTML or script.
    """
    service = request.app.state.files
    try:
        key = service.prefix + check_key(BRANDING_FOLDER + name, "name")
        data = await run_in_threadpool(service.storage.get_bytes, key)
    except (InvalidKeyError, ObjectNotFoundError):
        raise not_found("branding image") from None
    content_type = sniff_image_type(data)
    if content_type is None and data.startswith(ICO_SIGNATURE):
        content_type = "image/x-icon"
    if content_type is None:
        # NOTE: the control API also accepts SVG logos, which are not served here.
        raise not_found("branding image")
    headers = {"cache-control": "public, max-age=300", "x-content-type-options": "nosniff"}
    return Response(data, media_type=content_type, headers=headers)
