"""Teams follow the Tenant resource: deleted or re-created Tenants lose their old team, and spec.owner owns."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from livery.store.base import CLI_FIELD_MANAGER
from livery_control_api.dependencies import utcnow
from livery_control_api.tables import Account, Membership, Signup, TenantBinding
from livery_control_api.team_sync import sync_teams

from .conftest import unique_name

pytestmark = pytest.mark.asyncio(loop_scope="session")


def tenant_manifest(name: str, owner: str) -> dict:
    return {
        "apiVersion": "livery.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": name},
        "spec": {"displayName": "Applied Corp", "plan": "free", "owner": {"email": owner}},
    }


async def delete_outside_api(api, name: str) -> None:
    """Delete the Tenant as kubectl and the finalizer do, without the control API."""
    await api.context.store.delete_tenant(name)
    await api.context.store.remove_tenant(name)


async def confirm_email(api, email: str) -> None:
    async with api.context.sessions() as session:
        account = await session.scalar(select(Account).where(Account.email == email))
        account.email_verified_at = utcnow()
        await session.commit()


async def owner_with_key(api) -> tuple[str, dict[str, str], dict[str, str]]:
    tenant, owner = await api.owner()
    created = await api.http.post(f"/v1/tenants/{tenant}/api-keys", json={"name": "ci", "role": "admin"}, headers=owner)
    assert created.status_code == 201, created.text
    return tenant, owner, {"Authorization": f"Bearer {created.json()['key']}"}


async def test_admin_apply_after_outside_delete_drops_old_team(api):
    tenant, owner, key = await owner_with_key(api)
    await delete_outside_api(api, tenant)

    created = await api.admin("POST", "/v1/admin/apply", json=tenant_manifest(tenant, "newcomer@example.com"))
    by_owner = await api.http.get(f"/v1/tenants/{tenant}", headers=owner)
    by_key = await api.http.get(f"/v1/tenants/{tenant}", headers=key)

    assert created.json()["action"] == "created"
    assert by_owner.status_code == 404
    assert by_key.status_code in (401, 404)


async def test_sync_frees_name_of_deleted_tenant(api):
    tenant, _, _ = await owner_with_key(api)
    await delete_outside_api(api, tenant)

    before = await api.http.get("/v1/signup/check-name", params={"name": tenant})
    await sync_teams(api.context)
    after = await api.http.get("/v1/signup/check-name", params={"name": tenant})

    assert before.json()["available"] is False
    assert after.json()["available"] is True
    async with api.context.sessions() as session:
        assert await session.get(Signup, tenant) is None
        assert await session.get(TenantBinding, tenant) is None


async def test_sync_drops_team_of_recreated_tenant(api):
    tenant, owner, key = await owner_with_key(api)
    await sync_teams(api.context)
    async with api.context.sessions() as session:
        first_uid = (await session.get(TenantBinding, tenant)).uid
    await delete_outside_api(api, tenant)
    await api.context.store.apply_tenant(
        tenant, tenant_manifest(tenant, "other@example.com")["spec"], CLI_FIELD_MANAGER
    )

    await sync_teams(api.context)
    by_owner = await api.http.get(f"/v1/tenants/{tenant}", headers=owner)
    by_key = await api.http.get(f"/v1/tenants/{tenant}", headers=key)

    assert by_owner.status_code == 404
    assert by_key.status_code in (401, 404)
    async with api.context.sessions() as session:
        binding = await session.get(TenantBinding, tenant)
    assert binding.uid != first_uid
    assert binding.uid == (await api.context.store.get_tenant(tenant)).metadata.uid


async def test_sync_keeps_team_of_live_tenant(api):
    tenant, owner, key = await owner_with_key(api)

    await sync_teams(api.context)
    await sync_teams(api.context)

    assert (await api.http.get(f"/v1/tenants/{tenant}", headers=owner)).status_code == 200
    assert (await api.http.get(f"/v1/tenants/{tenant}", headers=key)).status_code == 200


async def test_owner_change_moves_owner_role(api):
    tenant, first_owner = await api.owner()
    _, _, successor_email = await api.signup()
    await confirm_email(api, successor_email)
    successor = {"Authorization": f"Bearer {await api.token(successor_email)}"}

    applied = await api.admin("POST", "/v1/admin/apply", json=tenant_manifest(tenant, successor_email))
    old_view = await api.http.get(f"/v1/tenants/{tenant}", headers=first_owner)
    new_view = await api.http.get(f"/v1/tenants/{tenant}", headers=successor)
    old_link = await api.http.post(f"/v1/tenants/{tenant}/login-link", headers=first_owner)

    assert applied.status_code == 200, applied.text
    assert old_view.json()["role"] == "admin"
    assert new_view.json()["role"] == "owner"
    assert old_link.status_code == 403


async def test_owner_change_by_sync(api):
    tenant, first_owner = await api.owner()
    _, _, successor_email = await api.signup()
    await confirm_email(api, successor_email)
    spec = (await api.context.store.get_tenant(tenant)).spec.to_json()
    await api.context.store.apply_tenant(tenant, {**spec, "owner": {"email": successor_email}}, CLI_FIELD_MANAGER)

    await sync_teams(api.context)

    async with api.context.sessions() as session:
        memberships = (await session.scalars(select(Membership).where(Membership.tenant == tenant))).all()
    assert (await api.http.get(f"/v1/tenants/{tenant}", headers=first_owner)).json()["role"] == "admin"
    assert sorted(membership.role for membership in memberships) == ["admin", "owner"]


async def test_login_link_refused_to_other_owner_email(api):
    tenant, owner = await api.owner()

    response = await api.http.post(f"/v1/tenants/{tenant}/login-link", headers=owner)

    # The tenant is not provisioned in these tests, so the named owner gets not_ready, never 403.
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_ready"


async def test_pending_paid_signup_grants_no_role(stripe_api):
    response, tenant, email = await stripe_api.signup(plan="pro")
    assert response.json()["state"] == "pending_payment"
    customer = {"Authorization": f"Bearer {await stripe_api.token(email)}"}

    view = await stripe_api.http.get(f"/v1/tenants/{tenant}", headers=customer)
    branding = await stripe_api.http.patch(
        f"/v1/tenants/{tenant}/branding", json={"productName": "not yours"}, headers=customer
    )

    assert view.status_code == 404
    assert branding.status_code == 404


async def test_admin_apply_waits_for_pending_paid_signup(stripe_api):
    response, tenant, _ = await stripe_api.signup(plan="pro")
    assert response.json()["state"] == "pending_payment"

    applied = await stripe_api.admin("POST", "/v1/admin/apply", json=tenant_manifest(tenant, "adminmade@example.com"))

    assert applied.status_code == 409
    assert applied.json()["error"]["code"] == "name_pending_payment"
    assert tenant not in [item.name for item in await stripe_api.context.store.list_tenants()]


async def test_unconfirmed_email_gets_no_owner_role(api):
    tenant = unique_name()
    squatter_email = f"{unique_name()}@example.com"
    applied = await api.admin("POST", "/v1/admin/apply", json=tenant_manifest(tenant, squatter_email))
    response, _, _ = await api.signup(email=squatter_email)
    squatter = {"Authorization": f"Bearer {await api.token(squatter_email)}"}

    await sync_teams(api.context)
    before = await api.http.get(f"/v1/tenants/{tenant}", headers=squatter)
    await confirm_email(api, squatter_email)
    await sync_teams(api.context)
    after = await api.http.get(f"/v1/tenants/{tenant}", headers=squatter)

    assert applied.status_code == 200
    assert response.status_code == 201
    assert before.status_code == 404
    assert after.json()["role"] == "owner"


async def test_signup_records_tenant_uid(api):
    response, tenant, _ = await api.signup()

    async with api.context.sessions() as session:
        binding = await session.get(TenantBinding, tenant)

    assert response.status_code == 201
    assert binding.uid == (await api.context.store.get_tenant(tenant)).metadata.uid
