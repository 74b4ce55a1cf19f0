"""Files: uploads within the plan's storage limit, presigned downloads, key checks and neighbours."""

from __future__ import annotations

import uuid

import httpx
import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")

MIB = 1024 * 1024


async def upload(tenant, data: bytes, path: str | None = None, filename: str = "notes.txt") -> httpx.Response:
    form = {"path": path} if path is not None else {}
    return await tenant.client.post(
        "/api/v1/files", files={"file": (filename, data, "text/plain")}, data=form, headers=tenant.api_headers()
    )


async def fetch_download(tenant, file_id: str) -> httpx.Response:
    link = await tenant.client.get(f"/api/v1/files/{file_id}/download", headers=tenant.api_headers())
    assert link.status_code == 200, link.text
    url = link.json()["url"]
    if url.startswith(str(tenant.client.base_url)):
        return await tenant.client.get(url)
    async with httpx.AsyncClient() as outside:
        return await outside.get(url)


async def test_upload_then_download_round_trip(tenant_pair) -> None:
    acme, _ = tenant_pair
    data = f"hello {uuid.uuid4()}".encode()

    created = await upload(acme, data)
    assert created.status_code == 201, created.text
    downloaded = await fetch_download(acme, created.json()["id"])

    assert downloaded.status_code == 200
    assert downloaded.content == data


async def test_upload_past_storage_limit_names_used_and_limit(tenant_pair) -> None:
    acme, _ = tenant_pair
    storage = acme.app.state.files.storage
    before = [info.key for info in storage.list(acme.app.state.files.prefix)]

    response = await upload(acme, b"x" * (MIB + 1))

    assert response.status_code == 413
    message = response.json()["error"]["message"]
    assert "used" in message
    assert f"{MIB} bytes (1 MiB)" in message
    assert [info.key for info in storage.list(acme.app.state.files.prefix)] == before


@pytest.mark.parametrize(
    "path", ["../../globex/secret.txt", "/etc/passwd", "a//b.txt", "a/./b.txt", "a\\..\\b.txt", "docs/../../x.txt"]
)
async def test_path_outside_prefix_gets_400(tenant_pair, path) -> None:
    acme, globex = tenant_pair
    storage = acme.app.state.files.storage
    before = [info.key for info in storage.list("tenants/")]

    response = await upload(acme, b"data", path=path)
    lookup = await acme.client.get("/api/v1/files-by-path", params={"path": path}, headers=acme.api_headers())

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "path"
    assert lookup.status_code == 400
    assert [info.key for info in storage.list("tenants/")] == before


async def test_chosen_path_is_stored_under_tenant_prefix(tenant_pair) -> None:
    acme, _ = tenant_pair
    path = f"reports/{uuid.uuid4().hex}.txt"

    response = await upload(acme, b"quarterly", path=path)

    assert response.status_code == 201, response.text
    assert response.json()["key"] == path
    assert acme.app.state.files.storage.get_bytes(f"tenants/{acme.name}/{path}") == b"quarterly"


async def test_foreign_file_looks_missing(tenant_pair) -> None:
    acme, globex = tenant_pair
    path = f"private/{uuid.uuid4().hex}.txt"
    created = await upload(acme, b"acme secret", path=path)
    assert created.status_code == 201
    file_id = created.json()["id"]
    random_id = str(uuid.uuid4())

    for method, suffix in (("GET", ""), ("GET", "/download"), ("DELETE", "")):
        foreign = await globex.client.request(method, f"/api/v1/files/{file_id}{suffix}", headers=globex.api_headers())
        missing = await globex.client.request(method, f"/api/v1/files/{random_id}{suffix}", headers=globex.api_headers())
        assert foreign.status_code == 404
        assert foreign.content == missing.content

    by_path = await globex.client.get("/api/v1/files-by-path", params={"path": path}, headers=globex.api_headers())
    by_other_path = await globex.client.get("/api/v1/files-by-path", params={"path": f"private/{random_id}.txt"},
                                            headers=globex.api_headers())
    assert by_path.status_code == 404
    assert by_path.content == by_other_path.content

    listing = await globex.client.get("/api/v1/files", params={"prefix": "private/"}, headers=globex.api_headers())
    assert listing.status_code == 200
    assert file_id not in [item["id"] for item in listing.json()["items"]]

    still_there = await acme.client.get(f"/api/v1/files/{file_id}", headers=acme.api_headers())
    assert still_there.status_code == 200


async def test_svg_product_image_is_rejected(tenant_pair) -> None:
    acme, _ = tenant_pair
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'

    response = await acme.client.post(
        "/products",
        data={"csrf_token": acme.csrf_token, "name": "Vector", "price": "1", "currency": "EUR"},
        files={"image": ("logo.svg", svg, "image/svg+xml")},
    )

    assert response.status_code == 415
    assert "SVG" in response.text


async def test_deleting_product_removes_its_image(tenant_pair) -> None:
    acme, _ = tenant_pair
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    name = f"Pictured {uuid.uuid4().hex[:6]}"
    created = await acme.client.post(
        "/products",
        data={"csrf_token": acme.csrf_token, "name": name, "price": "1", "currency": "EUR"},
        files={"image": ("p.png", png, "image/png")},
    )
    assert created.status_code == 303, created.text
    listing = await acme.client.get("/api/v1/products", params={"q": name}, headers=acme.api_headers())
    product_id = listing.json()["items"][0]["id"]
    used_before = (await acme.client.get("/api/v1/files", headers=acme.api_headers())).json()["usedBytes"]

    deleted = await acme.client.delete(f"/api/v1/products/{product_id}", headers=acme.api_headers())
    used_after = (await acme.client.get("/api/v1/files", headers=acme.api_headers())).json()["usedBytes"]

    assert deleted.status_code == 204
    assert used_before - used_after == len(png)


@pytest.mark.parametrize("path", ["branding/logo.png", "Branding/logo.png", "%62randing/logo.png"])
async def test_upload_into_branding_folder_is_rejected(tenant_pair, path: str) -> None:
    acme, _ = tenant_pair
    png = b"\x89PNG\r\n\x1a\n" + b"\x02" * 16

    response = await upload(acme, png, path=path, filename="logo.png")
    served = await acme.client.get("/branding/logo.png")

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "path"
    assert "reserved" in response.json()["error"]["message"]
    assert served.content != png
