"""The local driver supervising real child processes (a tiny uvicorn app replaces the tenant app)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from livery.drivers.base import AppSpec, RouteSpec
from livery.drivers.local import LocalDriver, RoutingTable, tenant_folder
from livery.store.local import LocalStore

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_APP = [sys.executable, "-m", "uvicorn", "--app-dir", str(REPO_ROOT), "tests.runtime.tiny_app:app"]
SECRET = {
    "LIVERY_DATABASE_URL": "postgresql://tenant_acme:pw@127.0.0.1/livery_shared",
    "LIVERY_LOGIN_KEY": "login-key",
    "LIVERY_SESSION_KEY": "session-key",
    "LIVERY_USAGE_TOKEN": "usage-token",
    "LIVERY_DATABASE_PASSWORD": "pw",
}

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
async def driver(scratch_database: str, tmp_path: Path) -> AsyncIterator[LocalDriver]:
    store = await LocalStore.open(scratch_database)
    environment = {**os.environ, "LIVERY_DATABASE_URL": "postgresql://runtime-control-database"}
    driver = LocalDriver(store, tmp_path, RoutingTable(tmp_path / "routes.json"), app_command=TINY_APP, base_environment=environment)
    await driver.ensure_secret("acme", SECRET)
    yield driver
    await driver.shutdown(grace=2)
    await store.close()


def app_spec(replicas: int = 1, **environment: str) -> AppSpec:
    return AppSpec(
        tenant="acme",
        replicas=replicas,
        cpu="250m",
        memory="256Mi",
        environment={"LIVERY_TENANT": "acme", "LIVERY_ISOLATION": "shared", **environment},
        config_checksum="x",
    )


async def wait_ready(driver: LocalDriver, timeout: float = 20.0) -> None:
    async def ready() -> None:
        while not driver.app_states().get("acme"):
            await asyncio.sleep(0.05)

    await asyncio.wait_for(ready(), timeout)


async def app_environment(driver: LocalDriver) -> dict[str, str]:
    port = driver.routes.backends["acme"].port
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/env")
    assert response.status_code == 200
    return response.json()


async def test_app_gets_environment_contract(driver: LocalDriver) -> None:
    await driver.ensure_app(app_spec())
    await wait_ready(driver)

    environment = await app_environment(driver)

    assert environment["LIVERY_TENANT"] == "acme"
    assert environment["LIVERY_DATABASE_URL"] == SECRET["LIVERY_DATABASE_URL"]
    assert environment["LIVERY_LOGIN_KEY"] == "login-key"
    assert environment["LIVERY_TENANT_CONFIG"] == str(tenant_folder(driver.data_dir, "acme") / "tenant.json")
    assert environment["LIVERY_TRUSTED_PROXIES"] == "127.0.0.1"
    assert "LIVERY_DATABASE_PASSWORD" not in environment


async def test_app_ready_reported_after_start(driver: LocalDriver) -> None:
    first = await driver.ensure_app(app_spec())
    await wait_ready(driver)

    second = await driver.ensure_app(app_spec())

    assert first.ready is False
    assert second.ready is True


async def test_dead_app_is_restarted_with_event(driver: LocalDriver) -> None:
    await driver.ensure_app(app_spec())
    await wait_ready(driver)
    process = driver.processes["acme"].process
    assert process is not None

    process.kill()
    await asyncio.sleep(0.2)
    await wait_ready(driver)

    assert driver.processes["acme"].process is not process
    events = await driver.store.tenant_events("acme")
    assert [event.reason for event in events] == ["BackOff"]


async def test_zero_replicas_stops_app(driver: LocalDriver) -> None:
    await driver.ensure_app(app_spec())
    await wait_ready(driver)
    process = driver.processes["acme"].process
    assert process is not None

    state = await driver.ensure_app(app_spec(replicas=0))

    assert state.available_replicas == 0
    assert process.returncode is not None
    assert "acme" not in driver.processes


async def test_changed_environment_restarts_app(driver: LocalDriver) -> None:
    await driver.ensure_app(app_spec())
    await wait_ready(driver)

    await driver.ensure_app(app_spec(LIVERY_CONTROL_API_URL="http://127.0.0.1:9"))
    await wait_ready(driver)

    assert (await app_environment(driver))["LIVERY_CONTROL_API_URL"] == "http://127.0.0.1:9"


async def test_config_is_written_atomically_as_json(driver: LocalDriver) -> None:
    await driver.ensure_config("acme", {"tenant": "acme", "displayName": "Acme"})

    path = tenant_folder(driver.data_dir, "acme") / "tenant.json"

    assert json.loads(path.read_text())["displayName"] == "Acme"
    assert [child.name for child in path.parent.iterdir()] == ["tenant.json"]


async def test_remove_tenant_stops_app_and_routes(driver: LocalDriver) -> None:
    await driver.ensure_config("acme", {"tenant": "acme"})
    await driver.ensure_routing(RouteSpec(tenant="acme", hosts=["acme.localhost"], suspended=False))
    await driver.ensure_app(app_spec())
    await wait_ready(driver)

    await driver.remove_tenant("acme")

    assert driver.routes.resolve("acme.localhost").action == "unknown"
    assert "acme" not in driver.processes
    assert await driver.read_secret("acme") is None
    assert not (tenant_folder(driver.data_dir, "acme") / "tenant.json").exists()
