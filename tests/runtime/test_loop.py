"""The local reconcile loop with the real reconcile steps, store, provisioner and driver, in one process.

A tiny uvicorn app replaces the tenant app, so these tests check the loop's
scheduling and the driver's side of the reconcile, not the tenant app.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from livery.database.provisioner import DatabaseProvisioner
from livery.drivers.local import LocalDriver, RoutingTable
from livery.models.tenant import Tenant
from livery.reconcile import ReconcileSettings
from livery.store.base import CLI_FIELD_MANAGER, NotFound
from livery.store.local import LocalStore
from livery_runtime.loop import ReconcileLoop, claimed_hosts
from livery_runtime.up import apply_default_plans

from .runtime_process import database_url

pytestmark = pytest.mark.asyncio(loop_scope="session")

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_APP = [sys.executable, "-m", "uvicorn", "--app-dir", str(REPO_ROOT), "tests.runtime.tiny_app:app"]
TENANT = "loopy"
SPEC = {
    "displayName": "Loopy",
    "plan": "free",
    "isolation": "shared",
    "deletionPolicy": "Delete",
    "domains": ["shop.loopy.example.com"],
}


@pytest.fixture
async def loop(scratch_database: str, postgres_url: str, tmp_path: Path) -> AsyncIterator[ReconcileLoop]:
    store = await LocalStore.open(scratch_database)
    await apply_default_plans(store)
    # These tenants use the free plan's shared mode and also serve a custom domain.
    plan = await store.get_plan("free")
    plan.spec.features.custom_domains = True
    await store.apply_plan(plan, CLI_FIELD_MANAGER)
    provisioner = DatabaseProvisioner(postgres_url)
    driver = LocalDriver(store, tmp_path, RoutingTable(), app_command=TINY_APP)
    settings = ReconcileSettings(base_domain="localhost", url_scheme="http", url_port=8080, app_ready_poll_seconds=1.0)
    loop = ReconcileLoop(store, driver, provisioner, settings, resync_seconds=3600)
    driver.on_change = loop.enqueue
    await loop.start()
    yield loop
    await loop.stop()
    await driver.shutdown(grace=2)
    for name in (TENANT, "copycat"):
        await provisioner.drop_database(name, "shared")
    await store.close()


async def eventually(check: Callable[[], Any], timeout: float = 90.0) -> Any:
    """Await `check()` until it returns a true value, and return it."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s; last result {result!r}")
        await asyncio.sleep(0.1)


async def tenant_in_phase(store: LocalStore, name: str, phase: str) -> Tenant | None:
    tenant = await store.get_tenant(name)
    return tenant if tenant.status is not None and tenant.status.phase == phase else None


async def test_applied_tenant_becomes_ready(loop: ReconcileLoop) -> None:
    await loop.store.apply_tenant(TENANT, SPEC, CLI_FIELD_MANAGER)

    tenant = await eventually(lambda: tenant_in_phase(loop.store, TENANT, "Ready"))

    assert tenant.status.url == "http://loopy.localhost:8080/"
    assert tenant.status.observed_generation == 1
    assert loop.driver.routes.resolve("shop.loopy.example.com").action == "proxy"


async def test_plan_without_custom_domains_stops_serving_them(loop: ReconcileLoop) -> None:
    await loop.store.apply_tenant(TENANT, SPEC, CLI_FIELD_MANAGER)
    await eventually(lambda: tenant_in_phase(loop.store, TENANT, "Ready"))
    plan = await loop.store.get_plan("free")
    plan.spec.features.custom_domains = False

    await loop.store.apply_plan(plan, CLI_FIELD_MANAGER)

    async def custom_domain_dropped() -> bool:
        status = (await loop.store.get_tenant(TENANT)).status
        return status is not None and status.hosts == ["loopy.localhost"]

    assert await eventually(custom_domain_dropped)
    routing = (await loop.store.get_tenant(TENANT)).status.condition("RoutingReady")
    assert routing.reason == "CustomDomainsNotInPlan"
    assert loop.driver.routes.resolve("shop.loopy.example.com").action != "proxy"
    assert loop.driver.routes.resolve("loopy.localhost").action == "proxy"


async def test_plan_change_reconciles_its_tenants(loop: ReconcileLoop) -> None:
    await loop.store.apply_tenant(TENANT, SPEC, CLI_FIELD_MANAGER)
    await eventually(lambda: tenant_in_phase(loop.store, TENANT, "Ready"))
    plan = await loop.store.get_plan("free")
    plan.spec.limits.users = 7

    await loop.store.apply_plan(plan, CLI_FIELD_MANAGER)

    async def users_updated() -> bool:
        status = (await loop.store.get_tenant(TENANT)).status
        return status is not None and status.limits is not None and status.limits.users == 7

    assert await eventually(users_updated)


async def test_suspended_tenant_stops_app(loop: ReconcileLoop) -> None:
    await loop.store.apply_tenant(TENANT, SPEC, CLI_FIELD_MANAGER)
    await eventually(lambda: tenant_in_phase(loop.store, TENANT, "Ready"))

    await loop.store.apply_tenant(TENANT, {**SPEC, "suspended": True}, CLI_FIELD_MANAGER)
    await eventually(lambda: tenant_in_phase(loop.store, TENANT, "Suspended"))

    assert TENANT not in loop.driver.processes
    assert loop.driver.routes.resolve("loopy.localhost").action == "suspended"


async def test_deleted_tenant_is_removed(loop: ReconcileLoop) -> None:
    await loop.store.apply_tenant(TENANT, SPEC, CLI_FIELD_MANAGER)
    await eventually(lambda: tenant_in_phase(loop.store, TENANT, "Ready"))

    await loop.store.delete_tenant(TENANT)

    async def gone() -> bool:
        try:
            await loop.store.get_tenant(TENANT)
        except NotFound:
            return True
        return False

    assert await eventually(gone)
    assert loop.driver.routes.resolve("loopy.localhost").action == "unknown"
    assert not await loop.provisioner.database_exists(TENANT, "shared")


async def test_second_claim_on_host_conflicts(loop: ReconcileLoop) -> None:
    await loop.store.apply_tenant(TENANT, SPEC, CLI_FIELD_MANAGER)
    await eventually(lambda: tenant_in_phase(loop.store, TENANT, "Ready"))

    await loop.store.apply_tenant("copycat", {**SPEC, "displayName": "Copycat"}, CLI_FIELD_MANAGER)

    seen: list[Any] = []

    async def routing_condition() -> Any:
        status = (await loop.store.get_tenant("copycat")).status
        seen[:] = [status.to_json() if status is not None else None]
        condition = status.condition("RoutingReady") if status is not None else None
        return condition if condition is not None and condition.reason == "HostConflict" else None

    try:
        condition = await eventually(routing_condition)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last status of copycat: {seen}") from None
    assert "shop.loopy.example.com" in condition.message
    assert loop.driver.routes.resolve("shop.loopy.example.com").tenant == TENANT


async def test_first_claim_wins_by_creation_time() -> None:
    def tenant(name: str, created: str) -> Tenant:
        return Tenant.model_validate(
            {
                "apiVersion": "livery.dev/v1alpha1",
                "kind": "Tenant",
                "metadata": {"name": name, "creationTimestamp": created},
                "spec": {"displayName": name, "plan": "free", "domains": ["shop.example.com"]},
            }
        )

    claims = claimed_hosts([tenant("zeta", "2026-01-01T00:00:00Z"), tenant("alpha", "2026-02-01T00:00:00Z")], "localhost")

    assert claims["shop.example.com"] == "zeta"
    assert claims["alpha.localhost"] == "alpha"


def claimant(name: str, created: str, domains: list[str], served: list[str] | None = None) -> Tenant:
    return Tenant.model_validate(
        {
            "apiVersion": "livery.dev/v1alpha1",
            "kind": "Tenant",
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": {"displayName": name, "plan": "free", "domains": domains},
            "status": {"hosts": served} if served is not None else None,
        }
    )


async def test_served_host_stays_with_later_tenant() -> None:
    older = claimant("older", "2026-01-01T00:00:00Z", ["shop.example.com"])
    newer = claimant("newer", "2026-02-01T00:00:00Z", ["shop.example.com"], ["newer.localhost", "shop.example.com"])

    claims = claimed_hosts([older, newer], "localhost")

    assert claims["shop.example.com"] == "newer"


async def test_primary_host_not_claimable_by_domain() -> None:
    thief = claimant("thief", "2026-01-01T00:00:00Z", ["victim.localhost"], ["victim.localhost"])
    victim = claimant("victim", "2026-02-01T00:00:00Z", [])

    claims = claimed_hosts([thief, victim], "localhost")

    assert claims["victim.localhost"] == "victim"


async def test_claim_without_custom_domains_is_ignored() -> None:
    def tenant(name: str, created: str, plan: str) -> Tenant:
        return Tenant.model_validate(
            {
                "apiVersion": "livery.dev/v1alpha1",
                "kind": "Tenant",
                "metadata": {"name": name, "creationTimestamp": created},
                "spec": {"displayName": name, "plan": plan, "domains": ["shop.example.com"]},
            }
        )

    tenants = [tenant("zeta", "2026-01-01T00:00:00Z", "free"), tenant("alpha", "2026-02-01T00:00:00Z", "pro")]
    claims = claimed_hosts(tenants, "localhost", {"pro"})

    assert claims["shop.example.com"] == "alpha"
    assert claims["zeta.localhost"] == "zeta"
