"""The suspension page that a suspended tenant's hosts show on Kubernetes.

While a tenant is suspended, the operator points the tenant's Ingress at an
ExternalName Service that names the control API's Service. Requests for the
tenant's hosts then reach the control API with their own Host header, and
`SuspensionPageMiddleware` responds with the tenant's branded 503 page.
Every other request passes through to the control API unchanged.

The page shows the product name and colours only, because anyone who knows a
host can open it. It uses the same look as the embedded gateway's page.
"""

from __future__ import annotations

import asyncio
import html
import ipaddress
import logging
import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from livery.models.tenant import Tenant
from livery.store.base import ResourceStore

logger = logging.getLogger("livery.control_api.suspension")

# A suspension lasts until an admin or a payment ends it, so clients and crawlers are
# asked to come back in an hour instead of retrying at once.
RETRY_AFTER_SECONDS = 3600
DEFAULT_PRIMARY_COLOUR = "#495057"
COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True)
class SuspendedTenant:
    """Branding shown on a tenant's suspension page."""

    product_name: str
    primary_color: str | None
    accent_color: str | None


def is_suspended(tenant: Tenant) -> bool:
    """Tell whether the tenant's hosts may route to the suspension page.

    The operator switches the Ingress after `spec.suspended` changes and records the phase
    afterwards, so a tenant counts as suspended from the spec change until the status records another phase.
    """
    phase = tenant.status.phase if tenant.status else None
    return tenant.spec.suspended or phase == "Suspended"


def suspended_hosts(tenants: list[Tenant]) -> dict[str, SuspendedTenant]:
    """Map each host of a suspended tenant to what its page shows.

    Hosts come from `status.hosts`, the hosts the operator routes for the tenant, so a
    custom domain that another tenant claimed first never shows this tenant's page.
    """
    hosts: dict[str, SuspendedTenant] = {}
    for tenant in tenants:
        if not is_suspended(tenant) or tenant.status is None:
            continue
        branding = tenant.spec.branding
        page = SuspendedTenant(
            product_name=(branding.product_name if branding else None) or tenant.spec.display_name or tenant.name,
            primary_color=branding.primary_color if branding else None,
            accent_color=branding.accent_color if branding else None,
        )
        for host in tenant.status.hosts or []:
            hosts[host.lower()] = page
    return hosts


def safe_colour(value: str | None, default: str | None) -> str | None:
    """Return `value` when it is `#rrggbb`, else `default`, so nothing else reaches the CSS."""
    if value is not None and COLOUR.match(value):
        return value
    return default


def render_page(tenant: SuspendedTenant) -> str:
    """Render the self-contained suspension page; every tenant value is escaped."""
    name = html.escape(tenant.product_name)
    primary = safe_colour(tenant.primary_color, DEFAULT_PRIMARY_COLOUR)
    accent = safe_colour(tenant.accent_color, None)
    border = f"border-bottom:4px solid {accent};" if accent else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{name} is suspended</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:0;color:#212529}"
        f"header{{background:{primary};{border}color:#fff;padding:1.5rem 2rem;font-size:1.4rem}}"
        "main{padding:2rem;max-width:40rem}</style></head>"
        f"<body><header>{name}</header><main><p>{name} is suspended. Your data is kept. "
        "Contact your administrator to restore access.</p></main></body></html>\n"
    )


def request_host(scope: Scope) -> str:
    """Return the Host header's host name: lowercase, without port or trailing dot."""
    for name, value in scope.get("headers") or []:
        if name == b"host":
            host = value.decode("latin-1").strip().lower()
            break
    else:
        return ""
    if host.startswith("["):
        return host[: host.find("]") + 1]
    if ":" in host:
        host = host.rsplit(":", 1)[0]
    return host.rstrip(".")


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class SuspendedHostCache:
    """The suspended tenants' hosts, read from the resource store at most every `ttl_seconds`.

    One listing of all Tenants refreshes the whole map, so a stream of requests costs one
    store read per interval. When a read fails, the previous map stays in use until the
    next interval.
    """

    def __init__(self, ttl_seconds: float) -> None:
        self.ttl_seconds = ttl_seconds
        self._hosts: dict[str, SuspendedTenant] = {}
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        return self._loaded_at is not None and time.monotonic() - self._loaded_at < self.ttl_seconds

    async def lookup(self, store: ResourceStore, host: str) -> SuspendedTenant | None:
        if not self._fresh():
            async with self._lock:
                if not self._fresh():
                    await self._refresh(store)
        return self._hosts.get(host)

    async def _refresh(self, store: ResourceStore) -> None:
        try:
            tenants = await store.list_tenants()
        except Exception as exc:  # the page is best effort and must never fail a control API request
            logger.warning("listing tenants for the suspension page failed: %s: %s", type(exc).__name__, exc)
        else:
            self._hosts = suspended_hosts(tenants)
        self._loaded_at = time.monotonic()


class SuspensionPageMiddleware:
    """Serve the 503 page for requests to a suspended tenant's host; pure ASGI.

    It reads the store from the app's `state.context`, which the lifespan sets, and
    never looks up the control API's own host or an IP address (kubelet probes).
    """

    def __init__(self, app: ASGIApp, *, public_url: str, cache_seconds: float) -> None:
        self.app = app
        self.public_host = (urlsplit(public_url).hostname or "").lower()
        self.cache = SuspendedHostCache(cache_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            tenant = await self._suspended_tenant(scope)
            if tenant is not None:
                response = HTMLResponse(
                    render_page(tenant),
                    status_code=503,
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _suspended_tenant(self, scope: Scope) -> SuspendedTenant | None:
        host = request_host(scope)
        if not host or host == self.public_host or is_ip_literal(host):
            return None
        context = getattr(scope["app"].state, "context", None) if "app" in scope else None
        if context is None:
            return None
        return await self.cache.lookup(context.store, host)
