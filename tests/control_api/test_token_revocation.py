"""A password change ends older access tokens and console sessions; each refresh token works once."""

from __future__ import annotations

import pytest

from livery_control_api.dependencies import SESSION_COOKIE

from .conftest import unique_name
from .test_pages import form_token

pytestmark = pytest.mark.asyncio(loop_scope="session")

PASSWORD = "correct horse battery"


async def password_tokens(api, email: str) -> dict:
    response = await api.http.post("/v1/auth/token", data={"username": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()


async def change_password(api, access_token: str) -> None:
    response = await api.http.post(
        "/v1/auth/change-password", data={"current_password": PASSWORD, "new_password": "another long password"},
        headers={"Authorization": f"Bearer {access_token}"},
    )
    assert response.status_code == 204, response.text


async def test_password_change_ends_access_token(api):
    _, tenant, email = await api.signup()
    tokens = await password_tokens(api, email)
    await change_password(api, (await password_tokens(api, email))["access_token"])

    response = await api.http.get(f"/v1/tenants/{tenant}", headers={"Authorization": f"Bearer {tokens['access_token']}"})

    assert response.status_code == 401


async def test_password_change_ends_console_session(api):
    api.http.cookies.clear()
    page = await api.http.get("/signup")
    tenant = unique_name()
    signup = await api.http.post("/signup", data={
        "csrf": form_token(page.text), "tenant": tenant, "displayName": "Session Corp",
        "email": f"{tenant}@example.com", "password": PASSWORD, "plan": "free",
    })
    assert signup.status_code == 303, signup.text
    cookie = api.http.cookies.get(SESSION_COOKIE)
    api.http.cookies.clear()
    await change_password(api, (await password_tokens(api, f"{tenant}@example.com"))["access_token"])

    response = await api.http.get(f"/console/{tenant}", cookies={SESSION_COOKIE: cookie})

    assert response.status_code == 303
    assert response.headers["location"].startswith("/signin")


async def test_revoked_session_header_shows_signed_out(api):
    api.http.cookies.clear()
    page = await api.http.get("/signup")
    tenant = unique_name()
    email = f"{tenant}@example.com"
    signup = await api.http.post("/signup", data={
        "csrf": form_token(page.text), "tenant": tenant, "displayName": "Header Corp",
        "email": email, "password": PASSWORD, "plan": "free",
    })
    assert signup.status_code == 303, signup.text
    cookie = api.http.cookies.get(SESSION_COOKIE)
    api.http.cookies.clear()
    console = await api.http.get(f"/console/{tenant}", cookies={SESSION_COOKIE: cookie})
    await change_password(api, (await password_tokens(api, email))["access_token"])

    signin = await api.http.get("/signin", cookies={SESSION_COOKIE: cookie})

    assert console.status_code == 200
    assert email in console.text
    assert signin.status_code == 200
    assert email not in signin.text


async def test_used_refresh_token_is_rejected(api):
    _, _, email = await api.signup()
    tokens = await password_tokens(api, email)
    grant = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    first = await api.http.post("/v1/auth/token", data=grant)

    second = await api.http.post("/v1/auth/token", data=grant)

    assert first.status_code == 200
    assert first.json()["refresh_token"] != tokens["refresh_token"]
    assert second.status_code == 401
    assert second.json()["error"]["code"] == "invalid_grant"


async def test_refresh_token_reuse_ends_rotated_tokens(api):
    _, _, email = await api.signup()
    tokens = await password_tokens(api, email)
    grant = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    rotated = (await api.http.post("/v1/auth/token", data=grant)).json()
    await api.http.post("/v1/auth/token", data=grant)

    response = await api.http.post(
        "/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": rotated["refresh_token"]}
    )

    assert response.status_code == 401
