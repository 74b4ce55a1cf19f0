"""Health, readiness and metrics endpoints."""

from __future__ import annotations

import pytest

from livery.tenant_schema import HEAD_REVISION

pytestmark = pytest.mark.asyncio(loop_scope="session")

# The Host that Prometheus sends when it scrapes the pod by IP and port.
POD_ADDRESS = "10.244.0.17:8000"


async def test_readyz_reports_head_revision(tenant_pair) -> None:
    acme, _ = tenant_pair

    response = await acme.client.get("/readyz")

    assert response.status_code == 200, response.text
    assert response.json() == {"ready": True, "revision": HEAD_REVISION}


async def test_metrics_count_requests_by_route(tenant_pair) -> None:
    acme, _ = tenant_pair
    await acme.client.get("/api/v1/products", headers=acme.api_headers())

    async with acme.anonymous_client(POD_ADDRESS) as scraper:
        response = await scraper.get("/metrics")

    assert response.status_code == 200
    assert 'livery_tenant_app_requests_total{method="GET",route="/api/v1/products",status="200"}' in response.text
    assert "livery_tenant_app_request_duration_seconds_bucket" in response.text


async def test_openapi_lists_api_routes(tenant_pair) -> None:
    acme, _ = tenant_pair

    response = await acme.client.get("/openapi.json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/api/v1/products", "/api/v1/users", "/api/v1/files"} <= set(paths)
    assert "/login" not in paths


async def test_metrics_through_tenant_host_get_404(tenant_pair) -> None:
    acme, _ = tenant_pair

    response = await acme.client.get("/metrics")

    assert response.status_code == 404
    assert "livery_tenant_app_requests_total" not in response.text


@pytest.mark.parametrize("header", ["X-Forwarded-For", "X-Real-IP", "Forwarded"])
async def test_metrics_through_proxy_get_404(tenant_pair, header: str) -> None:
    acme, _ = tenant_pair

    async with acme.anonymous_client(POD_ADDRESS) as scraper:
        response = await scraper.get("/metrics", headers={header: "203.0.113.5"})

    assert response.status_code == 404
    assert "livery_tenant_app_requests_total" not in response.text
