"""The embedded gateway: a reverse proxy that routes by Host header to each tenant's app.

It is a pure ASGI application (no Starlette middleware, which costs a large
share of throughput) that uvicorn serves on 127.0.0.1:8080 by default:

- a host of a ready tenant is proxied to its app, bodies streamed both ways
  and WebSockets relayed;
- a host of a tenant that is still starting gets 503 with `Retry-After`;
- a host of a suspended tenant gets the tenant's branded suspension page;
- any other host gets 404: there is no default tenant.

The gateway is the edge, so it drops every `X-Forwarded-*`, `Forwarded` and
`X-Real-IP` header a client sends and sets `X-Forwarded-For`, `-Proto`,
`-Host` and `-Port` itself. The tenant apps trust those headers only from
127.0.0.1 (`LIVERY_TRUSTED_PROXIES`).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from livery.drivers.local import Resolution, RoutingTable

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]

RETRY_AFTER_SECONDS = 2
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
CLIENT_FORWARDING = frozenset(
    {b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port", b"x-real-ip"}
)
WEBSOCKET_SKIPPED = frozenset(
    {b"host", b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions", b"sec-websocket-protocol"}
)
DEFAULT_COLOUR = "#495057"
# Headers aiohttp would add on its own; the app must see only what the client sent.
SKIPPED_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


def request_host(scope: Scope) -> tuple[str, str]:
    """Return the Host header as sent and the bare host name: lowercase, no port, no trailing dot."""
    raw = ""
    for name, value in scope["headers"]:
        if name == b"host":
            raw = value.decode("latin-1")
            break
    host = raw.strip().lower()
    if host.startswith("["):
        host = host[: host.find("]") + 1]
    elif ":" in host:
        host = host.rsplit(":", 1)[0]
    return raw, host.rstrip(".")


def forwarded_headers(scope: Scope, raw_host: str) -> list[tuple[bytes, bytes]]:
    """Return the request headers for the app: hop-by-hop and client forwarding headers replaced."""
    headers = [
        (name, value)
        for name, value in scope["headers"]
        if name not in HOP_BY_HOP and name not in CLIENT_FORWARDING
    ]
    client = scope.get("client")
    server = scope.get("server")
    scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
    if client:
        headers.append((b"x-forwarded-for", client[0].encode("latin-1")))
    headers.append((b"x-forwarded-proto", scheme.encode()))
    headers.append((b"x-forwarded-host", raw_host.encode("latin-1")))
    if server and server[1] is not None:
        headers.append((b"x-forwarded-port", str(server[1]).encode()))
    return headers


def page(title: str, heading: str, text: str, colour: str = DEFAULT_COLOUR) -> bytes:
    """Render a small self-contained HTML page; every value is escaped."""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:0;color:#212529}"
        f"header{{background:{html.escape(colour)};color:#fff;padding:1.5rem 2rem;font-size:1.4rem}}"
        "main{padding:2rem;max-width:40rem}</style></head>"
        f"<body><header>{html.escape(heading)}</header><main><p>{html.escape(text)}</p></main></body></html>\n"
    ).encode()


def suspension_page(resolution: Resolution) -> bytes:
    branding = resolution.config.get("branding") or {}
    name = branding.get("productName") or resolution.config.get("displayName") or resolution.tenant or ""
    colour = branding.get("primaryColor") or DEFAULT_COLOUR
    return page(
        f"{name} is suspended",
        name,
        f"{name} is suspended. Your data is kept. Contact your administrator to restore access.",
        colour,
    )


class Gateway:
    """The ASGI application of the gateway.

    It talks to the apps through an aiohttp client, whose C HTTP parser costs
    far less per request than a pure-Python one. The client is made on the
    serving event loop, at lifespan start-up or on the first request.
    """

    def __init__(self, routes: RoutingTable, *, read_timeout: float = 300.0) -> None:
        self.routes = routes
        self.read_timeout = read_timeout
        self._session: aiohttp.ClientSession | None = None

    def client_session(self) -> aiohttp.ClientSession:
        """Return the client session, made on first use on the running event loop.

        Its cookie jar stores nothing: a cookie one client's response set must
        never be sent with another client's request.
        """
        if self._session is None:
            self._session = aiohttp.ClientSession(
                cookie_jar=aiohttp.DummyCookieJar(),
                connector=aiohttp.TCPConnector(limit=1000, limit_per_host=200, keepalive_timeout=30),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=self.read_timeout),
                auto_decompress=False,
                skip_auto_headers=SKIPPED_AUTO_HEADERS,
                trust_env=False,
            )
        return self._session

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self.handle_http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self.handle_websocket(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.handle_lifespan(receive, send)

    async def handle_lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.client_session()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._session is not None:
                    await self._session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def handle_http(self, scope: Scope, receive: Any, send: Any) -> None:
        raw_host, host = request_host(scope)
        resolution = self.routes.resolve(host)
        if resolution.action == "unknown":
            body = page("Not found", "Not found", f"No tenant is served at {host or 'this address'}.")
            await respond(send, 404, body)
            return
        if resolution.action == "suspended":
            await respond(send, 503, suspension_page(resolution))
            return
        if resolution.action == "starting":
            body = page("Starting", "Starting", "This site is being set up. The page reloads in a moment.")
            await respond(send, 503, body, [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())])
            return
        await self.proxy_http(scope, receive, send, resolution, raw_host)

    async def proxy_http(self, scope: Scope, receive: Any, send: Any, resolution: Resolution, raw_host: str) -> None:
        headers = CIMultiDict(
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in forwarded_headers(scope, raw_host)
        )
        has_body = any(name in (b"content-length", b"transfer-encoding") for name, _ in scope["headers"])
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        # encoded=True keeps the client's path bytes as they are, with no re-quoting.
        url = URL(f"http://127.0.0.1:{resolution.port}{target.decode('latin-1')}", encoded=True)
        try:
            response = await self.client_session().request(
                scope["method"],
                url,
                headers=headers,
                data=request_body(receive) if has_body else None,
                allow_redirects=False,
            )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            logger.warning("gateway: tenant %s app on port %s failed: %s", resolution.tenant, resolution.port, type(exc).__name__)
            body = page("Unavailable", "Unavailable", "The app did not respond. Try again in a moment.")
            await respond(send, 503, body, [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())])
            return
        try:
            response_headers = [(name, value) for name, value in response.raw_headers if name.lower() not in HOP_BY_HOP]
            await send({"type": "http.response.start", "status": response.status, "headers": response_headers})
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            # The response already started, so the only signal left is a cut connection.
            logger.warning("gateway: tenant %s response broke off: %s", resolution.tenant, type(exc).__name__)
        finally:
            response.release()

    async def handle_websocket(self, scope: Scope, receive: Any, send: Any) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

        message = await receive()
        if message["type"] != "websocket.connect":
            return
        raw_host, host = request_host(scope)
        resolution = self.routes.resolve(host)
        if resolution.action != "proxy":
            # 4404 and 4503 mirror the HTTP status codes for an unknown and an unavailable tenant.
            await send({"type": "websocket.close", "code": 4404 if resolution.action == "unknown" else 4503})
            return

        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in forwarded_headers(scope, raw_host)
            if name not in WEBSOCKET_SKIPPED
        ]
        try:
            # The URI carries the client's Host header, and host and port select where to connect.
            backend = await connect(
                f"ws://{raw_host}{target.decode('latin-1')}",
                host="127.0.0.1",
                port=resolution.port,
                additional_headers=headers,
                subprotocols=scope.get("subprotocols") or None,
                open_timeout=10,
                max_size=None,
            )
        except (OSError, ValueError, InvalidHandshake, asyncio.TimeoutError) as exc:
            code = 4403 if isinstance(exc, InvalidStatus) else 4503
            await send({"type": "websocket.close", "code": code})
            return

        await send({"type": "websocket.accept", "subprotocol": backend.subprotocol})

        async def client_to_app() -> None:
            while True:
                event = await receive()
                if event["type"] == "websocket.disconnect":
                    await backend.close(event.get("code", 1000))
                    return
                payload = event.get("bytes") if event.get("bytes") is not None else event.get("text")
                await backend.send(payload)

        async def app_to_client() -> None:
            with contextlib.suppress(ConnectionClosed):
                async for payload in backend:
                    if isinstance(payload, bytes):
                        await send({"type": "websocket.send", "bytes": payload})
                    else:
                        await send({"type": "websocket.send", "text": payload})
            close_code = backend.close_code or 1000
            with contextlib.suppress(RuntimeError, OSError):
                await send({"type": "websocket.close", "code": close_code})

        tasks = [asyncio.create_task(client_to_app()), asyncio.create_task(app_to_client())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*tasks, return_exceptions=True)
            await backend.close()


async def request_body(receive: Any) -> AsyncIterator[bytes]:
    """Yield the client's request body as it arrives."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return


async def respond(send: Any, status: int, body: bytes, extra_headers: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    headers.extend(extra_headers or [])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def nginx_config(snapshot: dict[str, Any], *, listen: str = "80") -> str:
    """Render the routing table as an nginx configuration with the gateway's behaviour.

    Each tenant gets a server block for its hosts. Unknown hosts fall to a
    default server that returns 404, and suspended tenants return 503.
    """
    lines = [
        "# Generated by `livery gateway-config --nginx` from the embedded runtime's routing table.",
        "# Ports are those of the running tenant apps; regenerate after `livery up` restarts.",
        "",
        "map $http_upgrade $connection_upgrade {",
        "    default upgrade;",
        "    ''      close;",
        "}",
        "",
        "server {",
        f"    listen {listen} default_server;",
        "    server_name _;",
        "    return 404;",
        "}",
    ]
    for tenant, entry in sorted(snapshot.get("tenants", {}).items()):
        lines += ["", f"# tenant {tenant}", "server {", f"    listen {listen};", f"    server_name {' '.join(entry['hosts'])};"]
        if entry.get("suspended"):
            lines += ["    return 503;"]
        elif entry.get("port") is None:
            lines += ["    add_header Retry-After 2 always;", "    return 503;"]
        else:
            lines += [
                "    location / {",
                f"        proxy_pass http://127.0.0.1:{entry['port']};",
                "        proxy_http_version 1.1;",
                "        proxy_set_header Host $http_host;",
                "        proxy_set_header X-Forwarded-For $remote_addr;",
                "        proxy_set_header X-Forwarded-Proto $scheme;",
                "        proxy_set_header X-Forwarded-Host $http_host;",
                "        proxy_set_header X-Forwarded-Port $server_port;",
                "        proxy_set_header Forwarded \"\";",
                "        proxy_set_header X-Real-IP \"\";",
                "        proxy_set_header Upgrade $http_upgrade;",
                "        proxy_set_header Connection $connection_upgrade;",
                "        proxy_request_buffering off;",
                "        proxy_buffering off;",
                "    }",
            ]
        lines.append("}")
    return "\n".join(lines) + "\n"
