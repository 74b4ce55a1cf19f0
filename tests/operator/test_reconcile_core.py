"""The shared reconcile steps against a real PostgreSQL, with an in-memory driver."""

from __future__ import annotations

import psycopg
import pytest

from livery.drivers.base import SECRET_DATABASE_URL
from livery.reconcile import SECRET_DATABASE_PASSWORD, ReconcileSettings, finalize_tenant, reconcile_tenant
from livery.database import DatabaseProvisioner
from livery.models.tenant import TenantStatus

from operator_support import PLAN_OF_ISOLATION, Crash, MemoryDriver, unique_name

SETTINGS = ReconcileSettings(base_domain="saas.test", url_scheme="https")


async def run(tenant, plan, driver, provisioner, claimed=None):
    result = await reconcile_tenant(
        tenant, plan, driver=driver, provisioner=provisioner, settings=SETTINGS, claimed_hosts=claimed
    )
    tenant.status = result.status
    return result


def role_count(postgres_url: str, role: str) -> int:
    with psycopg.connect(postgres_url) as connection:
        return connection.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (role,)).fetchone()[0]


@pytest.mark.parametrize("isolation", ["database", "schema", "shared"])
async def test_reconcile_reports_ready(isolation, make_tenant, plans, provisioner):
    plan = plans[PLAN_OF_ISOLATION[isolation]]
    tenant = make_tenant(unique_name("ready"), plan.name)
    driver = MemoryDriver()

    result = await run(tenant, plan, driver, provisioner)

    status = result.status
    assert status.phase == "Ready"
    assert [(c.type, c.status) for c in status.conditions] == [
        ("Ready", "True"), ("DatabaseReady", "True"), ("AppReady", "True"), ("RoutingReady", "True")
    ]
    assert status.isolation == isolation
    assert status.database.role == "tenant_" + tenant.name.replace("-", "_")
    assert status.url == f"https://{tenant.name}.saas.test/"
    assert status.limits.replicas == plan.spec.limits.replicas
    assert status.observed_generation == 1
    assert result.retry_after is None


async def test_credentials_are_generated_once(make_tenant, plans, provisioner):
    tenant = make_tenant(unique_name("creds"), "pro")
    driver = MemoryDriver()
    await run(tenant, plans["pro"], driver, provisioner)
    first = dict(driver.secrets[tenant.name])

    await run(tenant, plans["pro"], driver, provisioner)

    assert driver.secrets[tenant.name] == first
    assert first[SECRET_DATABASE_URL].startswith("postgresql")


async def test_database_url_reaches_only_the_secret(make_tenant, plans, provisioner):
    tenant = make_tenant(unique_name("leak"), "pro")
    driver = MemoryDriver()

    result = await run(tenant, plans["pro"], driver, provisioner)

    password = driver.secrets[tenant.name][SECRET_DATABASE_PASSWORD]
    assert password not in result.status.model_dump_json()
    assert password not in repr(driver.configs[tenant.name])
    assert password not in repr(driver.apps[tenant.name].environment)
    assert all(password not in event[3] for event in driver.events)


async def test_new_password_changes_secret_checksum(make_tenant, plans, provisioner):
    tenant = make_tenant(unique_name("rotate"), "pro")
    driver = MemoryDriver()
    await run(tenant, plans["pro"], driver, provisioner)
    before = driver.apps[tenant.name].secret_checksum

    driver.secrets[tenant.name][SECRET_DATABASE_PASSWORD] = "a-new-password-set-by-hand"
    await run(tenant, plans["pro"], driver, provisioner)
    after = driver.apps[tenant.name].secret_checksum

    assert len(before) == 64
    assert after != before
    assert all(value not in after for value in driver.secrets[tenant.name].values())


async def test_missing_plan_fails_then_recovers(make_tenant, plans, provisioner):
    tenant = make_tenant(unique_name("noplan"), "pro")
    driver = MemoryDriver()

    missing = await run(tenant, None, driver, provisioner)
    assert missing.status.phase == "Failed"
    assert missing.status.condition("Ready").reason == "PlanNotFound"
    assert missing.retry_after is not None
    assert tenant.name not in driver.secrets

    recovered = await run(tenant, plans["pro"], driver, provisioner)
    assert recovered.status.phase == "Ready"


async def test_plan_change_updates_limits(make_tenant, plans, provisioner):
    tenant = make_tenant(unique_name("plan"), "pro")
    driver = MemoryDriver()
    await run(tenant, plans["pro"], driver, provisioner)
    bigger = plans["pro"].model_copy(deep=True)
    bigger.spec.limits.replicas = 4

    result = await run(tenant, bigger, driver, provisioner)

    assert result.status.limits.replicas == 4
    assert driver.apps[tenant.name].replicas == 4
    assert driver.configs[tenant.name]["limits"]["replicas"] == 4


async def test_suspend_scales_app_to_zero(make_tenant, plans, provisioner):
    tenant = make_tenant(unique_name("susp"), "pro")
    driver = MemoryDriver()
    await run(tenant, plans["pro"], driver, provisioner)
    tenant.spec.suspended = True

    result = await run(tenant, plans["pro"], driver, provisioner)

    assert result.status.phase == "Suspended"
    assert driver.apps[tenant.name].replicas == 0
    assert driver.routes[tenant.name].suspended is True
    assert result.status.condition("AppReady").reason == "Suspended"


async def test_resume_restores_replicas(make_tenant, plans, provisioner):
    tenant = make_tenant(unique_name("resume"), "pro", suspended=True)
    driver = MemoryDriver()
    await run(tenant, plans["pro"], driver, provisioner)
    tenant.spec.suspended = False

    result = await run(tenant, plans["pro"], driver, provisioner)

    assert result.status.phase == "Ready"
    assert driver.apps[tenant.name].replicas == plans["pro"].spec.limits.replicas


async def test_unavailable_replicas_keep_tenant_provisioning(make_tenant, plans, provisioner):
    tenant = make_tenant(unique_name("wait"), "pro")

    result = await run(tenant, plans["pro"], MemoryDriver(available=False), provisioner)

    assert result.status.phase == "Provisioning"
    assert result.status.condition("AppReady").reason == "ReplicasUnavailable"
    assert result.recheck_after is not None
    assert result.retry_after is None


async def test_transition_time_kept_while_status_holds(make_tenant, plans, provisioner):
    tenant = make_tenant(unique_name("time"), "pro")
    driver = MemoryDriver()
    first = await run(tenant, plans["pro"], driver, provisioner)
    stamp = first.status.condition("Ready").last_transition_time
    events = len(driver.events)

    second = await run(tenant, plans["pro"], driver, provisioner)

    assert second.status.condition("Ready").last_transition_time == stamp
    assert len(driver.events) == events


async def test_isolation_change_is_rejected(make_tenant, plans, provisioner):
    tenant = make_tenant(unique_name("iso"), "pro", isolation="schema")
    driver = MemoryDriver()
    await run(tenant, plans["pro"], driver, provisioner)
    tenant.spec.isolation = "database"

    result = await run(tenant, plans["pro"], driver, provisioner)

    condition = result.status.condition("DatabaseReady")
    assert result.status.phase == "Failed"
    assert condition.reason == "IsolationChangeRejected"
    assert "'schema'" in condition.message
    assert result.status.isolation == "schema"
    assert driver.apps[tenant.name].environment["LIVERY_ISOLATION"] == "schema"


async def test_later_claimant_reports_host_conflict(make_tenant, plans, provisioner):
    first = make_tenant(unique_name("host"), "pro", domains=["shop.shared.test"])
    second = make_tenant(unique_name("host"), "pro", domains=["shop.shared.test", "own.shared.test"])
    claimed = {"shop.shared.test": first.name}
    driver = MemoryDriver()

    result = await run(second, plans["pro"], driver, provisioner, claimed)

    routing = result.status.condition("RoutingReady")
    assert routing.status == "False"
    assert routing.reason == "HostConflict"
    assert "shop.shared.test" not in driver.routes[second.name].hosts
    assert "own.shared.test" in driver.routes[second.name].hosts
    assert first.name not in routing.message


async def test_unreachable_database_is_temporary_and_redacted(make_tenant, plans):
    tenant = make_tenant(unique_name("down"), "pro")
    unreachable = DatabaseProvisioner("postgresql://admin:topsecretpw@127.0.0.1:1/postgres", connect_timeout=1)

    result = await run(tenant, plans["pro"], MemoryDriver(), unreachable)

    condition = result.status.condition("DatabaseReady")
    assert condition.status == "False"
    assert condition.reason == "DatabaseUnreachable"
    assert "topsecretpw" not in condition.message
    assert result.retry_after is not None


@pytest.mark.parametrize("isolation", ["database", "schema", "shared"])
async def test_crash_after_any_call_converges(isolation, make_tenant, plans, provisioner, postgres_url):
    plan = plans[PLAN_OF_ISOLATION[isolation]]
    tenant = make_tenant(unique_name("crash"), plan.name)
    driver = MemoryDriver()
    passwords = set()
    crashes = 0

    # Crash before the first driver call, then before the second, and so on,
    # until a reconcile gets through. Each crash keeps what the calls before it did.
    while True:
        driver.crash_after = crashes
        driver.calls = 0
        try:
            result = await run(tenant, plan, driver, provisioner)
        except Crash:
            crashes += 1
            if tenant.name in driver.secrets:
                passwords.add(driver.secrets[tenant.name][SECRET_DATABASE_PASSWORD])
            continue
        break

    assert crashes >= 4
    assert result.status.phase == "Ready"
    assert len(passwords) == 1
    assert driver.secrets[tenant.name][SECRET_DATABASE_PASSWORD] in passwords
    assert role_count(postgres_url, "tenant_" + tenant.name.replace("-", "_")) == 1


async def test_logs_name_steps_but_no_secrets(make_tenant, plans, caplog):
    tenant = make_tenant(unique_name("logs"), "pro")
    # A recorded isolation skips the check for retained data, which needs the server, so the secret is stored first.
    tenant.status = TenantStatus(isolation="schema")
    unreachable = DatabaseProvisioner("postgresql://admin:logsecretpw@127.0.0.1:1/postgres", connect_timeout=1)
    driver = MemoryDriver()

    with caplog.at_level("DEBUG", logger="livery.reconcile"):
        await run(tenant, plans["pro"], driver, unreachable)

    password = driver.secrets[tenant.name][SECRET_DATABASE_PASSWORD]
    assert f"tenant {tenant.name}: ensure_secret succeeded" in caplog.text
    assert f"tenant {tenant.name}: ensure_database failed" in caplog.text
    assert "logsecretpw" not in caplog.text
    assert password not in caplog.text


async def test_lost_secret_keeps_isolation_in_force(make_tenant, plans, provisioner):
    tenant = make_tenant(unique_name("lost"), "pro")
    driver = MemoryDriver()
    await run(tenant, plans["pro"], driver, provisioner)
    del driver.secrets[tenant.name]
    moved = plans["pro"].model_copy(deep=True)
    moved.spec.isolation = "database"

    result = await run(tenant, moved, driver, provisioner)

    assert result.status.isolation == "schema"
    assert result.status.condition("DatabaseReady").status == "True"
    assert driver.secrets[tenant.name]["LIVERY_ISOLATION"] == "schema"


async def test_plan_with_other_default_keeps_mode(make_tenant, plans, provisioner):
    tenant = make_tenant(unique_name("move"), "free")
    driver = MemoryDriver()
    await run(tenant, plans["free"], driver, provisioner)
    tenant.spec.plan = "pro"

    result = await run(tenant, plans["pro"], driver, provisioner)

    assert plans["pro"].spec.isolation != plans["free"].spec.isolation
    assert result.status.isolation == plans["free"].spec.isolation
    assert result.status.phase != "Failed"
    assert result.status.condition("DatabaseReady").status == "True"
    assert result.status.limits.users == plans["pro"].spec.limits.users
    assert driver.apps[tenant.name].environment["LIVERY_ISOLATION"] == plans["free"].spec.isolation


async def test_delete_without_secret_or_plan_uses_status(make_tenant, plans, provisioner):
    tenant = make_tenant(unique_name("orphan"), "pro", deletionPolicy="Delete")
    driver = MemoryDriver()
    tenant.status = (await run(tenant, plans["pro"], driver, provisioner)).status
    del driver.secrets[tenant.name]

    result = await finalize_tenant(tenant, None, driver=driver, provisioner=provisioner)

    assert result.finished is True
    assert await provisioner.database_exists(tenant.name, "schema") is False
    assert await provisioner.database_exists(tenant.name, "shared") is False


async def test_edited_secret_mode_is_put_back(make_tenant, plans, provisioner):
    tenant = make_tenant(unique_name("mode"), "pro")
    driver = MemoryDriver()
    tenant.status = (await run(tenant, plans["pro"], driver, provisioner)).status
    driver.secrets[tenant.name]["LIVERY_ISOLATION"] = "shared"

    result = await run(tenant, plans["pro"], driver, provisioner)

    assert result.status.isolation == "schema"
    assert result.status.phase == "Ready"
    assert driver.secrets[tenant.name]["LIVERY_ISOLATION"] == "schema"
    assert driver.apps[tenant.name].environment["LIVERY_ISOLATION"] == "schema"


async def test_removed_isolation_recovers_rejected_change(make_tenant, plans, provisioner):
    tenant = make_tenant(unique_name("undo"), "pro")
    driver = MemoryDriver()
    tenant.status = (await run(tenant, plans["pro"], driver, provisioner)).status
    tenant.spec.isolation = "database"
    tenant.status = (await run(tenant, plans["pro"], driver, provisioner)).status
    tenant.spec.isolation = None

    result = await run(tenant, plans["pro"], driver, provisioner)

    assert result.status.phase == "Ready"
    assert result.status.isolation == "schema"
