"""Users: owner login links, password sign-in, invitations within the plan limit, roles."""

from __future__ import annotations

import re
import time
import uuid

import pytest

from .conftest import csrf_token_of

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_login_link_works_once(tenant_pair) -> None:
    acme, _ = tenant_pair
    token = acme.login_token()

    async with acme.anonymous_client() as browser:
        first = await browser.get("/auth/link", params={"token": token})
        signed_in = await browser.get("/api/v1/users")
    async with acme.anonymous_client() as other:
        second = await other.get("/auth/link", params={"token": token})

    assert first.status_code == 303
    assert first.headers["location"] == "/"
    assert signed_in.status_code == 200
    assert second.status_code == 400
    assert "already used" in second.text


async def test_login_link_for_someone_else_is_rejected(tenant_pair) -> None:
    acme, _ = tenant_pair

    async with acme.anonymous_client() as browser:
        response = await browser.get("/auth/link", params={"token": acme.login_token("intruder@acme.example")})

    assert response.status_code == 400


async def test_expired_login_link_is_rejected(tenant_pair) -> None:
    acme, _ = tenant_pair
    past = int(time.time()) - 1000
    token = acme.login_token(iat=past, exp=past + 300)

    async with acme.anonymous_client() as browser:
        response = await browser.get("/auth/link", params={"token": token})

    assert response.status_code == 400
    assert "expired" in response.text


async def test_invitation_past_user_limit_names_the_limit(tenant_pair) -> None:
    acme, _ = tenant_pair
    users = await acme.client.get("/api/v1/users", headers=acme.api_headers())
    limit = users.json()["limit"]
    statuses = []
    last = None
    for _ in range(limit + 1):
        last = await acme.client.post(
            "/api/v1/users/invitations", json={"email": f"seat-{uuid.uuid4().hex[:8]}@acme.example"},
            headers=acme.api_headers(),
        )
        statuses.append(last.status_code)

    assert statuses[-1] == 403
    assert last.json()["error"]["code"] == "user_limit_reached"
    assert f"allows {limit} users" in last.json()["error"]["message"]


async def test_invalid_invitation_email_gets_422(tenant_pair) -> None:
    acme, _ = tenant_pair

    response = await acme.client.post("/api/v1/users/invitations", json={"email": "not-an-email"},
                                      headers=acme.api_headers())

    assert response.status_code == 422
    assert response.json()["error"]["field"] == "email"


async def test_invited_member_signs_in_with_password(tenant_pair) -> None:
    _, globex = tenant_pair
    email = f"member-{uuid.uuid4().hex[:8]}@globex.example"
    invitation = await globex.client.post("/api/v1/users/invitations", json={"email": email, "role": "member"},
                                          headers=globex.api_headers())
    assert invitation.status_code == 201, invitation.text
    accept_path = re.sub(r"^https?://[^/]+", "", invitation.json()["acceptUrl"])

    async with globex.anonymous_client() as browser:
        csrf = await csrf_token_of(browser, accept_path)
        accepted = await browser.post(accept_path, data={"csrf_token": csrf, "name": "Mia", "password": "long enough pw"})
    async with globex.anonymous_client() as browser:
        csrf = await csrf_token_of(browser)
        signed_in = await browser.post("/login", data={"csrf_token": csrf, "email": email, "password": "long enough pw"})
        forbidden = await browser.post("/api/v1/users/invitations", json={"email": "x@globex.example"},
                                       headers={"X-CSRF-Token": await csrf_token_of(browser, "/products")})

    assert accepted.status_code == 303
    assert signed_in.status_code == 303
    assert forbidden.status_code == 403
    assert "users:write" in forbidden.json()["error"]["message"]


async def test_wrong_password_gets_401_page(tenant_pair) -> None:
    acme, _ = tenant_pair

    async with acme.anonymous_client() as browser:
        csrf = await csrf_token_of(browser)
        response = await browser.post("/login", data={"csrf_token": csrf, "email": acme.owner_email, "password": "nope"})

    assert response.status_code == 401
    assert "Email or password is wrong." in response.text


async def test_login_form_without_csrf_gets_403(tenant_pair) -> None:
    acme, _ = tenant_pair

    async with acme.anonymous_client() as browser:
        response = await browser.post("/login", data={"email": acme.owner_email, "password": "whatever"})

    assert response.status_code == 403


async def test_login_redirect_stays_on_site(tenant_pair) -> None:
    acme, _ = tenant_pair

    async with acme.anonymous_client() as browser:
        response = await browser.get("/login", params={"next": "//evil.example/steal"})

    assert response.status_code == 200
    assert 'name="next" value="/"' in response.text


async def test_owner_cannot_be_deleted(tenant_pair) -> None:
    acme, _ = tenant_pair
    users = await acme.client.get("/api/v1/users", headers=acme.api_headers())
    owner = next(user for user in users.json()["items"] if user["role"] == "owner")

    response = await acme.client.delete(f"/api/v1/users/{owner['id']}", headers=acme.api_headers())

    assert response.status_code == 409


async def test_api_key_is_hashed_at_rest(tenant_pair) -> None:
    acme, _ = tenant_pair
    from sqlalchemy import text

    async with acme.app.state.tenant_database.session() as session:
        stored = (await session.execute(text("SELECT key_hash, prefix FROM api_keys"))).all()

    assert stored
    assert all(acme.api_key not in row.key_hash for row in stored)
    assert all(acme.api_key.split("_")[2] not in row.key_hash for row in stored)


async def test_repeated_wrong_passwords_get_429(tenant_pair) -> None:
    _, globex = tenant_pair
    email = f"target-{uuid.uuid4().hex[:6]}@globex.example"
    statuses = []

    async with globex.anonymous_client() as browser:
        csrf = await csrf_token_of(browser)
        for _ in range(11):
            response = await browser.post("/login", data={"csrf_token": csrf, "email": email, "password": "guess"})
            statuses.append(response.status_code)

    assert statuses[:10] == [401] * 10
    assert statuses[10] == 429
    assert int(response.headers["retry-after"]) >= 1


async def test_admin_cannot_deactivate_owner(tenant_pair) -> None:
    _, globex = tenant_pair
    email = f"admin-{uuid.uuid4().hex[:8]}@globex.example"
    invitation = await globex.client.post("/api/v1/users/invitations", json={"email": email, "role": "admin"},
                                          headers=globex.api_headers())
    assert invitation.status_code == 201, invitation.text
    accept_path = re.sub(r"^https?://[^/]+", "", invitation.json()["acceptUrl"])
    users = await globex.client.get("/api/v1/users", headers=globex.api_headers())
    owner = next(user for user in users.json()["items"] if user["role"] == "owner")

    async with globex.anonymous_client() as browser:
        csrf = await csrf_token_of(browser, accept_path)
        await browser.post(accept_path, data={"csrf_token": csrf, "password": "admin password 1"})
        csrf = await csrf_token_of(browser, "/products")
        response = await browser.patch(f"/api/v1/users/{owner['id']}", json={"isActive": False},
                                       headers={"X-CSRF-Token": csrf})

    assert response.status_code == 403
    assert "owner" in response.json()["error"]["message"]


async def test_non_ascii_invitation_email_gets_422(tenant_pair) -> None:
    acme, _ = tenant_pair

    response = await acme.client.post("/api/v1/users/invitations", json={"email": "¼n@Ⱦ.example"},
                                      headers=acme.api_headers())

    assert response.status_code == 422
    assert response.json()["error"]["field"] == "email"


async def test_patch_user_with_null_role_gets_422(tenant_pair) -> None:
    acme, _ = tenant_pair
    users = await acme.client.get("/api/v1/users", headers=acme.api_headers())
    owner = next(user for user in users.json()["items"] if user["role"] == "owner")

    response = await acme.client.patch(f"/api/v1/users/{owner['id']}", json={"role": None}, headers=acme.api_headers())

    assert response.status_code == 422
    assert response.json()["error"]["field"] == "role"

