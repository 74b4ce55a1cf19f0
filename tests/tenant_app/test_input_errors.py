"""Bad input that reaches no schema: malformed JSON bodies and NUL characters."""

from __future__ import annotations

import pytest

from .conftest import csrf_token_of

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_malformed_json_names_body(tenant_pair) -> None:
    acme, _ = tenant_pair

    response = await acme.client.post(
        "/api/v1/products", content=b'{"name": "x",', headers={**acme.api_headers(), "content-type": "application/json"}
    )

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "body"
    assert error["message"].startswith("body: invalid JSON at character 13")


async def test_nul_in_api_query_names_parameter(tenant_pair) -> None:
    acme, _ = tenant_pair

    response = await acme.client.get("/api/v1/products", params={"q": "shoe\x00"}, headers=acme.api_headers())

    assert response.status_code == 422
    assert response.json()["error"]["field"] == "q"
    assert "NUL characters are not allowed" in response.json()["error"]["message"]


async def test_nul_in_storefront_query_gets_422_page(tenant_pair) -> None:
    acme, _ = tenant_pair

    async with acme.anonymous_client() as browser:
        response = await browser.get("/store", params={"q": "\x00"})

    assert response.status_code == 422
    assert "q: NUL characters are not allowed" in response.text


async def test_nul_in_login_email_names_field(tenant_pair) -> None:
    acme, _ = tenant_pair

    async with acme.anonymous_client() as browser:
        csrf = await csrf_token_of(browser)
        response = await browser.post("/login", data={"csrf_token": csrf, "email": "a\x00@b.example", "password": "x"})

    assert response.status_code == 422
    assert "email: NUL characters are not allowed" in response.text


async def test_nul_in_upload_content_type_names_field(tenant_pair) -> None:
    acme, _ = tenant_pair

    response = await acme.client.post(
        "/api/v1/files", files={"file": ("notes.txt", b"hello", "text/plain\x00x")}, headers=acme.api_headers()
    )

    assert response.status_code == 422
    assert response.json()["error"]["field"] == "file"
    assert "NUL characters are not allowed" in response.json()["error"]["message"]
