"""Server-rendered pages: signup, sign-in and console forms, with CSRF checks."""

from __future__ import annotations

import re

import pytest

from .conftest import unique_name

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(autouse=True)
def forget_cookies(api):
    """The session's client is shared, so the session cookie of one test must not reach the next."""
    yield
    api.http.cookies.clear()


def form_token(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "page has no CSRF field"
    return match.group(1)


async def signed_up_console(api) -> tuple[str, str]:
    api.http.cookies.clear()
    page = await api.http.get("/signup")
    tenant = unique_name()
    response = await api.http.post("/signup", data={
        "csrf": form_token(page.text), "tenant": tenant, "displayName": "Page Corp",
        "email": f"{tenant}@example.com", "password": "correct horse battery", "plan": "free",
    })
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/console/{tenant}"
    console = await api.http.get(f"/console/{tenant}")
    assert console.status_code == 200
    return tenant, form_token(console.text)


async def test_signup_page_lands_in_console(api):
    tenant, _ = await signed_up_console(api)

    console = await api.http.get(f"/console/{tenant}")

    assert "Page Corp" in console.text
    assert "Open my app" in console.text


async def test_signup_page_shows_field_error(api):
    api.http.cookies.clear()
    page = await api.http.get("/signup")

    response = await api.http.post("/signup", data={
        "csrf": form_token(page.text), "tenant": "admin", "displayName": "X", "email": "x@example.com",
        "password": "correct horse battery", "plan": "free",
    })

    assert response.status_code == 422
    assert "reserved for the platform" in response.text
    assert 'role="alert"' in response.text


async def test_signup_form_without_csrf_is_rejected(api):
    api.http.cookies.clear()
    await api.http.get("/signup")
    tenant = unique_name()

    response = await api.http.post("/signup", data={
        "tenant": tenant, "displayName": "X", "email": f"{tenant}@example.com", "password": "correct horse battery",
    })

    assert response.status_code == 400
    check = await api.http.get("/v1/signup/check-name", params={"name": tenant})
    assert check.json()["available"] is True


async def test_console_branding_form_saves(api):
    tenant, csrf = await signed_up_console(api)

    response = await api.http.post(f"/console/{tenant}/branding", data={"csrf": csrf, "primaryColor": "#aa0000", "productName": "Red"})

    assert response.status_code == 303
    assert (await api.context.store.get_tenant(tenant)).spec.branding.primary_color == "#aa0000"


async def test_console_branding_form_escapes_rejected_value(api):
    tenant, csrf = await signed_up_console(api)

    response = await api.http.post(f"/console/{tenant}/branding", data={"csrf": csrf, "primaryColor": "<script>x</script>"})

    assert response.status_code == 422
    assert "<script>x</script>" not in response.text
    assert "&lt;script&gt;" in response.text


async def test_planted_form_cookie_rejected_in_session(api):
    tenant, _ = await signed_up_console(api)
    api.http.cookies.set("livery_form", "planted-token")

    response = await api.http.post(f"/console/{tenant}/branding", data={"csrf": "planted-token", "productName": "Forged"})

    assert response.status_code != 303
    branding = (await api.context.store.get_tenant(tenant)).spec.branding
    assert branding is None or branding.product_name != "Forged"


async def test_cookie_without_csrf_header_cannot_call_api(api):
    tenant, _ = await signed_up_console(api)

    response = await api.http.patch(f"/v1/tenants/{tenant}/branding", json={"primaryColor": "#000000"})

    assert response.status_code == 401


async def test_signin_page_starts_session(api):
    tenant, _ = await signed_up_console(api)
    api.http.cookies.clear()
    page = await api.http.get("/signin")

    response = await api.http.post("/signin", data={
        "csrf": form_token(page.text), "email": f"{tenant}@example.com", "password": "correct horse battery",
    })

    assert response.status_code == 303
    assert "livery_session" in response.cookies


async def test_invitation_page_joins_team(api):
    owner_tenant, csrf = await signed_up_console(api)
    email = f"{unique_name()}@example.com"
    invited = await api.http.post(f"/console/{owner_tenant}/members", data={"csrf": csrf, "email": email, "role": "member"})
    assert invited.status_code == 303
    link = api.mailer.last_link(email)
    api.http.cookies.clear()
    page = await api.http.get(link.replace("http://127.0.0.1:8000", ""))

    response = await api.http.post("/invitations/accept", data={
        "csrf": form_token(page.text), "token": link.split("token=", 1)[1], "password": "member password 1",
    })

    assert response.status_code == 303
    console = await api.http.get(f"/console/{owner_tenant}")
    assert console.status_code == 200
    assert "you are member" in console.text


async def test_pages_forbid_framing_and_inline_scripts(api):
    response = await api.http.get("/signup")

    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "script-src 'self'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
