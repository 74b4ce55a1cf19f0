"""Keys and invitations created with an API key belong to the account behind that key, and go with it."""

from __future__ import annotations

import asyncio

import pytest

from .conftest import unique_name
from .test_team_revocation import PASSWORD, audit_actions, create_key, invitation_token, join

pytestmark = pytest.mark.asyncio(loop_scope="session")


def bearer(key: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {key['key']}"}


async def invite_with(api, tenant: str, headers: dict[str, str], role: str = "admin") -> tuple[dict, str]:
    """Invite a new email and return the invitation as the API returned it, with its token."""
    email = f"{unique_name()}@example.net"
    response = await api.http.post(f"/v1/tenants/{tenant}/members", json={"email": email, "role": role}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json(), invitation_token(api, email)


async def key_works(api, tenant: str, key: dict) -> int:
    response = await api.http.get(f"/v1/tenants/{tenant}/members", headers=bearer(key))
    return response.status_code


async def test_key_chain_records_member(api):
    tenant, owner = await api.owner()
    admin_email, admin = await join(api, tenant, owner, "admin")
    first = await create_key(api, tenant, admin)
    second = await create_key(api, tenant, bearer(first))
    third = await create_key(api, tenant, bearer(second), role="member")
    invitation, _ = await invite_with(api, tenant, bearer(second))

    keys = (await api.http.get(f"/v1/tenants/{tenant}/api-keys", headers=owner)).json()
    invitations = (await api.http.get(f"/v1/tenants/{tenant}/invitations", headers=owner)).json()

    assert second["createdBy"] == admin_email
    assert third["createdBy"] == admin_email
    assert invitation["invitedBy"] == admin_email
    creators = {key["id"]: key["createdBy"] for key in keys}
    assert creators == {first["id"]: admin_email, second["id"]: admin_email, third["id"]: admin_email}
    assert [(item["id"], item["invitedBy"]) for item in invitations] == [(invitation["id"], admin_email)]


async def test_removal_revokes_key_made_grants(api):
    tenant, owner = await api.owner()
    admin_email, admin = await join(api, tenant, owner, "admin")
    first = await create_key(api, tenant, admin)
    second = await create_key(api, tenant, bearer(first))
    third = await create_key(api, tenant, bearer(second))
    _, pending_token = await invite_with(api, tenant, bearer(third))
    owner_key = await create_key(api, tenant, owner)

    removed = await api.http.delete(f"/v1/tenants/{tenant}/members/{admin_email}", headers=owner)

    assert removed.status_code == 204
    assert await key_works(api, tenant, first) == 401
    assert await key_works(api, tenant, second) == 401
    assert await key_works(api, tenant, third) == 401
    branding = await api.http.patch(f"/v1/tenants/{tenant}/branding", json={"productName": "pwned"}, headers=bearer(second))
    assert branding.status_code == 401
    accepted = await api.http.post("/v1/invitations/accept", json={"token": pending_token, "password": PASSWORD})
    assert accepted.status_code == 422
    assert await key_works(api, tenant, owner_key) == 200
    keys = (await api.http.get(f"/v1/tenants/{tenant}/api-keys", headers=owner)).json()
    assert {key["id"]: key["revoked"] for key in keys} == {
        first["id"]: True, second["id"]: True, third["id"]: True, owner_key["id"]: False,
    }
    actions = await audit_actions(api, tenant)
    assert actions.count("api_key.revoked") == 3
    assert actions.count("invitation.revoked") == 1


async def test_demotion_revokes_key_made_grants(api):
    tenant, owner = await api.owner()
    admin_email, admin = await join(api, tenant, owner, "admin")
    first = await create_key(api, tenant, admin)
    second = await create_key(api, tenant, bearer(first), role="member")
    _, pending_token = await invite_with(api, tenant, bearer(first), role="member")

    demoted = await api.http.patch(f"/v1/tenants/{tenant}/members/{admin_email}", json={"role": "member"}, headers=owner)

    assert demoted.status_code == 200
    assert await key_works(api, tenant, first) == 401
    assert await key_works(api, tenant, second) == 401
    accepted = await api.http.post("/v1/invitations/accept", json={"token": pending_token, "password": PASSWORD})
    assert accepted.status_code == 422


async def test_admin_token_keys_have_no_creator(api):
    tenant, owner = await api.owner()
    admin_email, admin = await join(api, tenant, owner, "admin")
    platform_key = (await api.admin("POST", f"/v1/tenants/{tenant}/api-keys", json={"name": "platform", "role": "admin"})).json()
    made_with_it = await create_key(api, tenant, bearer(platform_key))
    invitation, pending_token = await invite_with(api, tenant, bearer(platform_key))

    removed = await api.http.delete(f"/v1/tenants/{tenant}/members/{admin_email}", headers=owner)

    assert removed.status_code == 204
    assert platform_key["createdBy"] is None
    assert made_with_it["createdBy"] is None
    assert invitation["invitedBy"] is None
    assert await key_works(api, tenant, platform_key) == 200
    assert await key_works(api, tenant, made_with_it) == 200
    accepted = await api.http.post("/v1/invitations/accept", json={"token": pending_token, "password": PASSWORD})
    assert accepted.status_code == 200


async def test_key_made_keys_during_removal_are_revoked(api):
    tenant, owner = await api.owner()
    admin_email, admin = await join(api, tenant, owner, "admin")
    first = await create_key(api, tenant, admin)

    def create(index: int):
        return api.http.post(f"/v1/tenants/{tenant}/api-keys", json={"name": f"k{index}", "role": "admin"}, headers=bearer(first))

    def send_invitation(index: int):
        email = f"race{index}-{unique_name()}@example.net"
        return api.http.post(f"/v1/tenants/{tenant}/members", json={"email": email, "role": "admin"}, headers=bearer(first))

    results = await asyncio.gather(
        *(create(index) for index in range(6)),
        *(send_invitation(index) for index in range(4)),
        api.http.delete(f"/v1/tenants/{tenant}/members/{admin_email}", headers=owner),
        *(create(index) for index in range(6, 12)),
        *(send_invitation(index) for index in range(4, 8)),
    )

    assert results[10].status_code == 204
    for response in results[:10] + results[11:]:
        assert response.status_code in (201, 401), response.text
    keys = (await api.http.get(f"/v1/tenants/{tenant}/api-keys", headers=owner)).json()
    assert [key["name"] for key in keys if not key["revoked"]] == []
    assert (await api.http.get(f"/v1/tenants/{tenant}/invitations", headers=owner)).json() == []
