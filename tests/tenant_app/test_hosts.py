"""Host resolution behind proxies: forwarded headers count only from trusted proxies."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from livery_tenant_app.app import create_app

from .support import app_settings, tenant_config_document

PROXY_IP = "10.0.0.7"
OUTSIDE_IP = "203.0.113.9"


@pytest.fixture
def globex_app(tmp_path: Path):
    config = tmp_path / "tenant.json"
    document = tenant_config_document("globex", hosts=["globex.localhost", "globex.example.test"])
    config.write_text(json.dumps(document))
    return create_app(app_settings(config, "globex", trusted_proxies="10.0.0.0/24"), storage=object())


def client_from(app, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://app.internal:4000")


async def test_forwarded_host_from_trusted_proxy_resolves(globex_app) -> None:
    async with client_from(globex_app, PROXY_IP) as client:
        response = await client.get("/theme.css", headers={"X-Forwarded-Host": "globex.example.test"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")


async def test_unknown_host_gets_404(globex_app) -> None:
    async with client_from(globex_app, PROXY_IP) as client:
        response = await client.get("/theme.css", headers={"X-Forwarded-Host": "initech.example.test"})

    assert response.status_code == 404
    assert "globex" not in response.text.lower()


async def test_direct_unknown_host_gets_404(globex_app) -> None:
    async with client_from(globex_app, OUTSIDE_IP) as client:
        response = await client.get("/theme.css")

    assert response.status_code == 404


async def test_forged_forwarded_host_from_untrusted_client_is_ignored(globex_app) -> None:
    async with client_from(globex_app, OUTSIDE_IP) as client:
        response = await client.get("/theme.css", headers={"X-Forwarded-Host": "globex.example.test"})

    assert response.status_code == 404


async def test_direct_request_for_tenant_host_is_served(globex_app) -> None:
    transport = httpx.ASGITransport(app=globex_app, client=(OUTSIDE_IP, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://GLOBEX.example.test:8080") as client:
        response = await client.get("/theme.css", headers={"X-Forwarded-Host": "evil.example"})

    assert response.status_code == 200


async def test_client_appended_host_before_proxy_value_is_ignored(globex_app) -> None:
    async with client_from(globex_app, PROXY_IP) as client:
        response = await client.get("/theme.css", headers={"X-Forwarded-Host": "globex.example.test, initech.example.test"})

    assert response.status_code == 404


async def test_health_answers_on_any_host(globex_app) -> None:
    async with client_from(globex_app, OUTSIDE_IP) as client:
        response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.text == "ok\n"


async def test_security_headers_on_every_response(globex_app) -> None:
    async with client_from(globex_app, PROXY_IP) as client:
        response = await client.get("/theme.css", headers={"X-Forwarded-Host": "globex.example.test"})

    assert response.status_code == 200
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'none'" in response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
