"""The local resource store against a real PostgreSQL database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from livery.models.plan import Plan
from livery.models.tenant import TenantStatus
from livery.store.base import AlreadyExists, CLI_FIELD_MANAGER, CONTROL_API_FIELD_MANAGER, Conflict, Invalid, NotFound
from livery.store.local import LocalStore

FREE_PLAN = {
    "apiVersion": "livery.dev/v1alpha1",
    "kind": "Plan",
    "metadata": {"name": "free"},
    "spec": {"displayName": "Free", "limits": {"users": 3, "storageMiB": 100, "apiRequestsPerMinute": 60}},
}
ACME = {"displayName": "Acme", "plan": "free", "branding": {"productName": "Acme Shop"}}

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
async def store(scratch_database: str) -> AsyncIterator[LocalStore]:
    store = await LocalStore.open(scratch_database)
    yield store
    await store.close()


async def test_apply_creates_tenant_at_generation_one(store: LocalStore) -> None:
    tenant = await store.apply_tenant("acme", ACME, CLI_FIELD_MANAGER)

    assert tenant.metadata.generation == 1
    assert tenant.spec.branding is not None
    assert tenant.spec.branding.product_name == "Acme Shop"
    assert (await store.get_tenant("acme")).spec.display_name == "Acme"


async def test_invalid_spec_is_rejected_and_changes_nothing(store: LocalStore) -> None:
    await store.apply_tenant("acme", ACME, CLI_FIELD_MANAGER)

    with pytest.raises(Invalid) as caught:
        await store.apply_tenant("acme", {**ACME, "branding": {"primaryColor": "#000000</style>"}}, CLI_FIELD_MANAGER)

    assert any(line.startswith("spec.branding.primaryColor:") for line in caught.value.errors)
    tenant = await store.get_tenant("acme")
    assert tenant.spec.branding is not None
    assert tenant.spec.branding.primary_color is None
    assert tenant.metadata.generation == 1


async def test_invalid_name_is_rejected(store: LocalStore) -> None:
    with pytest.raises(Invalid) as caught:
        await store.apply_tenant("9lives", ACME, CLI_FIELD_MANAGER)

    assert any(line.startswith("metadata.name:") for line in caught.value.errors)
    assert await store.list_tenants() == []


async def test_isolation_change_is_rejected(store: LocalStore) -> None:
    await store.apply_tenant("acme", {**ACME, "isolation": "shared"}, CLI_FIELD_MANAGER)

    with pytest.raises(Invalid) as caught:
        await store.apply_tenant("acme", {**ACME, "isolation": "database"}, CLI_FIELD_MANAGER)

    assert caught.value.errors[0].startswith("spec.isolation: cannot be changed")


async def test_isolation_can_be_removed(store: LocalStore) -> None:
    await store.apply_tenant("acme", {**ACME, "isolation": "shared"}, CLI_FIELD_MANAGER)

    tenant = await store.apply_tenant("acme", {**ACME, "isolation": None}, CLI_FIELD_MANAGER)

    assert tenant.spec.isolation is None


async def test_generation_bumps_only_on_spec_change(store: LocalStore) -> None:
    await store.apply_tenant("acme", ACME, CLI_FIELD_MANAGER)

    same = await store.apply_tenant("acme", ACME, CLI_FIELD_MANAGER)
    spelled_default = await store.apply_tenant("acme", {**ACME, "suspended": False}, CLI_FIELD_MANAGER)
    await store.update_tenant_status("acme", TenantStatus(phase="Ready"))
    after_status = await store.get_tenant("acme")
    changed = await store.apply_tenant("acme", {**ACME, "suspended": True}, CLI_FIELD_MANAGER)

    assert same.metadata.generation == 1
    assert spelled_default.metadata.generation == 1
    assert after_status.metadata.generation == 1
    assert after_status.status is not None
    assert after_status.status.phase == "Ready"
    assert changed.metadata.generation == 2


async def test_cli_apply_keeps_control_api_fields(store: LocalStore) -> None:
    await store.apply_tenant("acme", ACME, CLI_FIELD_MANAGER)
    await store.apply_tenant("acme", {"branding": {"primaryColor": "#112233"}}, CONTROL_API_FIELD_MANAGER)

    tenant = await store.apply_tenant("acme", {**ACME, "displayName": "Acme Inc"}, CLI_FIELD_MANAGER)

    assert tenant.spec.display_name == "Acme Inc"
    assert tenant.spec.branding is not None
    assert tenant.spec.branding.primary_color == "#112233"
    assert tenant.spec.branding.product_name == "Acme Shop"


async def test_cli_apply_removes_its_own_omitted_fields(store: LocalStore) -> None:
    await store.apply_tenant("acme", {**ACME, "domains": ["shop.acme.example.com"]}, CLI_FIELD_MANAGER)

    tenant = await store.apply_tenant("acme", ACME, CLI_FIELD_MANAGER)

    assert tenant.spec.domains is None


async def test_control_api_patch_keeps_cli_fields(store: LocalStore) -> None:
    await store.apply_tenant("acme", {**ACME, "domains": ["shop.acme.example.com"]}, CLI_FIELD_MANAGER)

    tenant = await store.apply_tenant("acme", {"plan": "pro"}, CONTROL_API_FIELD_MANAGER)

    assert tenant.spec.plan == "pro"
    assert tenant.spec.domains == ["shop.acme.example.com"]
    owners = {entry["manager"]: entry["fields"] for entry in tenant.metadata.model_extra["managedFields"]}
    assert owners[CONTROL_API_FIELD_MANAGER] == ["plan"]
    assert "plan" not in owners[CLI_FIELD_MANAGER]


async def test_delete_marks_then_remove_erases(store: LocalStore) -> None:
    await store.apply_tenant("acme", ACME, CLI_FIELD_MANAGER)

    await store.delete_tenant("acme")
    marked = await store.get_tenant("acme")
    await store.remove_tenant("acme")

    assert marked.metadata.deletion_timestamp is not None
    with pytest.raises(NotFound):
        await store.get_tenant("acme")


async def test_apply_to_deleting_tenant_conflicts(store: LocalStore) -> None:
    await store.apply_tenant("acme", ACME, CLI_FIELD_MANAGER)
    await store.delete_tenant("acme")

    with pytest.raises(Conflict):
        await store.apply_tenant("acme", ACME, CLI_FIELD_MANAGER)


async def test_plan_generation_bumps_on_change(store: LocalStore) -> None:
    plan = Plan.model_validate(FREE_PLAN)
    first = await store.apply_plan(plan, CLI_FIELD_MANAGER)
    same = await store.apply_plan(plan, CLI_FIELD_MANAGER)
    plan.spec.limits.users = 5
    changed = await store.apply_plan(plan, CLI_FIELD_MANAGER)

    assert first.metadata.generation == 1
    assert same.metadata.generation == 1
    assert changed.metadata.generation == 2
    assert (await store.get_plan("free")).spec.limits.users == 5


async def test_repeated_event_is_counted(store: LocalStore) -> None:
    await store.record_event("acme", "Normal", "Provisioned", "database ready")
    await store.record_event("acme", "Normal", "Provisioned", "database ready")
    await store.record_event("acme", "Warning", "BackOff", "app exited")

    events = await store.tenant_events("acme")

    assert [(event.reason, event.count) for event in events] == [("Provisioned", 2), ("BackOff", 1)]


async def test_secret_round_trip(store: LocalStore) -> None:
    assert await store.read_tenant_secret("acme") is None

    await store.write_tenant_secret("acme", {"LIVERY_LOGIN_KEY": "k1"})

    assert await store.read_tenant_secret("acme") == {"LIVERY_LOGIN_KEY": "k1"}


async def test_notify_wakes_listener(store: LocalStore) -> None:
    changes = store.changes()
    started = await asyncio.wait_for(anext(changes), timeout=5)

    await store.apply_tenant("acme", ACME, CLI_FIELD_MANAGER)
    change = await asyncio.wait_for(anext(changes), timeout=5)
    await changes.aclose()

    assert started == ("*", "")
    assert change == ("Tenant", "acme")


async def test_creation_order_survives_same_second(store: LocalStore) -> None:
    await store.apply_tenant("zeta", ACME, CLI_FIELD_MANAGER)
    await store.apply_tenant("alpha", ACME, CLI_FIELD_MANAGER)

    tenants = {tenant.name: tenant for tenant in await store.list_tenants()}

    assert tenants["zeta"].metadata.creation_timestamp < tenants["alpha"].metadata.creation_timestamp


async def test_create_writes_new_tenant(store: LocalStore) -> None:
    created = await store.create_tenant("acme", ACME, CONTROL_API_FIELD_MANAGER)

    stored = await store.get_tenant("acme")
    assert created.metadata.generation == 1
    assert created.metadata.resource_version == stored.metadata.resource_version
    assert created.metadata.uid == stored.metadata.uid
    assert stored.spec.display_name == "Acme"
    managers = [entry["manager"] for entry in stored.metadata.model_extra["managedFields"]]
    assert managers == [CONTROL_API_FIELD_MANAGER]


async def test_create_of_existing_name_changes_nothing(store: LocalStore) -> None:
    await store.apply_tenant("acme", ACME, CLI_FIELD_MANAGER)
    before = await store.get_tenant("acme")

    with pytest.raises(AlreadyExists):
        await store.create_tenant("acme", {**ACME, "displayName": "Impostor"}, CONTROL_API_FIELD_MANAGER)

    after = await store.get_tenant("acme")
    assert after.spec.display_name == "Acme"
    assert after.metadata.resource_version == before.metadata.resource_version


async def test_create_of_deleting_name_is_rejected(store: LocalStore) -> None:
    await store.apply_tenant("acme", ACME, CLI_FIELD_MANAGER)
    await store.delete_tenant("acme")

    with pytest.raises(AlreadyExists):
        await store.create_tenant("acme", ACME, CONTROL_API_FIELD_MANAGER)


async def test_create_of_invalid_spec_writes_nothing(store: LocalStore) -> None:
    with pytest.raises(Invalid) as caught:
        await store.create_tenant("acme", {**ACME, "plan": "Not A Plan"}, CONTROL_API_FIELD_MANAGER)

    assert any(line.startswith("spec.plan:") for line in caught.value.errors)
    assert await store.list_tenants() == []


async def test_create_notifies_listener_once(store: LocalStore) -> None:
    changes = store.changes()
    await asyncio.wait_for(anext(changes), timeout=5)

    await store.create_tenant("acme", ACME, CONTROL_API_FIELD_MANAGER)
    with pytest.raises(AlreadyExists):
        await store.create_tenant("acme", ACME, CONTROL_API_FIELD_MANAGER)
    await store.apply_tenant("zeta", ACME, CLI_FIELD_MANAGER)
    first = await asyncio.wait_for(anext(changes), timeout=5)
    second = await asyncio.wait_for(anext(changes), timeout=5)
    await changes.aclose()

    assert first == ("Tenant", "acme")
    assert second == ("Tenant", "zeta")
