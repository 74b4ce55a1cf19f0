"""The suspension page that the control API serves for the hosts of suspended tenants."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from livery.models.tenant import TenantStatus
from livery.store.base import CLI_FIELD_MANAGER
from livery_control_api.billing.provider import NoBilling
from livery_control_api.suspension import DEFAULT_PRIMARY_COLOUR, SuspendedTenant, render_page

from .conftest import BASE_DOMAIN, ApiClient, api_settings, running_api, unique_name

session_loop = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
async def page_api(control_database, local_store) -> AsyncIterator[ApiClient]:
    """The control API reading suspended hosts on every request, so a test sees its own writes at once."""
    settings = api_settings(control_database, suspension_cache_seconds=0)
    async with running_api(settings, local_store, NoBilling()) as client:
        yield client


async def add_tenant(store, *, suspended: bool, phase: str, branding: dict | None = None) -> tuple[str, str]:
    """Create a tenant with a status as the reconciler writes it; return its name and host."""
    name = unique_name("page")
    host = f"{name}.{BASE_DOMAIN}"
    spec = {"displayName": f"{name} Inc", "plan": "free", "suspended": suspended}
    if branding is not None:
        spec["branding"] = branding
    await store.apply_tenant(name, spec, CLI_FIELD_MANAGER)
    await store.update_tenant_status(name, TenantStatus(phase=phase, hosts=[host]))
    return name, host


@session_loop
async def test_suspended_host_gets_branded_page(page_api, local_store):
    branding = {"productName": "Acme Books", "primaryColor": "#112233", "accentColor": "#aabbcc"}
    _, host = await add_tenant(local_store, suspended=True, phase="Suspended", branding=branding)

    response = await page_api.http.get("/", headers={"Host": f"{host}:443"})

    assert response.status_code == 503
    assert response.headers["retry-after"] == "3600"
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert "<title>Acme Books is suspended</title>" in response.text
    assert "background:#112233" in response.text
    assert "border-bottom:4px solid #aabbcc" in response.text


@session_loop
async def test_suspended_host_gets_page_on_every_path(page_api, local_store):
    _, host = await add_tenant(local_store, suspended=True, phase="Suspended")

    response = await page_api.http.post("/v1/signup", headers={"Host": host}, json={})

    assert response.status_code == 503
    assert "is suspended" in response.text


@session_loop
async def test_suspension_page_shows_no_other_tenant_data(page_api, local_store):
    name, host = await add_tenant(local_store, suspended=True, phase="Suspended")

    response = await page_api.http.get("/", headers={"Host": host})

    assert response.status_code == 503
    assert f"{name} Inc is suspended" in response.text
    assert f"{name}@" not in response.text
    assert "free" not in response.text


@session_loop
async def test_resumed_tenant_still_routed_gets_page(page_api, local_store):
    _, host = await add_tenant(local_store, suspended=False, phase="Suspended")

    response = await page_api.http.get("/", headers={"Host": host})

    assert response.status_code == 503


@session_loop
async def test_running_tenant_host_gets_control_api(page_api, local_store):
    _, host = await add_tenant(local_store, suspended=False, phase="Ready")

    response = await page_api.http.get("/v1/no-such-path", headers={"Host": host})

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert "error" in response.json()


@session_loop
async def test_unknown_host_gets_control_api(page_api):
    response = await page_api.http.get("/v1/no-such-path", headers={"Host": f"nobody.{BASE_DOMAIN}"})

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert "error" in response.json()


@session_loop
async def test_suspension_page_escapes_product_name(page_api, local_store):
    branding = {"productName": '<script>alert("x")</script>'}
    _, host = await add_tenant(local_store, suspended=True, phase="Suspended", branding=branding)

    response = await page_api.http.get("/", headers={"Host": host})

    assert response.status_code == 503
    assert "<script>" not in response.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in response.text


@pytest.mark.parametrize("colour", ["red", "#12345", "#112233;}</style><script>", "#11223344", None])
def test_suspension_page_ignores_invalid_colours(colour):
    tenant = SuspendedTenant(product_name="Acme", primary_color=colour, accent_color=colour)

    page = render_page(tenant)

    assert f"background:{DEFAULT_PRIMARY_COLOUR};" in page
    assert "border-bottom" not in page
    assert "<script>" not in page
