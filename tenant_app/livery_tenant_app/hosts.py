"""Resolve which host a request is for, trusting forwarded headers only from known proxies.

A request is served only when its host is one of the tenant's hosts from the
tenant config. Any other host gets 404, never a default tenant. The
`X-Forwarded-Host`, `-Proto` and `-For` headers count only when the direct
client is in `LIVERY_TRUSTED_PROXIES`; from anyone else they are ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from .config import LoadedConfig
from .settings import IpNetwork

# Probes and scrapers reach the pod by IP, so these paths skip the host check.
HOST_EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# Headers that reverse proxies and ingress controllers commonly add to the requests they pass on.
PROXY_HEADERS = frozenset({b"forwarded", b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto", b"x-real-ip"})


@dataclass(frozen=True)
class ResolvedRequest:
    host: str
    authority: str
    scheme: str
    client_ip: str


def is_trusted(address: str | None, networks: Iterable[IpNetwork]) -> bool:
    """Return whether `address` lies in one of `networks`."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def normalise_host(value: str) -> str:
    """Return a Host header value without port, trailing dot or upper case."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[: end + 1] if end != -1 else value
    host = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    return host.rstrip(".")


def is_direct_request(scope: Scope, tenant_hosts: Iterable[str]) -> bool:
    """Return whether a request reached the app directly, not through a proxy or a tenant host.

    A direct request, such as Prometheus scraping the pod by its IP, has a
    Host that is not one of the tenant's hosts and carries no proxy header.
    A request routed by the tenant's Ingress fails the first test, and
    usually the second as well.
    """
    host = ""
    for name, value in scope.get("headers", []):
        name = name.lower()
        if name in PROXY_HEADERS:
            return False
        if name == b"host":
            host = value.decode("latin-1")
    return normalise_host(host) not in set(tenant_hosts)


def _last_value(header: str) -> str:
    # The nearest proxy appends its value last; earlier values come from the client.
    return header.split(",")[-1].strip()


def resolve_request(scope: Scope, networks: list[IpNetwork]) -> ResolvedRequest:
    """Return the host, scheme and client IP of a request, honouring trusted proxies only."""
    headers = {}
    for name, value in scope.get("headers", []):
        headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    client = scope.get("client")
    direct_ip = client[0] if client else ""
    host = headers.get("host", "")
    scheme = scope.get("scheme", "http")
    client_ip = direct_ip

    if networks and is_trusted(direct_ip, networks):
        forwarded_host = headers.get("x-forwarded-host")
        if forwarded_host:
            host = _last_value(forwarded_host)
        forwarded_proto = headers.get("x-forwarded-proto")
        if forwarded_proto and _last_value(forwarded_proto) in ("http", "https"):
            scheme = _last_value(forwarded_proto)
        forwarded_for = headers.get("x-forwarded-for")
        if forwarded_for:
            # Walk from the nearest hop back until the first address that is not a proxy.
            for hop in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
                client_ip = hop
                if not is_trusted(hop, networks):
                    break
    return ResolvedRequest(host=normalise_host(host), authority=host.strip(), scheme=scheme, client_ip=client_ip)


class TenantHostMiddleware:
    """Reject requests for hosts the tenant does not own; record the resolved host in the scope."""

    def __init__(self, app: ASGIApp, current_config: Callable[[], LoadedConfig], networks: list[IpNetwork]) -> None:
        self.app = app
        self.current_config = current_config
        self.networks = networks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loaded = self.current_config()
        state = scope.setdefault("state", {})
        state["loaded_config"] = loaded
        if scope["path"] in HOST_EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return

        resolved = resolve_request(scope, self.networks)
        if resolved.host not in loaded.hosts:
            response = PlainTextResponse("Not Found: this host is not served here.\n", status_code=404)
            await response(scope, receive, send)
            return

        state["client_ip"] = resolved.client_ip
        headers = [(name, value) for name, value in scope.get("headers", []) if name.lower() != b"host"]
        headers.append((b"host", resolved.authority.encode("latin-1")))
        scope = dict(scope, scheme=resolved.scheme, headers=headers)
        await self.app(scope, receive, send)
