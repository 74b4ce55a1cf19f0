"""Per-tenant API rate limiting: 429 with Retry-After, in process and in Redis."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from livery_tenant_app.app import create_app
from livery_tenant_app.ratelimit import MemoryLimiterStore, RedisLimiterStore

from .support import app_settings, tenant_config_document

# Counted like every /api/ request, but the router returns 404 without touching the database.
UNROUTED_API_PATH = "/api/v1/no-such-route"


def make_app(tmp_path: Path, store, limit: int = 3):
    config = tmp_path / "tenant.json"
    config.write_text(json.dumps(tenant_config_document("acme", limits={"apiRequestsPerMinute": limit})))
    return create_app(app_settings(config, "acme"), storage=object(), limiter_store=store)


async def exhaust(app, limit: int) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://acme.localhost") as client:
        for _ in range(limit):
            response = await client.get(UNROUTED_API_PATH)
            assert response.status_code == 404
        return await client.get(UNROUTED_API_PATH)


async def test_request_past_limit_gets_429(tmp_path: Path) -> None:
    app = make_app(tmp_path, MemoryLimiterStore())

    response = await exhaust(app, 3)

    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert "3 requests a minute" in response.json()["error"]["message"]


async def test_rejections_are_counted_in_metrics(tmp_path: Path) -> None:
    app = make_app(tmp_path, MemoryLimiterStore())
    await exhaust(app, 3)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://acme.localhost") as client:
        response = await client.get("/metrics")

    assert response.status_code == 200
    assert "livery_tenant_app_rate_limited_total 1.0" in response.text


async def test_pages_are_not_rate_limited(tmp_path: Path) -> None:
    app = make_app(tmp_path, MemoryLimiterStore(), limit=1)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://acme.localhost") as client:
        statuses = [(await client.get("/theme.css")).status_code for _ in range(3)]

    assert statuses == [200, 200, 200]


async def test_redis_store_shares_the_budget(tmp_path: Path, redis_url: str | None) -> None:
    if not redis_url:
        pytest.skip("LIVERY_REDIS_URL is not set; the Redis limiter store needs a Redis server")
    prefix = f"livery:test:{uuid.uuid4().hex}:"
    first = make_app(tmp_path, RedisLimiterStore(redis_url, prefix=prefix), limit=2)
    second = make_app(tmp_path, RedisLimiterStore(redis_url, prefix=prefix), limit=2)

    await exhaust(first, 2)
    response = await exhaust_one(second)

    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1


async def exhaust_one(app) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://acme.localhost") as client:
        return await client.get(UNROUTED_API_PATH)
