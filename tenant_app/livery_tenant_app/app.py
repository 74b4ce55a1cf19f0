"""The tenant app factory: one branded, isolated app instance for one tenant.

`create_app()` reads `TenantAppSettings` from the environment unless given
settings; tests pass their own settings, storage and limiter store. The
middleware stack is pure ASGI, from the outside in: security headers, host
check (404 for hosts the tenant does not own), session cookie and metrics.
API rate limiting happens in `deps.api_identity`, after authentication.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from .config import ConfigWatcher
from .db import TenantDatabase
from .deps import LoginRequired, reject_nul_characters
from .errors import install_error_handlers
from .files import FileService
from .hosts import TenantHostMiddleware
from .metrics import AppMetrics, MetricsMiddleware
from .ratelimit import LimiterStore, MemoryLimiterStore, RedisLimiterStore
from .routes import api, downloads, operations, pages, signin
from .security import SecurityHeadersMiddleware, SessionMiddleware, SessionSigner
from .settings import TenantAppSettings, get_settings
from .usage import UsageReporter

logger = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"
# A path no route matches; the start-up request for it shows in /metrics as one 404 of route "unmatched".
WARM_UP_PATH = "/_livery/warm-up"


def create_app(
    settings: TenantAppSettings | None = None,
    *,
    storage=None,
    limiter_store: LimiterStore | None = None,
    usage_reporter: UsageReporter | None = None,
) -> FastAPI:
    """Build the tenant app. Raises ConfigError when the tenant config cannot be loaded."""
    settings = settings or get_settings()
    watcher = ConfigWatcher(settings.tenant_config, settings.config_poll_seconds)
    tenant = watcher.current().config.tenant
    if tenant != settings.tenant:
        logger.warning("tenant config names tenant %s but LIVERY_TENANT is %s", tenant, settings.tenant)

    metrics = AppMetrics()
    database = TenantDatabase.from_settings(settings)
    if storage is None:
        storage = _open_storage(settings)
    if limiter_store is None:
        limiter_store = (
            RedisLimiterStore(settings.redis_url.get_secret_value()) if settings.redis_url else MemoryLimiterStore()
        )
    if usage_reporter is None:
        usage_reporter = UsageReporter(
            settings.tenant,
            settings.control_api_url,
            settings.usage_token.get_secret_value() if settings.usage_token else None,
            metrics,
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        usage_reporter.start()
        await _warm_up(app, database, watcher.current().config.hosts[0])
        logger.info("tenant %s: app started (%s isolation)", settings.tenant, settings.isolation)
        try:
            yield
        finally:
            await usage_reporter.stop()
            await limiter_store.close()
            await database.dispose()
            logger.info("tenant %s: app stopped", settings.tenant)

    app = FastAPI(
        title=f"Livery tenant app ({settings.tenant})",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(reject_nul_characters)],
    )
    app.state.settings = settings
    app.state.config_watcher = watcher
    app.state.tenant_database = database
    app.state.files = FileService(storage, settings.tenant)
    app.state.metrics = metrics
    app.state.usage = usage_reporter
    app.state.limiter_store = limiter_store

    install_error_handlers(app)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)

    app.include_router(operations.router)
    app.include_router(signin.router)
    app.include_router(pages.router)
    app.include_router(api.router)
    app.include_router(downloads.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # add_middleware wraps the app, so the last one added runs first.
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(
        SessionMiddleware,
        signer=SessionSigner(settings.session_key.get_secret_value(), settings.tenant),
        secure=settings.secure_cookies,
    )
    app.add_middleware(TenantHostMiddleware, current_config=watcher.current, networks=settings.proxy_networks())
    app.add_middleware(SecurityHeadersMiddleware)
    return app


async def _warm_up(app: FastAPI, database: TenantDatabase, host: str) -> None:
    """Do the one-time work of the first request at start-up, so no user waits for it.

    FastAPI builds its routes' validators on the first request that reaches the
    router (about 200 ms for this app), so one request for an unknown path walks
    every route and renders the 404 page. Then one pooled connection is opened.
    A database that is not reachable yet is logged and left to `/readyz`.
    """
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as client:
        await client.get(WARM_UP_PATH)
    try:
        revision = await database.schema_revision()
    except Exception as exc:  # noqa: BLE001 - any failure here is reported by /readyz later
        logger.warning("database not reachable at start-up (%s); /readyz reports it until it is", type(exc).__name__)
        return
    logger.info("database reachable, schema revision %s", revision)


def _open_storage(settings: TenantAppSettings):
    from livery.storage import open_storage

    # The session key also signs local download links, so one tenant's links are useless at another.
    return open_storage(
        settings.s3_bucket, settings.s3_endpoint_url, settings.files_dir,
        signing_key=settings.session_key.get_secret_value(),
    )
