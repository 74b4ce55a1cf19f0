"""Validation errors name a secret field and its rule but never its value."""

from __future__ import annotations

import pytest

from .conftest import unique_name
from .test_pages import form_token

pytestmark = pytest.mark.asyncio(loop_scope="session")

SHORT_SECRET = "hunter2x"


async def test_signup_error_hides_password(api):
    response, _, _ = await api.signup(password=SHORT_SECRET)

    assert response.status_code == 422
    assert response.json()["error"]["field"] == "password"
    assert "at least 10 characters" in response.json()["error"]["message"]
    assert SHORT_SECRET not in response.text


async def test_change_password_error_hides_new_password(api):
    _, owner = await api.owner()

    response = await api.http.post(
        "/v1/auth/change-password", data={"current_password": "correct horse battery", "new_password": SHORT_SECRET},
        headers=owner,
    )

    assert response.status_code == 422
    assert "new_password" in response.json()["error"]["message"]
    assert SHORT_SECRET not in response.text


async def test_invitation_error_hides_password(api):
    response = await api.http.post("/v1/invitations/accept", json={"token": "unknown", "password": SHORT_SECRET})

    assert response.status_code == 422
    assert SHORT_SECRET not in response.text


async def test_signup_page_error_hides_password(api):
    api.http.cookies.clear()
    page = await api.http.get("/signup")
    tenant = unique_name()

    response = await api.http.post("/signup", data={
        "csrf": form_token(page.text), "tenant": tenant, "displayName": "X", "email": f"{tenant}@example.com",
        "password": SHORT_SECRET, "plan": "free",
    })
    api.http.cookies.clear()

    assert response.status_code == 422
    assert "at least 10 characters" in response.text
    assert SHORT_SECRET not in response.text
