"""The Kubernetes resource store against the API emulator, and the control API on top of it."""

from __future__ import annotations

import base64

import pytest

from livery.store.base import AlreadyExists, CLI_FIELD_MANAGER, CONTROL_API_FIELD_MANAGER, Invalid, NotFound

from .conftest import load_plans, unique_name

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(autouse=True)
async def plans_in_cluster(kube_store):
    """Apply the plans again: other test folders may reset the shared emulator between tests."""
    await load_plans(kube_store)


async def test_apply_creates_tenant_with_field_manager(kube_store, kube):
    name = unique_name()

    await kube_store.apply_tenant(name, {"displayName": "Kube Corp", "plan": "free"}, CONTROL_API_FIELD_MANAGER)

    raw = kube.get("tenants", name)
    assert raw["spec"]["plan"] == "free"
    managers = {entry["manager"] for entry in raw["metadata"].get("managedFields", [])}
    assert CONTROL_API_FIELD_MANAGER in managers


async def test_create_writes_tenant_once(kube_store, kube):
    name = unique_name()

    created = await kube_store.create_tenant(name, {"displayName": "Kube Corp", "plan": "free"}, CONTROL_API_FIELD_MANAGER)
    with pytest.raises(AlreadyExists):
        await kube_store.create_tenant(name, {"displayName": "Impostor", "plan": "free"}, CONTROL_API_FIELD_MANAGER)

    raw = kube.get("tenants", name)
    assert created.spec.display_name == "Kube Corp"
    assert raw["spec"]["displayName"] == "Kube Corp"
    assert raw["metadata"]["uid"] == created.metadata.uid


async def test_create_of_invalid_spec_writes_nothing(kube_store, kube):
    name = unique_name()

    with pytest.raises(Invalid) as raised:
        await kube_store.create_tenant(
            name, {"displayName": "Kube Corp", "plan": "free", "branding": {"primaryColor": "red"}},
            CONTROL_API_FIELD_MANAGER,
        )

    assert raised.value.errors[0].startswith("spec.branding.primaryColor:")
    with pytest.raises(NotFound):
        await kube_store.get_tenant(name)


async def test_apply_keeps_other_managers_fields(kube_store, kube):
    name = unique_name()
    await kube_store.apply_tenant(name, {"displayName": "Kube Corp", "plan": "free"}, CONTROL_API_FIELD_MANAGER)
    kube.patch("tenants", name, {"spec": {"deletionPolicy": "Delete"}})

    await kube_store.apply_tenant(name, {"branding": {"primaryColor": "#123456"}}, CONTROL_API_FIELD_MANAGER)

    spec = kube.get("tenants", name)["spec"]
    assert spec["deletionPolicy"] == "Delete"
    assert spec["plan"] == "free"
    assert spec["branding"] == {"primaryColor": "#123456"}


async def test_apply_keeps_own_earlier_fields(kube_store):
    name = unique_name()
    await kube_store.apply_tenant(name, {"displayName": "Kube Corp", "plan": "free"}, CONTROL_API_FIELD_MANAGER)
    await kube_store.apply_tenant(name, {"suspended": True}, CONTROL_API_FIELD_MANAGER)

    tenant = await kube_store.apply_tenant(name, {"plan": "pro"}, CONTROL_API_FIELD_MANAGER)

    assert tenant.spec.suspended is True
    assert tenant.spec.plan == "pro"
    assert tenant.spec.display_name == "Kube Corp"


async def test_null_removes_own_field(kube_store):
    name = unique_name()
    await kube_store.apply_tenant(
        name, {"displayName": "Kube Corp", "plan": "free", "branding": {"productName": "Desk", "primaryColor": "#000000"}},
        CONTROL_API_FIELD_MANAGER,
    )

    tenant = await kube_store.apply_tenant(name, {"branding": {"productName": None}}, CONTROL_API_FIELD_MANAGER)

    assert tenant.spec.branding.product_name is None
    assert tenant.spec.branding.primary_color == "#000000"


async def test_invalid_patch_changes_nothing(kube_store, kube):
    name = unique_name()
    await kube_store.apply_tenant(name, {"displayName": "Kube Corp", "plan": "free"}, CONTROL_API_FIELD_MANAGER)

    with pytest.raises(Invalid) as raised:
        await kube_store.apply_tenant(name, {"branding": {"primaryColor": "red"}}, CONTROL_API_FIELD_MANAGER)

    assert raised.value.errors[0].startswith("spec.branding.primaryColor:")
    assert "branding" not in kube.get("tenants", name)["spec"]


async def test_isolation_change_is_invalid(kube_store):
    name = unique_name()
    await kube_store.apply_tenant(name, {"displayName": "Kube Corp", "plan": "free", "isolation": "shared"}, CLI_FIELD_MANAGER)

    with pytest.raises(Invalid) as raised:
        await kube_store.apply_tenant(name, {"isolation": "database"}, CLI_FIELD_MANAGER)

    assert "cannot be changed" in raised.value.errors[0]


async def test_missing_tenant_is_not_found(kube_store):
    with pytest.raises(NotFound):
        await kube_store.get_tenant(unique_name())


async def test_secret_is_decoded(kube_store, kube):
    name = unique_name()
    namespace = f"tenant-{name}"
    kube.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    encoded = base64.b64encode(b"login-key").decode()
    kube.create("secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tenant-control", "namespace": namespace},
                            "data": {"LIVERY_LOGIN_KEY": encoded}}, namespace=namespace)
    password = base64.b64encode(b"database-password").decode()
    kube.create("secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tenant-app", "namespace": namespace},
                            "data": {"LIVERY_LOGIN_KEY": encoded, "LIVERY_DATABASE_PASSWORD": password}}, namespace=namespace)

    secret = await kube_store.read_tenant_secret(name)

    assert secret == {"LIVERY_LOGIN_KEY": "login-key"}


async def test_plans_are_listed(kube_store):
    plans = await kube_store.list_plans()

    assert [plan.name for plan in plans] == ["enterprise", "free", "pro"]


async def test_signup_through_kubernetes_store(kube_api, kube):
    response, tenant, email = await kube_api.signup()

    assert response.status_code == 201, response.text
    raw = kube.get("tenants", tenant)
    assert raw["spec"]["owner"] == {"email": email}


async def test_branding_through_kubernetes_store(kube_api, kube):
    tenant, owner = await kube_api.owner()

    response = await kube_api.http.patch(f"/v1/tenants/{tenant}/branding", json={"accentColor": "#abcdef"}, headers=owner)

    assert response.status_code == 200, response.text
    assert kube.get("tenants", tenant)["spec"]["branding"] == {"accentColor": "#abcdef"}


async def test_events_of_tenant_are_listed(kube_store, kube):
    name = unique_name()
    await kube_store.apply_tenant(name, {"displayName": "Kube Corp", "plan": "free"}, CONTROL_API_FIELD_MANAGER)
    for index, involved in enumerate([name, unique_name()]):
        kube.create("events", {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{name}.{index}", "namespace": "default"},
            "involvedObject": {"apiVersion": "livery.dev/v1alpha1", "kind": "Tenant", "name": involved},
            "reason": "Provisioned", "message": f"event {index}", "type": "Normal", "count": 1,
            "lastTimestamp": "2026-12-04T10:00:00Z",
        }, namespace="default")

    events = await kube_store.tenant_events(name)

    assert [event.message for event in events] == ["event 0"]
    assert events[0].reason == "Provisioned"


async def test_events_outside_default_are_not_read(kube_store, kube):
    name = unique_name()
    await kube_store.apply_tenant(name, {"displayName": "Kube Corp", "plan": "free"}, CONTROL_API_FIELD_MANAGER)
    for namespace in ("default", "kube-system"):
        kube.create("events", {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{name}.{namespace}", "namespace": namespace},
            "involvedObject": {"apiVersion": "livery.dev/v1alpha1", "kind": "Tenant", "name": name},
            "reason": "Provisioned", "message": f"event in {namespace}", "type": "Normal", "count": 1,
            "lastTimestamp": "2026-12-04T10:00:00Z",
        }, namespace=namespace)

    events = await kube_store.tenant_events(name)

    # The chart lets the control API list Events in "default" only, where Tenant events are recorded.
    assert [event.message for event in events] == ["event in default"]


async def test_server_rejection_names_the_rule(kube_store, kube):
    name = unique_name()
    await kube_store.apply_tenant(name, {"displayName": "Kube Corp", "plan": "free", "isolation": "shared"}, CLI_FIELD_MANAGER)
    manifest = {"apiVersion": "livery.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": name},
                "spec": {"displayName": "Kube Corp", "plan": "free", "isolation": "database"}}

    # Past the store's own check, the API server's CEL transition rule must reject the change.
    with pytest.raises(Invalid) as raised:
        await kube_store._apply("tenants", name, manifest, CLI_FIELD_MANAGER, exists=True)

    assert "rejected by the API server" in raised.value.errors[0]
    assert "isolation" in raised.value.errors[0]


async def test_domain_verification_through_kubernetes_store(kube_api, kube):
    tenant, owner = await kube_api.owner()
    await kube_api.admin("POST", f"/v1/admin/tenants/{tenant}/plan", json={"plan": "pro"})
    domain = f"{unique_name()}.example.com"
    record = (await kube_api.http.post(f"/v1/tenants/{tenant}/domains", json={"domain": domain}, headers=owner)).json()
    kube_api.dns.records[record["txtName"]] = [record["txtValue"]]

    response = await kube_api.http.post(f"/v1/tenants/{tenant}/domains/{domain}/verify", headers=owner)

    assert response.status_code == 200, response.text
    spec = kube.get("tenants", tenant)["spec"]
    assert spec["domains"] == [domain]
    assert spec["plan"] == "pro"


async def test_admin_suspend_keeps_kubectl_edits(kube_api, kube):
    tenant, _ = await kube_api.owner()
    kube.patch("tenants", tenant, {"spec": {"deletionPolicy": "Snapshot"}})

    response = await kube_api.admin("POST", f"/v1/admin/tenants/{tenant}/suspend")

    assert response.status_code == 200
    spec = kube.get("tenants", tenant)["spec"]
    assert spec["suspended"] is True
    assert spec["deletionPolicy"] == "Snapshot"
