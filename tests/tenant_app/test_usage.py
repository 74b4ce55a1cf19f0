"""The usage reporter: batched, retried with the same ids, never blocking, off when unset."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from livery_tenant_app.usage import UsageReporter

from .servers import serve

TOKEN = "usage-token-for-tests"


class FakeControlApi:
    """A real HTTP endpoint for POST /v1/usage that fails the first `failures` calls."""

    def __init__(self) -> None:
        self.failures = 0
        self.requests: list[dict] = []
        self.authorizations: list[str | None] = []
        self.app = Starlette(routes=[Route("/v1/usage", self.usage, methods=["POST"])])

    async def usage(self, request: Request) -> JSONResponse:
        self.authorizations.append(request.headers.get("authorization"))
        body = await request.json()
        if self.failures > 0:
            self.failures -= 1
            return JSONResponse({"error": "unavailable"}, status_code=503)
        self.requests.append(body)
        return JSONResponse({"stored": len(body["reports"])})


@pytest.fixture(scope="module")
def control_api() -> Iterator[tuple[FakeControlApi, str]]:
    fake = FakeControlApi()
    with serve(fake.app, lifespan="off") as url:
        yield fake, url


@pytest.fixture
def fake_api(control_api):
    fake, url = control_api
    fake.failures = 0
    fake.requests.clear()
    fake.authorizations.clear()
    return fake, url


async def test_reports_are_sent_in_one_batch(fake_api) -> None:
    fake, url = fake_api
    reporter = UsageReporter("acme", url, TOKEN)
    reporter.record("users", 3)
    reporter.record("storage_bytes", 1024)
    reporter.count_api_call()
    reporter.count_api_call()

    async with httpx.AsyncClient() as client:
        sent = await reporter.flush(client)

    assert sent == 3
    assert len(fake.requests) == 1
    body = fake.requests[0]
    assert body["tenant"] == "acme"
    assert {(report["metric"], report["value"]) for report in body["reports"]} == {
        ("users", 3), ("storage_bytes", 1024), ("api_calls", 2)
    }
    assert fake.authorizations == [f"Bearer {TOKEN}"]


async def test_failed_batch_is_retried_with_the_same_ids(fake_api) -> None:
    fake, url = fake_api
    fake.failures = 2
    reporter = UsageReporter("acme", url, TOKEN, flush_seconds=0.05, max_backoff_seconds=0.2)
    reporter.record("users", 7)

    reporter.start()
    deadline = time.monotonic() + 30
    # Wait for the reporter to process the response too: stopping while the successful request
    # is in flight leaves the batch queued, and stop() sends it once more.
    while (not fake.requests or reporter.pending) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await reporter.stop()

    assert len(fake.authorizations) == 3
    assert len(fake.requests) == 1
    assert fake.requests[0]["reports"][0]["value"] == 7
    assert reporter.pending == 0


async def test_unreachable_control_api_keeps_reports_queued() -> None:
    reporter = UsageReporter("acme", "http://127.0.0.1:9", TOKEN)
    reporter.record("users", 1)

    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.HTTPError):
            await reporter.flush(client)

    assert reporter.pending == 1


def test_reporter_without_url_records_nothing() -> None:
    reporter = UsageReporter("acme", None, None)

    reporter.record("users", 1)
    reporter.count_api_call()

    assert reporter.enabled is False
    assert reporter.pending == 0


def test_unknown_metric_is_rejected() -> None:
    reporter = UsageReporter("acme", "http://127.0.0.1:9", TOKEN)

    with pytest.raises(ValueError, match="users, storage_bytes, api_calls"):
        reporter.record("bandwidth", 1)


@pytest.mark.asyncio(loop_scope="session")
async def test_app_reports_users_storage_and_api_calls(tenant_pair, fake_api) -> None:
    from livery_tenant_app.app import create_app

    fake, url = fake_api
    acme, _ = tenant_pair
    reporter = UsageReporter(acme.name, url, TOKEN)
    app = create_app(acme.app.state.settings, storage=acme.app.state.files.storage, usage_reporter=reporter)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{acme.host}") as client:
        signed_in = await client.get("/auth/link", params={"token": acme.login_token()})
        uploaded = await client.post("/api/v1/files", files={"file": ("u.txt", b"12345", "text/plain")},
                                     headers=acme.api_headers())
    async with httpx.AsyncClient() as sender:
        await reporter.flush(sender)
    await app.state.tenant_database.dispose()

    assert signed_in.status_code == 303
    assert uploaded.status_code == 201
    metrics = {report["metric"]: report["value"] for body in fake.requests for report in body["reports"]}
    assert metrics["users"] >= 1
    assert metrics["storage_bytes"] >= 5
    assert metrics["api_calls"] == 1
