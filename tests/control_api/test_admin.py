"""The admin API used by the `livery` command, and its audit log."""

from __future__ import annotations

import uuid

import pytest

from .conftest import ADMIN_TOKEN, unique_name

pytestmark = pytest.mark.asyncio(loop_scope="session")


def tenant_manifest(name: str, **spec) -> dict:
    return {
        "apiVersion": "livery.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": name},
        "spec": {"displayName": "Applied Corp", "plan": "free", **spec},
    }


async def test_apply_creates_then_reports_unchanged(api):
    name = unique_name()

    created = await api.admin("POST", "/v1/admin/apply", json=tenant_manifest(name))
    repeated = await api.admin("POST", "/v1/admin/apply", json=tenant_manifest(name))
    changed = await api.admin("POST", "/v1/admin/apply", json=tenant_manifest(name, displayName="Renamed"))

    assert created.status_code == 200
    assert created.json()["action"] == "created"
    assert repeated.json()["action"] == "unchanged"
    assert changed.json()["action"] == "configured"


async def test_apply_lists_every_error(api):
    manifest = tenant_manifest("9bad", plan="Not A Plan")

    response = await api.admin("POST", "/v1/admin/apply", json=manifest)

    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert "metadata.name:" in message
    assert "spec.plan:" in message


async def test_admin_api_hidden_from_customers(api):
    _, owner = await api.owner()

    response = await api.http.get("/v1/admin/tenants", headers=owner)

    assert response.status_code == 404


async def test_list_shows_usage(api, local_store):
    tenant, _ = await api.owner()
    await local_store.write_tenant_secret(tenant, {"LIVERY_USAGE_TOKEN": "t-" + tenant})
    report = {"id": str(uuid.uuid4()), "metric": "users", "value": 2, "timestamp": "2026-01-01T00:00:00Z"}
    await api.http.post("/v1/usage", json={"tenant": tenant, "reports": [report]}, headers={"Authorization": f"Bearer t-{tenant}"})

    response = await api.admin("GET", "/v1/admin/tenants")

    assert response.status_code == 200
    listed = {item["name"]: item for item in response.json()}
    assert listed[tenant]["usage"] == {"users": 2}


async def test_suspend_and_resume_are_audited(api):
    tenant, _ = await api.owner()

    suspended = await api.admin("POST", f"/v1/admin/tenants/{tenant}/suspend")
    spec_after_suspend = (await api.context.store.get_tenant(tenant)).spec.suspended
    resumed = await api.admin("POST", f"/v1/admin/tenants/{tenant}/resume")
    audit = await api.admin("GET", "/v1/admin/audit", params={"tenant": tenant})

    assert suspended.status_code == 200
    assert spec_after_suspend is True
    assert resumed.json()["suspended"] is False
    assert [entry["action"] for entry in audit.json()] == ["tenant.resumed", "tenant.suspended"]
    assert audit.json()[0]["actor"].startswith("admin:")
    assert ADMIN_TOKEN not in audit.text


async def test_downgrade_below_usage_is_refused(api, local_store):
    tenant, _ = await api.owner()
    await api.admin("POST", f"/v1/admin/tenants/{tenant}/plan", json={"plan": "pro"})
    await local_store.write_tenant_secret(tenant, {"LIVERY_USAGE_TOKEN": "t-" + tenant})
    report = {"id": str(uuid.uuid4()), "metric": "users", "value": 7, "timestamp": "2026-01-01T00:00:00Z"}
    await api.http.post("/v1/usage", json={"tenant": tenant, "reports": [report]}, headers={"Authorization": f"Bearer t-{tenant}"})

    response = await api.admin("POST", f"/v1/admin/tenants/{tenant}/plan", json={"plan": "free"})

    assert response.status_code == 409
    assert response.json()["error"]["message"].endswith("users: used 7, limit 3, excess 4")
    assert (await api.context.store.get_tenant(tenant)).spec.plan == "pro"


async def test_delete_marks_tenant_and_forgets_members(api):
    tenant, owner = await api.owner()

    response = await api.admin("DELETE", f"/v1/admin/tenants/{tenant}")
    after = await api.http.get(f"/v1/tenants/{tenant}", headers=owner)

    assert response.status_code == 202
    assert after.status_code == 404


async def test_unknown_tenant_is_not_found(api):
    response = await api.admin("GET", f"/v1/admin/tenants/{unique_name()}")

    assert response.status_code == 404
    assert response.json()["error"]["field"] == "name"


async def test_wrong_admin_token_is_unauthorized(api):
    response = await api.http.get("/v1/admin/tenants", headers={"Authorization": f"Bearer {ADMIN_TOKEN}x"})

    assert response.status_code == 401


async def test_apply_rejects_domain_of_other_tenant(api):
    first, second = unique_name(), unique_name()
    domain = f"{unique_name()}.example.com"
    created = await api.admin("POST", "/v1/admin/apply", json=tenant_manifest(first, domains=[domain]))

    response = await api.admin("POST", "/v1/admin/apply", json=tenant_manifest(second, domains=[domain]))

    assert created.status_code == 200
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "domain_taken"


async def test_apply_rejects_domain_under_base_domain(api):
    victim, _ = await api.owner()

    response = await api.admin(
        "POST", "/v1/admin/apply", json=tenant_manifest(unique_name(), domains=[f"{victim}.livery.test"])
    )

    assert response.status_code == 422
    assert response.json()["error"]["field"] == "domain"
