"""Health, readiness and metrics endpoints."""

from __future__ import annotations

import pytest

from livery.tenant_schema import HEAD_REVISION

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_readyz_reports_head_revision(tenant_pair) -> None:
    acme, _ = tenant_pair

    response = await acme.client.get("/readyz")

    assert response.status_code == 200, response.text
    assert response.json() == {"ready": True, "revision": HEAD_REVISION}


async def test_metrics_count_requests_by_route(tenant_pair) -> None:
    acme, _ = tenant_pair
    await acme.client.get("/api/v1/products", headers=acme.api_headers())

    response = await acme.client.get("/metrics")

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
