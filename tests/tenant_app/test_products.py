"""The catalogue through the JSON API and the storefront, in every isolation mode."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_product_create_returns_201(tenant_pair) -> None:
    acme, _ = tenant_pair

    response = await acme.client.post(
        "/api/v1/products",
        json={"name": "Anvil", "description": "Heavy and reliable", "price": "49.90", "currency": "EUR"},
        headers=acme.api_headers(),
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "Anvil"
    assert body["price"] == "49.90"
    assert body["currency"] == "EUR"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "", "price": "1.00", "currency": "EUR"}, "name"),
        ({"name": "X", "price": "-1", "currency": "EUR"}, "price"),
        ({"name": "X", "price": "1.001", "currency": "EUR"}, "price"),
        ({"name": "X", "price": "1.00", "currency": "euro"}, "currency"),
        ({"name": "X", "price": "1.00", "currency": "EUR", "tenantId": "other"}, "tenantId"),
    ],
)
async def test_invalid_product_gets_422_naming_field(tenant_pair, payload, field) -> None:
    acme, _ = tenant_pair

    response = await acme.client.post("/api/v1/products", json=payload, headers=acme.api_headers())

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == field
    assert field in error["message"]


async def test_full_text_search_finds_description_words(tenant_pair) -> None:
    acme, _ = tenant_pair
    marker = f"zebrawood{uuid.uuid4().hex[:6]}"
    created = await acme.client.post(
        "/api/v1/products",
        json={"name": "Cutting board", "description": f"Made of {marker} planks", "price": "12", "currency": "USD"},
        headers=acme.api_headers(),
    )
    assert created.status_code == 201

    response = await acme.client.get("/api/v1/products", params={"q": marker}, headers=acme.api_headers())

    assert response.status_code == 200
    assert [item["id"] for item in response.json()["items"]] == [created.json()["id"]]


async def test_pagination_has_more_until_last_page(tenant_pair) -> None:
    acme, _ = tenant_pair
    marker = f"paged{uuid.uuid4().hex[:6]}"
    for index in range(3):
        response = await acme.client.post(
            "/api/v1/products", json={"name": f"{marker} {index}", "price": "1", "currency": "EUR"},
            headers=acme.api_headers(),
        )
        assert response.status_code == 201

    first = await acme.client.get("/api/v1/products", params={"q": marker, "perPage": 2}, headers=acme.api_headers())
    second = await acme.client.get(
        "/api/v1/products", params={"q": marker, "perPage": 2, "page": 2}, headers=acme.api_headers()
    )

    assert first.status_code == 200
    assert second.status_code == 200
    assert first.json()["hasMore"] is True
    assert second.json()["hasMore"] is False
    ids = [item["id"] for item in first.json()["items"] + second.json()["items"]]
    assert len(set(ids)) == 3


async def test_update_and_delete_product(tenant_pair) -> None:
    acme, _ = tenant_pair
    created = await acme.client.post(
        "/api/v1/products", json={"name": "Rope", "price": "5", "currency": "EUR"}, headers=acme.api_headers()
    )
    product_id = created.json()["id"]

    patched = await acme.client.patch(
        f"/api/v1/products/{product_id}", json={"price": "6.50"}, headers=acme.api_headers()
    )
    deleted = await acme.client.delete(f"/api/v1/products/{product_id}", headers=acme.api_headers())
    missing = await acme.client.get(f"/api/v1/products/{product_id}", headers=acme.api_headers())

    assert patched.status_code == 200
    assert patched.json()["price"] == "6.50"
    assert deleted.status_code == 204
    assert missing.status_code == 404


async def test_storefront_is_public_and_branded(tenant_pair) -> None:
    acme, _ = tenant_pair
    marker = f"Storefront item {uuid.uuid4().hex[:6]}"
    await acme.client.post(
        "/api/v1/products", json={"name": marker, "price": "3", "currency": "EUR"}, headers=acme.api_headers()
    )

    async with acme.anonymous_client() as visitor:
        response = await visitor.get("/store")

    assert response.status_code == 200
    assert marker in response.text
    assert acme.document["displayName"] in response.text
    assert "Powered by" in response.text


async def test_api_without_credentials_gets_401(tenant_pair) -> None:
    acme, _ = tenant_pair

    async with acme.anonymous_client() as visitor:
        response = await visitor.get("/api/v1/products")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_cookie_write_without_csrf_header_gets_403(tenant_pair) -> None:
    acme, _ = tenant_pair

    response = await acme.client.post("/api/v1/products", json={"name": "X", "price": "1", "currency": "EUR"})

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"


async def test_product_image_upload_replaces_previous(tenant_pair) -> None:
    acme, _ = tenant_pair
    created = await acme.client.post(
        "/api/v1/products", json={"name": "Framed", "price": "2", "currency": "EUR"}, headers=acme.api_headers()
    )
    product_id = created.json()["id"]
    first_png = b"\x89PNG\r\n\x1a\n" + b"\x01" * 40
    second_png = b"\x89PNG\r\n\x1a\n" + b"\x02" * 80

    first = await acme.client.put(f"/api/v1/products/{product_id}/image", files={"image": ("a.png", first_png, "image/png")},
                                  headers=acme.api_headers())
    used_after_first = (await acme.client.get("/api/v1/files", headers=acme.api_headers())).json()["usedBytes"]
    second = await acme.client.put(f"/api/v1/products/{product_id}/image",
                                   files={"image": ("b.png", second_png, "image/png")}, headers=acme.api_headers())
    used_after_second = (await acme.client.get("/api/v1/files", headers=acme.api_headers())).json()["usedBytes"]
    async with acme.anonymous_client() as visitor:
        image = await visitor.get(f"/store/products/{product_id}/image", follow_redirects=True)

    assert first.status_code == 200, first.text
    assert first.json()["hasImage"] is True
    assert second.status_code == 200
    assert used_after_second - used_after_first == len(second_png) - len(first_png)
    assert image.status_code == 200
    assert image.content == second_png


async def test_svg_product_image_gets_415(tenant_pair) -> None:
    acme, _ = tenant_pair
    created = await acme.client.post(
        "/api/v1/products", json={"name": "Vector", "price": "2", "currency": "EUR"}, headers=acme.api_headers()
    )

    response = await acme.client.put(
        f"/api/v1/products/{created.json()['id']}/image",
        files={"image": ("x.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml")},
        headers=acme.api_headers(),
    )

    assert response.status_code == 415
    assert response.json()["error"]["field"] == "image"


@pytest.mark.parametrize("field", ["name", "price", "currency", "description"])
async def test_patch_with_null_gets_422(tenant_pair, field) -> None:
    acme, _ = tenant_pair
    created = await acme.client.post(
        "/api/v1/products", json={"name": "Nullable", "price": "2", "currency": "EUR"}, headers=acme.api_headers()
    )

    response = await acme.client.patch(f"/api/v1/products/{created.json()['id']}", json={field: None},
                                       headers=acme.api_headers())

    assert response.status_code == 422
    assert response.json()["error"]["field"] == field
    assert "must not be null" in response.json()["error"]["message"]


async def test_nul_character_in_name_gets_422(tenant_pair) -> None:
    acme, _ = tenant_pair

    response = await acme.client.post("/api/v1/products", json={"name": "a\u0000b", "price": "1", "currency": "EUR"},
                                      headers=acme.api_headers())

    assert response.status_code == 422
    assert response.json()["error"]["field"] == "name"


async def test_nul_character_in_search_gets_422(tenant_pair) -> None:
    acme, _ = tenant_pair

    response = await acme.client.get("/api/v1/products", params={"q": "a\x00b"}, headers=acme.api_headers())

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid"
