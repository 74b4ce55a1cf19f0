"""Invitation listing and revocation, and what removing or demoting a member revokes."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import select

from livery_control_api.dependencies import Caller
from livery_control_api.security import token_digest
from livery_control_api.tables import Account, ApiKey, AuditEntry
from livery_control_api.team import lock_caller_membership

from .conftest import unique_name

pytestmark = pytest.mark.asyncio(loop_scope="session")

PASSWORD = "member password 1"


async def join(api, tenant: str, inviter: dict[str, str], role: str) -> tuple[str, dict[str, str]]:
    """Invite a new email with `role`, accept the invitation and return the email with its Authorization header."""
    email = f"{unique_name()}@example.com"
    invited = await api.http.post(f"/v1/tenants/{tenant}/members", json={"email": email, "role": role}, headers=inviter)
    assert invited.status_code == 201, invited.text
    accepted = await api.http.post("/v1/invitations/accept", json={"token": invitation_token(api, email), "password": PASSWORD})
    assert accepted.status_code == 200, accepted.text
    return email, {"Authorization": f"Bearer {await api.token(email, PASSWORD)}"}


def invitation_token(api, email: str) -> str:
    return api.mailer.last_link(email).split("token=", 1)[1]


async def invite(api, tenant: str, inviter: dict[str, str], role: str = "admin") -> tuple[str, str]:
    """Send an invitation and return the invited email with the invitation token."""
    email = f"{unique_name()}@example.net"
    response = await api.http.post(f"/v1/tenants/{tenant}/members", json={"email": email, "role": role}, headers=inviter)
    assert response.status_code == 201, response.text
    return email, invitation_token(api, email)


async def create_key(api, tenant: str, headers: dict[str, str], role: str = "admin") -> dict:
    response = await api.http.post(f"/v1/tenants/{tenant}/api-keys", json={"name": "ci", "role": role}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def audit_actions(api, tenant: str) -> list[str]:
    async with api.context.sessions() as session:
        return list((await session.scalars(
            select(AuditEntry.action).where(AuditEntry.tenant == tenant).order_by(AuditEntry.id)
        )).all())


async def test_removal_revokes_invitations_and_keys(api):
    tenant, owner = await api.owner()
    admin_email, admin = await join(api, tenant, owner, "admin")
    _, pending_token = await invite(api, tenant, admin)
    admin_key = await create_key(api, tenant, admin)
    owner_key = await create_key(api, tenant, owner)

    removed = await api.http.delete(f"/v1/tenants/{tenant}/members/{admin_email}", headers=owner)

    assert removed.status_code == 204
    with_admin_key = await api.http.patch(
        f"/v1/tenants/{tenant}/branding", json={"productName": "pwned"}, headers={"Authorization": f"Bearer {admin_key['key']}"}
    )
    assert with_admin_key.status_code == 401
    accepted = await api.http.post("/v1/invitations/accept", json={"token": pending_token, "password": PASSWORD})
    assert accepted.status_code == 422
    with_owner_key = await api.http.get(f"/v1/tenants/{tenant}", headers={"Authorization": f"Bearer {owner_key['key']}"})
    assert with_owner_key.status_code == 200
    actions = await audit_actions(api, tenant)
    assert "member.removed" in actions
    assert "invitation.revoked" in actions
    assert "api_key.revoked" in actions


async def test_removal_keeps_other_members_grants(api):
    tenant, owner = await api.owner()
    admin_email, admin = await join(api, tenant, owner, "admin")
    _, other_admin = await join(api, tenant, owner, "admin")
    _, other_token = await invite(api, tenant, other_admin)
    other_key = await create_key(api, tenant, other_admin)

    await api.http.delete(f"/v1/tenants/{tenant}/members/{admin_email}", headers=owner)

    response = await api.http.get(f"/v1/tenants/{tenant}", headers={"Authorization": f"Bearer {other_key['key']}"})
    assert response.status_code == 200
    accepted = await api.http.post("/v1/invitations/accept", json={"token": other_token, "password": PASSWORD})
    assert accepted.status_code == 200


async def test_demotion_revokes_invitations_and_keys(api):
    tenant, owner = await api.owner()
    admin_email, admin = await join(api, tenant, owner, "admin")
    _, pending_token = await invite(api, tenant, admin)
    admin_key = await create_key(api, tenant, admin, role="member")

    demoted = await api.http.patch(f"/v1/tenants/{tenant}/members/{admin_email}", json={"role": "member"}, headers=owner)

    assert demoted.status_code == 200
    assert demoted.json() == {"email": admin_email, "role": "member"}
    with_key = await api.http.get(f"/v1/tenants/{tenant}", headers={"Authorization": f"Bearer {admin_key['key']}"})
    assert with_key.status_code == 401
    accepted = await api.http.post("/v1/invitations/accept", json={"token": pending_token, "password": PASSWORD})
    assert accepted.status_code == 422
    as_member = await api.http.post(f"/v1/tenants/{tenant}/api-keys", json={"name": "x", "role": "member"}, headers=admin)
    assert as_member.status_code == 403
    assert "member.role_changed" in await audit_actions(api, tenant)


async def test_promotion_keeps_keys(api):
    tenant, owner = await api.owner()
    member_email, _ = await join(api, tenant, owner, "member")

    promoted = await api.http.patch(f"/v1/tenants/{tenant}/members/{member_email}", json={"role": "admin"}, headers=owner)

    assert promoted.status_code == 200
    members = (await api.http.get(f"/v1/tenants/{tenant}/members", headers=owner)).json()
    assert {"email": member_email, "role": "admin"} in members


async def test_owner_role_cannot_change(api):
    tenant, owner = await api.owner()
    _, admin = await join(api, tenant, owner, "admin")
    owner_email = f"{tenant}@example.com"

    demote_owner = await api.http.patch(f"/v1/tenants/{tenant}/members/{owner_email}", json={"role": "member"}, headers=admin)
    make_owner = await api.http.patch(f"/v1/tenants/{tenant}/members/{owner_email}", json={"role": "owner"}, headers=owner)

    assert demote_owner.status_code == 403
    assert make_owner.status_code == 422
    assert make_owner.json()["error"]["field"].endswith("role")


async def test_member_cannot_change_roles(api):
    tenant, owner = await api.owner()
    _, member = await join(api, tenant, owner, "member")
    admin_email, _ = await join(api, tenant, owner, "admin")

    response = await api.http.patch(f"/v1/tenants/{tenant}/members/{admin_email}", json={"role": "member"}, headers=member)

    assert response.status_code == 403


async def test_list_invitations_shows_pending(api):
    tenant, owner = await api.owner()
    admin_email, admin = await join(api, tenant, owner, "admin")
    pending_email, _ = await invite(api, tenant, admin, role="member")

    response = await api.http.get(f"/v1/tenants/{tenant}/invitations", headers=owner)

    assert response.status_code == 200
    invitations = response.json()
    assert [item["email"] for item in invitations] == [pending_email]
    assert invitations[0]["invitedBy"] == admin_email
    assert invitations[0]["role"] == "member"
    assert invitations[0]["token"] is None


async def test_list_invitations_needs_manage_members(api):
    tenant, owner = await api.owner()
    _, member = await join(api, tenant, owner, "member")
    other_tenant, outsider = await api.owner()

    as_member = await api.http.get(f"/v1/tenants/{tenant}/invitations", headers=member)
    as_outsider = await api.http.get(f"/v1/tenants/{tenant}/invitations", headers=outsider)

    assert as_member.status_code == 403
    assert as_outsider.status_code == 404


async def test_revoke_invitation(api):
    tenant, owner = await api.owner()
    _, token = await invite(api, tenant, owner)
    invitation_id = (await api.http.get(f"/v1/tenants/{tenant}/invitations", headers=owner)).json()[0]["id"]

    revoked = await api.http.delete(f"/v1/tenants/{tenant}/invitations/{invitation_id}", headers=owner)
    again = await api.http.delete(f"/v1/tenants/{tenant}/invitations/{invitation_id}", headers=owner)

    assert revoked.status_code == 204
    assert again.status_code == 404
    assert again.json()["error"]["field"] == "invitation_id"
    accepted = await api.http.post("/v1/invitations/accept", json={"token": token, "password": PASSWORD})
    assert accepted.status_code == 422
    assert (await api.http.get(f"/v1/tenants/{tenant}/invitations", headers=owner)).json() == []
    assert "invitation.revoked" in await audit_actions(api, tenant)


async def test_revoke_other_tenants_invitation(api):
    tenant, owner = await api.owner()
    other_tenant, other_owner = await api.owner()
    _, token = await invite(api, other_tenant, other_owner)
    invitation_id = (await api.http.get(f"/v1/tenants/{other_tenant}/invitations", headers=other_owner)).json()[0]["id"]

    response = await api.http.delete(f"/v1/tenants/{tenant}/invitations/{invitation_id}", headers=owner)

    assert response.status_code == 404
    accepted = await api.http.post("/v1/invitations/accept", json={"token": token, "password": PASSWORD})
    assert accepted.status_code == 200


async def test_accepted_invitation_cannot_be_revoked(api):
    tenant, owner = await api.owner()
    _, token = await invite(api, tenant, owner)
    invitation_id = (await api.http.get(f"/v1/tenants/{tenant}/invitations", headers=owner)).json()[0]["id"]
    await api.http.post("/v1/invitations/accept", json={"token": token, "password": PASSWORD})

    response = await api.http.delete(f"/v1/tenants/{tenant}/invitations/{invitation_id}", headers=owner)

    assert response.status_code == 404


async def test_key_list_shows_creator(api):
    tenant, owner = await api.owner()
    admin_email, admin = await join(api, tenant, owner, "admin")
    admin_key = await create_key(api, tenant, admin)
    created_with_key = await create_key(api, tenant, {"Authorization": f"Bearer {admin_key['key']}"}, role="member")

    keys = (await api.http.get(f"/v1/tenants/{tenant}/api-keys", headers=owner)).json()

    creators = {key["id"]: key["createdBy"] for key in keys}
    assert creators[admin_key["id"]] == admin_email
    # A key made with a key records the account behind the creating key.
    assert creators[created_with_key["id"]] == admin_email
    assert admin_key["createdBy"] == admin_email
    assert created_with_key["createdBy"] == admin_email


async def test_manual_key_revocation_is_audited(api):
    tenant, owner = await api.owner()
    key = await create_key(api, tenant, owner)

    response = await api.http.delete(f"/v1/tenants/{tenant}/api-keys/{key['id']}", headers=owner)

    assert response.status_code == 204
    assert "api_key.revoked" in await audit_actions(api, tenant)


async def test_keys_created_during_removal_are_revoked(api):
    tenant, owner = await api.owner()
    admin_email, admin = await join(api, tenant, owner, "admin")

    results = await asyncio.gather(
        *(api.http.post(f"/v1/tenants/{tenant}/api-keys", json={"name": f"k{index}", "role": "admin"}, headers=admin)
          for index in range(8)),
        api.http.delete(f"/v1/tenants/{tenant}/members/{admin_email}", headers=owner),
        *(api.http.post(f"/v1/tenants/{tenant}/api-keys", json={"name": f"l{index}", "role": "admin"}, headers=admin)
          for index in range(8)),
    )

    assert results[8].status_code == 204
    for response in results[:8] + results[9:]:
        assert response.status_code in (201, 404), response.text
    keys = (await api.http.get(f"/v1/tenants/{tenant}/api-keys", headers=owner)).json()
    assert [key["name"] for key in keys if key["createdBy"] == admin_email and not key["revoked"]] == []


async def test_removal_waits_for_key_creation(api):
    tenant, owner = await api.owner()
    admin_email, admin = await join(api, tenant, owner, "admin")
    async with api.context.sessions() as session:
        admin_id = await session.scalar(select(Account.id).where(Account.email == admin_email))
        caller = Caller(kind="account", account_id=admin_id, email=admin_email)
        # The transaction of a key creation that passed its permission check just before the removal.
        await lock_caller_membership(session, caller, tenant)
        removal = asyncio.ensure_future(api.http.delete(f"/v1/tenants/{tenant}/members/{admin_email}", headers=owner))
        await asyncio.sleep(0.3)
        assert not removal.done()
        session.add(ApiKey(id=str(uuid.uuid4()), tenant=tenant, name="late", role="admin",
                           secret_hash=token_digest(unique_name()), created_by=admin_id))
        await session.commit()

    assert (await asyncio.wait_for(removal, 10)).status_code == 204
    keys = (await api.http.get(f"/v1/tenants/{tenant}/api-keys", headers=owner)).json()
    assert [(key["name"], key["revoked"]) for key in keys] == [("late", True)]
