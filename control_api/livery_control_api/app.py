"""The control API application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from livery.settings import load_settings
from livery.store.base import ResourceStore

from .billing.events import suspend_expired_grace_periods
from .billing.meters import resend_meter_events
from .billing.provider import BillingProvider, billing_from_settings
from .body_limit import BodySizeLimitMiddleware
from .context import AppContext, DnsResolver, DnspythonResolver, LogMailer, Mailer
from .database import create_engine_for, migrate, session_factory
from .errors import install_error_handlers
from .metrics import Metrics, RequestMetricsMiddleware
from .routers import accounts, admin, console, health, pages, team, tenants
from .routers import billing as billing_routes
from .settings import ControlApiSettings
from .suspension import SuspensionPageMiddleware
from .team_sync import sync_teams

logger = logging.getLogger("livery.control_api")

STATIC_DIR = Path(__file__).resolve().parent / "static"


async def open_store(settings: ControlApiSettings) -> ResourceStore:
    """Build the resource store that the settings name."""
    if settings.store == "local":
        from livery.store.local import LocalStore

        return await LocalStore.open(settings.database_url.get_secret_value())
    from livery.store.kubernetes import KubernetesStore

    return KubernetesStore.from_kubeconfig(settings.kubeconfig)


async def close_store(store: ResourceStore) -> None:
    close = getattr(store, "close", None)
    if close is not None:
        result = close()
        if asyncio.iscoroutine(result):
            await result


async def run_periodic_tasks(context: AppContext) -> None:
    """Run the periodic tasks every `grace_check_seconds` until cancelled.

    They are suspensions after grace periods, meter event resends and the team sync
    (`team_sync.sync_teams`).
    """
    while True:
        await asyncio.sleep(context.settings.grace_check_seconds)
        for task in (suspend_expired_grace_periods, resend_meter_events, sync_teams):
            try:
                await task(context)
            except Exception as exc:  # the next round retries; one failure must not stop the loop
                logger.error("periodic task %s failed: %s", task.__name__, type(exc).__name__)


def create_app(
    settings: ControlApiSettings | None = None,
    store: ResourceStore | None = None,
    billing: BillingProvider | None = None,
    dns_resolver: DnsResolver | None = None,
    mailer: Mailer | None = None,
) -> FastAPI:
    """Build the control API. Arguments left out are built from the settings at start-up."""
    settings = settings or load_settings(ControlApiSettings)
    if settings.database_url is None:
        raise ValueError("LIVERY_DATABASE_URL: the control API needs the control database URL")
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = settings.database_url.get_secret_value()
        await run_in_threadpool(migrate, url)
        engine = create_engine_for(url)
        own_store = store is None
        context = AppContext(
            settings=settings,
            store=store if store is not None else await open_store(settings),
            billing=billing if billing is not None else billing_from_settings(settings),
            engine=engine,
            sessions=session_factory(engine),
            dns=dns_resolver or DnspythonResolver(),
            mailer=mailer or LogMailer(),
            metrics=metrics,
        )
        app.state.context = context
        periodic_tasks = asyncio.create_task(run_periodic_tasks(context))
        logger.info("control API started (billing %s, store %s)", context.billing.name, type(context.store).__name__)
        try:
            yield
        finally:
            periodic_tasks.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await periodic_tasks
            if own_store:
                await close_store(context.store)
            close_limiter = getattr(context.limiter, "close", None)
            if close_limiter is not None:
                await close_limiter()
            await engine.dispose()
            logger.info("control API stopped")

    app = FastAPI(
        title="Livery control API",
        version="1",
        description="Signup, accounts, billing, branding and domains of Livery tenants, and the platform admin API.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for module in (health, accounts, tenants, team, billing_routes, admin, pages, console):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(
        SuspensionPageMiddleware, public_url=settings.public_url, cache_seconds=settings.suspension_cache_seconds
    )
    app.add_middleware(BodySizeLimitMiddleware)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    install_error_schema(app)
    return app


ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "field"],
            "properties": {
                "code": {"type": "string", "description": "Stable machine-readable error code."},
                "message": {"type": "string", "description": "What failed, on which value, and what to do."},
                "field": {"type": ["string", "null"], "description": "The request field the error concerns."},
            },
        }
    },
}


def install_error_schema(app: FastAPI) -> None:
    """Describe the `{"error": ...}` body in the OpenAPI document where FastAPI puts its own 422 shape."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = generate()
            schemas = schema.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in schemas:
                schemas["HTTPValidationError"] = ERROR_SCHEMA
                schemas.pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
