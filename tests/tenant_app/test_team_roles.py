"""Who may manage whose account: owner, admin and member, and what a password reset ends."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from livery.database import DatabaseProvisioner

from .conftest import TenantUnderTest, csrf_token_of, start_tenant, stop_tenant

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def team(
    provisioner: DatabaseProvisioner, tmp_path_factory: pytest.TempPathFactory, tenant_storage_dir: Path
) -> AsyncIterator[TenantUnderTest]:
    """A tenant with room for many users, so these tests never run into the plan's user limit."""
    tenant = await start_tenant(
        provisioner, tmp_path_factory.mktemp("team"), tenant_storage_dir, "team", "shared", limits={"users": 200}
    )
    yield tenant
    await stop_tenant(provisioner, tenant)


async def join_as(tenant, role: str, browser) -> str:
    """Invite a new account with `role`, accept it in `browser` and return its email."""
    email = f"{role}-{uuid.uuid4().hex[:8]}@{tenant.name}.example"
    invitation = await tenant.client.post("/api/v1/users/invitations", json={"email": email, "role": role},
                                          headers=tenant.api_headers())
    assert invitation.status_code == 201, invitation.text
    accept_path = re.sub(r"^https?://[^/]+", "", invitation.json()["acceptUrl"])
    csrf = await csrf_token_of(browser, accept_path)
    accepted = await browser.post(accept_path, data={"csrf_token": csrf, "password": f"{role} password 1"})
    assert accepted.status_code == 303, accepted.text
    return email


async def user_id_of(tenant, email: str) -> str:
    users = await tenant.client.get("/api/v1/users", headers=tenant.api_headers())
    return next(user["id"] for user in users.json()["items"] if user["email"] == email)


async def test_admin_cannot_issue_owner_reset_link(team) -> None:
    owner_id = await user_id_of(team, team.owner_email)

    async with team.anonymous_client() as browser:
        await join_as(team, "admin", browser)
        csrf = await csrf_token_of(browser, "/team")
        response = await browser.post(f"/team/{owner_id}/reset-link", data={"csrf_token": csrf})

    assert response.status_code == 403
    assert "only the owner" in response.text


async def test_admin_cannot_reset_or_delete_admin(team) -> None:
    async with team.anonymous_client() as other:
        other_email = await join_as(team, "admin", other)
    other_id = await user_id_of(team, other_email)

    async with team.anonymous_client() as browser:
        await join_as(team, "admin", browser)
        csrf = await csrf_token_of(browser, "/team")
        reset = await browser.post(f"/team/{other_id}/reset-link", data={"csrf_token": csrf})
        demote = await browser.patch(f"/api/v1/users/{other_id}", json={"role": "member"},
                                     headers={"X-CSRF-Token": csrf})
        delete = await browser.delete(f"/api/v1/users/{other_id}", headers={"X-CSRF-Token": csrf})

    assert reset.status_code == 403
    assert demote.status_code == 403
    assert delete.status_code == 403


async def test_admin_may_reset_member(team) -> None:
    async with team.anonymous_client() as member:
        member_email = await join_as(team, "member", member)
    member_id = await user_id_of(team, member_email)

    async with team.anonymous_client() as browser:
        await join_as(team, "admin", browser)
        csrf = await csrf_token_of(browser, "/team")
        response = await browser.post(f"/team/{member_id}/reset-link", data={"csrf_token": csrf})

    assert response.status_code == 200
    assert "/reset/" in response.text


async def test_password_reset_revokes_api_keys(team) -> None:
    async with team.anonymous_client() as member:
        member_email = await join_as(team, "member", member)
        csrf = await csrf_token_of(member, "/products")
        created = await member.post("/api/v1/api-keys", json={"name": "old"}, headers={"X-CSRF-Token": csrf})
        assert created.status_code == 201, created.text
        member_key = created.json()["key"]
    member_id = await user_id_of(team, member_email)
    reset_page = await team.client.post(f"/team/{member_id}/reset-link", data={"csrf_token": team.csrf_token})
    assert reset_page.status_code == 200, reset_page.text
    reset_path = re.search(r"https?://[^/]+(/reset/[^<\"\s]+)", reset_page.text).group(1)

    async with team.anonymous_client() as browser:
        csrf = await csrf_token_of(browser, reset_path)
        reset = await browser.post(reset_path, data={"csrf_token": csrf, "password": "a new password 1"})
    with_old_key = await team.client.get("/api/v1/products", headers={"Authorization": f"Bearer {member_key}"})

    assert reset.status_code == 303
    assert with_old_key.status_code == 401


async def test_promoted_account_loses_password_and_keys(
    provisioner: DatabaseProvisioner, tmp_path_factory: pytest.TempPathFactory, tenant_storage_dir: Path
) -> None:
    tenant = await start_tenant(
        provisioner, tmp_path_factory.mktemp("handover"), tenant_storage_dir, "handover", "shared"
    )
    try:
        previous_owner = tenant.owner_email
        async with tenant.anonymous_client() as squatter:
            new_owner = await join_as(tenant, "member", squatter)
            csrf = await csrf_token_of(squatter, "/products")
            created = await squatter.post("/api/v1/api-keys", json={"name": "kept"}, headers={"X-CSRF-Token": csrf})
            assert created.status_code == 201, created.text
            squatter_key = created.json()["key"]

            tenant.write_config(owner={"email": new_owner})
            tenant.app.state.config_watcher.expire()
            async with tenant.anonymous_client() as browser:
                link = await browser.get("/auth/link", params={"token": tenant.login_token(new_owner)})
                roles = {user["email"]: user["role"] for user in (await browser.get("/api/v1/users")).json()["items"]}
            old_session = await squatter.get("/api/v1/users")
            csrf = await csrf_token_of(squatter)
            password = await squatter.post(
                "/login", data={"csrf_token": csrf, "email": new_owner, "password": "member password 1"}
            )
        old_key = await tenant.client.get("/api/v1/users", headers={"Authorization": f"Bearer {squatter_key}"})
    finally:
        await stop_tenant(provisioner, tenant)

    assert link.status_code == 303
    assert roles[new_owner] == "owner"
    assert roles[previous_owner] == "admin"
    assert old_session.status_code == 401
    assert password.status_code == 401
    assert old_key.status_code == 401


async def invite(tenant, email: str):
    return await tenant.client.post("/api/v1/users/invitations", json={"email": email}, headers=tenant.api_headers())


async def test_reinvitation_replaces_pending_invitation(team) -> None:
    email = f"twice-{uuid.uuid4().hex[:8]}@example.com"
    first = await invite(team, email)
    second = await invite(team, email)
    listed = await team.client.get("/api/v1/users/invitations", headers=team.api_headers())
    first_link = re.sub(r"^https?://[^/]+", "", first.json()["acceptUrl"])
    async with team.anonymous_client() as browser:
        stale = await browser.get(first_link)

    assert first.status_code == 201
    assert second.status_code == 201
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json() if item["email"] == email] == [second.json()["id"]]
    assert stale.status_code == 404


async def test_revoked_invitation_frees_its_seat(team) -> None:
    users = await team.client.get("/api/v1/users", headers=team.api_headers())
    pending = await team.client.get("/api/v1/users/invitations", headers=team.api_headers())
    seats = users.json()["total"] + len(pending.json())
    team.write_config(limits={**team.document["limits"], "users": seats + 1})
    team.app.state.config_watcher.expire()
    try:
        kept = await invite(team, f"kept-{uuid.uuid4().hex[:8]}@example.com")
        refused = await invite(team, f"refused-{uuid.uuid4().hex[:8]}@example.com")
        revoked = await team.client.delete(f"/api/v1/users/invitations/{kept.json()['id']}", headers=team.api_headers())
        again = await team.client.delete(f"/api/v1/users/invitations/{kept.json()['id']}", headers=team.api_headers())
        admitted = await invite(team, f"admitted-{uuid.uuid4().hex[:8]}@example.com")
    finally:
        team.write_config(limits={**team.document["limits"], "users": 200})
        team.app.state.config_watcher.expire()

    assert kept.status_code == 201
    assert refused.status_code == 403
    assert revoked.status_code == 204
    assert again.status_code == 404
    assert admitted.status_code == 201


async def test_team_page_revokes_invitation(team) -> None:
    email = f"page-{uuid.uuid4().hex[:8]}@example.com"
    created = await invite(team, email)
    assert created.status_code == 201, created.text

    page = await team.client.get("/team")
    revoked = await team.client.post(f"/team/invitations/{created.json()['id']}/revoke",
                                     data={"csrf_token": team.csrf_token})
    listed = await team.client.get("/api/v1/users/invitations", headers=team.api_headers())

    assert page.status_code == 200
    assert email in page.text
    assert revoked.status_code == 303
    assert email not in [item["email"] for item in listed.json()]


async def test_member_cannot_list_invitations(team) -> None:
    async with team.anonymous_client() as member:
        await join_as(team, "member", member)
        response = await member.get("/api/v1/users/invitations")

    assert response.status_code == 403
    assert "users:write" in response.json()["error"]["message"]


async def test_admin_may_rename_self_but_not_promote(team) -> None:
    async with team.anonymous_client() as browser:
        email = await join_as(team, "admin", browser)
        admin_id = await user_id_of(team, email)
        csrf = await csrf_token_of(browser, "/team")
        renamed = await browser.patch(f"/api/v1/users/{admin_id}", json={"name": "Ada"}, headers={"X-CSRF-Token": csrf})
        promoted = await browser.patch(f"/api/v1/users/{admin_id}", json={"role": "owner"},
                                       headers={"X-CSRF-Token": csrf})

    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Ada"
    assert promoted.status_code == 403
