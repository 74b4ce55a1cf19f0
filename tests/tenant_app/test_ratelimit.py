"""API rate limiting: the plan's budget for authenticated calls, a per-address budget for failures."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import jwt
import pytest
import pytest_asyncio

from livery.database import DatabaseInfo, DatabaseProvisioner
from livery_tenant_app.app import create_app
from livery_tenant_app.ratelimit import (
    FAILED_AUTHENTICATIONS_PER_MINUTE,
    WINDOW_SECONDS,
    LimiterStore,
    MemoryLimiterStore,
    RedisLimiterStore,
)

from .support import app_settings, tenant_config_document

pytestmark = pytest.mark.asyncio(loop_scope="session")

API_PATH = "/api/v1/products"
BAD_KEY = {"Authorization": "Bearer lvk_not-a-key"}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def limited_tenant(provisioner: DatabaseProvisioner) -> AsyncIterator[tuple[str, DatabaseInfo]]:
    """A provisioned shared-mode tenant; each test starts its own app on it with a fresh limiter store."""
    name = f"limits-{uuid.uuid4().hex[:8]}"
    info = await provisioner.ensure_database(name, "shared", f"pw-{uuid.uuid4().hex}")
    yield name, info
    await provisioner.drop_database(name, "shared")


@asynccontextmanager
async def running_app(
    limited_tenant: tuple[str, DatabaseInfo], tmp_path: Path, limit: int, store: LimiterStore | None = None,
    **settings_values,
) -> AsyncIterator:
    name, info = limited_tenant
    config = tmp_path / f"{name}-{uuid.uuid4().hex[:6]}.json"
    document = tenant_config_document(
        name, isolation="shared", owner_email=f"owner@{name}.example", limits={"apiRequestsPerMinute": limit}
    )
    config.write_text(json.dumps(document))
    settings = app_settings(
        config, name, database_url=info.app_url, isolation="shared", files_dir=tmp_path, **settings_values
    )
    app = create_app(settings, storage=object(), limiter_store=store or MemoryLimiterStore())
    async with app.router.lifespan_context(app):
        yield app


def client_of(app, client_address: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(client_address, 40000))
    name = app.state.settings.tenant
    return httpx.AsyncClient(transport=transport, base_url=f"http://{name}.localhost")


async def sign_in(app, client: httpx.AsyncClient) -> None:
    settings = app.state.settings
    now = int(time.time())
    claims = {"sub": f"owner@{settings.tenant}.example", "tenant": settings.tenant, "aud": "livery-login",
              "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}
    token = jwt.encode(claims, settings.login_key.get_secret_value(), algorithm="HS256")
    response = await client.get("/auth/link", params={"token": token})
    assert response.status_code == 303, response.text


async def start_of_window() -> None:
    """Wait until at least 10 s remain in the limiter's one-minute window, so a test's requests share it."""
    remaining = WINDOW_SECONDS - time.time() % WINDOW_SECONDS
    if remaining < 10:
        await asyncio.sleep(remaining + 0.1)


async def test_authenticated_request_past_limit_gets_429(limited_tenant, tmp_path: Path) -> None:
    async with running_app(limited_tenant, tmp_path, limit=3) as app, client_of(app) as client:
        await sign_in(app, client)
        await start_of_window()
        statuses = [(await client.get(API_PATH)).status_code for _ in range(3)]
        response = await client.get(API_PATH)

    assert statuses == [200, 200, 200]
    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert "3 requests a minute" in response.json()["error"]["message"]


async def test_anonymous_requests_leave_budget_alone(limited_tenant, tmp_path: Path) -> None:
    async with running_app(limited_tenant, tmp_path, limit=3) as app:
        await start_of_window()
        async with client_of(app, "192.0.2.7") as anonymous:
            statuses = [(await anonymous.get(API_PATH)).status_code for _ in range(5)]
            with_bad_key = await anonymous.get(API_PATH, headers=BAD_KEY)
        async with client_of(app) as client:
            await sign_in(app, client)
            signed_in = await client.get(API_PATH)

    assert statuses == [401] * 5
    assert with_bad_key.status_code == 401
    assert signed_in.status_code == 200


async def test_failed_authentications_limited_per_address(limited_tenant, tmp_path: Path) -> None:
    async with running_app(limited_tenant, tmp_path, limit=1000) as app:
        await start_of_window()
        async with client_of(app, "192.0.2.8") as attacker:
            statuses = [(await attacker.get(API_PATH, headers=BAD_KEY)).status_code
                        for _ in range(FAILED_AUTHENTICATIONS_PER_MINUTE)]
            limited = await attacker.get(API_PATH, headers=BAD_KEY)
        async with client_of(app, "192.0.2.9") as neighbour:
            other_address = await neighbour.get(API_PATH, headers=BAD_KEY)

    assert set(statuses) == {401}
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert "failed API authentications" in limited.json()["error"]["message"]
    assert other_address.status_code == 401


async def test_failed_authentications_counted_per_forwarded_address(limited_tenant, tmp_path: Path) -> None:
    async with running_app(limited_tenant, tmp_path, limit=1000, trusted_proxies="127.0.0.1") as app:
        await start_of_window()
        async with client_of(app) as proxy:
            behind = {**BAD_KEY, "X-Forwarded-For": "198.51.100.1"}
            statuses = [(await proxy.get(API_PATH, headers=behind)).status_code
                        for _ in range(FAILED_AUTHENTICATIONS_PER_MINUTE + 1)]
            other_client = await proxy.get(API_PATH, headers={**BAD_KEY, "X-Forwarded-For": "198.51.100.2"})

    assert statuses[-1] == 429
    assert other_client.status_code == 401


async def test_rejections_are_counted_in_metrics(limited_tenant, tmp_path: Path) -> None:
    async with running_app(limited_tenant, tmp_path, limit=1) as app, client_of(app) as client:
        await sign_in(app, client)
        await start_of_window()
        await client.get(API_PATH)
        rejected = await client.get(API_PATH)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as scraper:
            response = await scraper.get("/metrics")

    assert rejected.status_code == 429
    assert response.status_code == 200
    assert "livery_tenant_app_rate_limited_total 1.0" in response.text


async def test_pages_are_not_rate_limited(limited_tenant, tmp_path: Path) -> None:
    async with running_app(limited_tenant, tmp_path, limit=1) as app, client_of(app) as client:
        statuses = [(await client.get("/theme.css")).status_code for _ in range(3)]

    assert statuses == [200, 200, 200]


async def test_redis_store_shares_the_budget(limited_tenant, tmp_path: Path, redis_url: str | None) -> None:
    if not redis_url:
        pytest.skip("LIVERY_REDIS_URL is not set; the Redis limiter store needs a Redis server")
    prefix = f"livery:test:{uuid.uuid4().hex}:"
    async with (
        running_app(limited_tenant, tmp_path, 2, RedisLimiterStore(redis_url, prefix=prefix)) as first,
        running_app(limited_tenant, tmp_path, 2, RedisLimiterStore(redis_url, prefix=prefix)) as second,
        client_of(first) as first_client,
        client_of(second) as second_client,
    ):
        await sign_in(first, first_client)
        await sign_in(second, second_client)
        await start_of_window()
        allowed = [(await first_client.get(API_PATH)).status_code for _ in range(2)]
        response = await second_client.get(API_PATH)

    assert allowed == [200, 200]
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1


async def test_memory_store_forgets_past_windows() -> None:
    store = MemoryLimiterStore()
    for number in range(50):
        await store.hit(f"sign-in:acme:user{number}@example.com", 100)

    count = await store.hit("sign-in:acme:late@example.com", 101)

    assert count == 1
    assert len(store) == 1


async def test_memory_store_caps_its_keys() -> None:
    store = MemoryLimiterStore(max_keys=3)
    for number in range(10):
        await store.hit(f"key{number}", 100)

    newest = await store.count("key9", 100)
    evicted = await store.count("key0", 100)

    assert len(store) == 3
    assert newest == 1
    assert evicted == 0
