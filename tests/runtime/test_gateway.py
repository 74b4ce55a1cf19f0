"""The gateway in front of a real echo app, both served by uvicorn on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from livery.drivers.local import Backend, RoutingTable
from livery_runtime.gateway import Gateway, nginx_config

from .servers import ThreadedServer


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Return the request's headers and body size as JSON; echo WebSocket messages."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": "echo:" + (message.get("text") or "")})
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    headers: dict[str, list[str]] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode(), []).append(value.decode())
    body = json.dumps({"path": scope["path"], "query": scope["query_string"].decode(), "headers": headers, "size": size})
    response_headers = [(b"content-type", b"application/json")]
    if scope["path"] == "/set-cookie":
        response_headers += [(b"set-cookie", b"session=one; Path=/"), (b"set-cookie", b"theme=dark; Path=/")]
    await send({"type": "http.response.start", "status": 200, "headers": response_headers})
    await send({"type": "http.response.body", "body": body.encode()})


@pytest.fixture(scope="module")
def routes() -> RoutingTable:
    return RoutingTable()


@pytest.fixture(scope="module")
def gateway(routes: RoutingTable) -> Iterator[str]:
    backend = ThreadedServer(echo_app).start()
    routes.configs["acme"] = {"displayName": "Acme", "branding": {"productName": "Acme Shop", "primaryColor": "#d9480f"}}
    routes.set_route("acme", ["acme.localhost", "shop.acme.example.com"], suspended=False)
    routes.set_backend("acme", Backend(backend.port, ready=True))
    routes.configs["globex"] = {"displayName": "Globex", "branding": {"productName": "Globex Portal", "primaryColor": "#2b8a3e"}}
    routes.set_route("globex", ["globex.localhost"], suspended=True)
    routes.set_claims({"initech.localhost": "initech"})
    front = ThreadedServer(Gateway(routes)).start()
    yield front.url
    front.stop()
    backend.stop()


def get(url: str, host: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(url + kwargs.pop("path", "/"), headers={"Host": host, **kwargs.pop("headers", {})}, **kwargs)


def test_known_host_is_proxied(gateway: str) -> None:
    response = get(gateway, "acme.localhost:8080", path="/items?page=2")

    assert response.status_code == 200
    body = response.json()
    assert body["path"] == "/items"
    assert body["query"] == "page=2"
    assert body["headers"]["host"] == ["acme.localhost:8080"]


def test_custom_domain_is_proxied(gateway: str) -> None:
    response = get(gateway, "SHOP.acme.example.com.")

    assert response.status_code == 200


def test_unknown_host_gets_404(gateway: str) -> None:
    response = get(gateway, "umbrella.localhost")

    assert response.status_code == 404
    assert "umbrella.localhost" in response.text


def test_provisioning_host_gets_503_with_retry_after(gateway: str) -> None:
    response = get(gateway, "initech.localhost")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"


def test_suspended_tenant_gets_branded_page(gateway: str) -> None:
    response = get(gateway, "globex.localhost")

    assert response.status_code == 503
    assert "Globex Portal is suspended" in response.text
    assert "#2b8a3e" in response.text


def test_gateway_sets_forwarded_headers(gateway: str) -> None:
    response = get(gateway, "acme.localhost:8080")

    assert response.status_code == 200
    headers = response.json()["headers"]
    assert headers["x-forwarded-for"] == ["127.0.0.1"]
    assert headers["x-forwarded-proto"] == ["http"]
    assert headers["x-forwarded-host"] == ["acme.localhost:8080"]


def test_gateway_strips_client_forwarded_headers(gateway: str) -> None:
    forged = {
        "X-Forwarded-Host": "globex.example.test",
        "X-Forwarded-For": "203.0.113.9",
        "Forwarded": "for=203.0.113.9;host=globex.example.test",
        "X-Real-IP": "203.0.113.9",
    }

    response = get(gateway, "acme.localhost", headers=forged)

    assert response.status_code == 200
    headers = response.json()["headers"]
    assert headers["x-forwarded-host"] == ["acme.localhost"]
    assert headers["x-forwarded-for"] == ["127.0.0.1"]
    assert "forwarded" not in headers
    assert "x-real-ip" not in headers


def test_forged_forwarded_host_does_not_route(gateway: str) -> None:
    response = get(gateway, "app.internal:4000", headers={"X-Forwarded-Host": "acme.localhost"})

    assert response.status_code == 404


def test_app_sees_only_client_headers(gateway: str) -> None:
    response = httpx.get(gateway + "/", headers={"Host": "acme.localhost"})

    assert response.status_code == 200
    headers = response.json()["headers"]
    assert headers["user-agent"] == [f"python-httpx/{httpx.__version__}"]
    assert headers["accept"] == ["*/*"]


def test_cookies_never_shared_between_clients(gateway: str) -> None:
    first = get(gateway, "acme.localhost", path="/set-cookie")
    second = httpx.get(gateway + "/", headers={"Host": "shop.acme.example.com"})

    assert first.status_code == 200
    assert first.headers.get_list("set-cookie") == ["session=one; Path=/", "theme=dark; Path=/"]
    assert second.status_code == 200
    assert "cookie" not in second.json()["headers"]


def test_request_body_is_streamed(gateway: str) -> None:
    payload = b"x" * (5 * 1024 * 1024)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(payload), 65536):
            yield payload[start : start + 65536]

    response = httpx.post(gateway + "/upload", headers={"Host": "acme.localhost"}, content=chunks())

    assert response.status_code == 200
    assert response.json()["size"] == len(payload)


def test_websocket_is_relayed(gateway: str) -> None:
    port = int(gateway.rsplit(":", 1)[1])
    tcp = socket.create_connection(("127.0.0.1", port))

    with connect(f"ws://acme.localhost:{port}/ws", sock=tcp) as websocket:
        websocket.send("hello")
        reply = websocket.recv(timeout=5)

    assert reply == "echo:hello"


def test_nginx_config_routes_each_tenant(routes: RoutingTable, gateway: str) -> None:
    config = nginx_config(routes.snapshot())

    assert "server_name acme.localhost shop.acme.example.com;" in config
    assert f"proxy_pass http://127.0.0.1:{routes.backends['acme'].port};" in config
    assert "default_server" in config
    globex_block = config[config.index("# tenant globex") :]
    assert "return 503;" in globex_block
