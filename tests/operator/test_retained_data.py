"""A new Tenant with the name of a deleted one whose data was retained: adopted only on request."""

from __future__ import annotations

from operator_support import MemoryDriver, unique_name

from livery.reconcile import ReconcileSettings, reconcile_tenant
from livery.reconcile.finalize import finalize_tenant
from livery.reconcile.errors import ADOPT_RETAINED_DATA_ANNOTATION

SETTINGS = ReconcileSettings(base_domain="saas.test", url_scheme="https")


async def run(tenant, plan, driver, provisioner):
    return await reconcile_tenant(tenant, plan, driver=driver, provisioner=provisioner, settings=SETTINGS)


async def test_new_tenant_rejects_retained_data(make_tenant, plans, provisioner):
    name = unique_name("kept")
    first = await run(make_tenant(name, "pro"), plans["pro"], MemoryDriver(), provisioner)
    assert first.status.phase == "Ready"
    newcomer_driver = MemoryDriver()

    result = await run(make_tenant(name, "pro"), plans["pro"], newcomer_driver, provisioner)

    database = result.status.condition("DatabaseReady")
    assert database.status == "False"
    assert database.reason == "RetainedDataExists"
    assert ADOPT_RETAINED_DATA_ANNOTATION in database.message
    assert "(schema isolation)" in database.message
    assert name not in newcomer_driver.secrets
    assert name not in newcomer_driver.apps


async def test_annotation_adopts_retained_data(make_tenant, plans, provisioner):
    name = unique_name("adopt")
    await run(make_tenant(name, "pro"), plans["pro"], MemoryDriver(), provisioner)
    newcomer = make_tenant(name, "pro")
    newcomer.metadata.annotations = {ADOPT_RETAINED_DATA_ANNOTATION: "true"}

    result = await run(newcomer, plans["pro"], MemoryDriver(), provisioner)

    assert result.status.phase == "Ready"
    assert result.status.condition("DatabaseReady").reason == "Provisioned"


async def test_adopted_data_keeps_its_mode(make_tenant, plans, provisioner):
    name = unique_name("adoptmode")
    await run(make_tenant(name, "pro"), plans["pro"], MemoryDriver(), provisioner)
    newcomer = make_tenant(name, "enterprise")
    newcomer.metadata.annotations = {ADOPT_RETAINED_DATA_ANNOTATION: "true"}

    result = await run(newcomer, plans["enterprise"], MemoryDriver(), provisioner)

    assert result.status.isolation == "schema"
    assert result.status.phase == "Ready"
    assert await provisioner.database_exists(name, "database") is False


async def test_adopted_data_rejects_other_requested_mode(make_tenant, plans, provisioner):
    name = unique_name("adoptask")
    await run(make_tenant(name, "pro"), plans["pro"], MemoryDriver(), provisioner)
    newcomer = make_tenant(name, "pro", isolation="database")
    newcomer.metadata.annotations = {ADOPT_RETAINED_DATA_ANNOTATION: "true"}

    result = await run(newcomer, plans["pro"], MemoryDriver(), provisioner)

    assert result.status.condition("DatabaseReady").reason == "IsolationChangeRejected"
    assert result.status.isolation == "schema"
    assert await provisioner.database_exists(name, "database") is False


async def test_fresh_name_needs_no_annotation(make_tenant, plans, provisioner):
    result = await run(make_tenant(unique_name("fresh"), "free"), plans["free"], MemoryDriver(), provisioner)

    assert result.status.phase == "Ready"


async def test_deleting_refused_tenant_keeps_retained_data(make_tenant, plans, provisioner):
    name = unique_name("keep")
    await run(make_tenant(name, "pro"), plans["pro"], MemoryDriver(), provisioner)
    for policy in ("Delete", "Snapshot"):
        newcomer = make_tenant(name, "pro", deletionPolicy=policy)
        driver = MemoryDriver()
        refused = await run(newcomer, plans["pro"], driver, provisioner)
        newcomer.status = refused.status

        deleted = await finalize_tenant(newcomer, plans["pro"], driver=driver, provisioner=provisioner)

        assert refused.status.condition("DatabaseReady").reason == "RetainedDataExists"
        assert deleted.finished is True
        assert await provisioner.database_exists(name, "schema") is True
