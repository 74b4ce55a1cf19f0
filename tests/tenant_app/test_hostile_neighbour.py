"""Tenant globex tries to read, change, count or detect tenant acme's data through every route.

Every attempt must fail exactly as it fails for an id, key or path that does
not exist at all: same status, same body. Runs in every isolation mode.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio

pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclass(frozen=True)
class AcmeData:
    product_id: str
    product_name: str
    owner_id: str
    owner_email: str
    invitation_url: str
    api_key: str
    invitation_id: str = ""


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def acme_data(tenant_pair) -> AcmeData:
    acme, _ = tenant_pair
    product_name = f"secretproduct{uuid.uuid4().hex[:8]}"
    product = await acme.client.post(
        "/api/v1/products", json={"name": product_name, "description": "acme only", "price": "9", "currency": "EUR"},
        headers=acme.api_headers(),
    )
    assert product.status_code == 201
    users = await acme.client.get("/api/v1/users", headers=acme.api_headers())
    owner = next(user for user in users.json()["items"] if user["role"] == "owner")
    invitation = await acme.client.post(
        "/api/v1/users/invitations", json={"email": f"invitee-{uuid.uuid4().hex[:6]}@acme.example"},
        headers=acme.api_headers(),
    )
    assert invitation.status_code == 201, invitation.text
    return AcmeData(
        product_id=product.json()["id"], product_name=product_name, owner_id=owner["id"], owner_email=owner["email"],
        invitation_url=invitation.json()["acceptUrl"], api_key=acme.api_key, invitation_id=invitation.json()["id"],
    )


def same_failure(foreign: httpx.Response, missing: httpx.Response) -> None:
    assert foreign.status_code == missing.status_code
    assert foreign.status_code in (400, 401, 403, 404)
    assert foreign.content == missing.content


def random_id() -> str:
    return str(uuid.uuid4())


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_foreign_product_id_looks_missing(tenant_pair, acme_data, method) -> None:
    _, globex = tenant_pair
    body = {"name": "stolen"} if method == "PATCH" else None

    foreign = await globex.client.request(method, f"/api/v1/products/{acme_data.product_id}", json=body,
                                          headers=globex.api_headers())
    missing = await globex.client.request(method, f"/api/v1/products/{random_id()}", json=body,
                                          headers=globex.api_headers())

    assert foreign.status_code == 404
    assert foreign.json() == missing.json()


async def test_foreign_product_still_intact(tenant_pair, acme_data) -> None:
    acme, globex = tenant_pair
    await globex.client.delete(f"/api/v1/products/{acme_data.product_id}", headers=globex.api_headers())

    response = await acme.client.get(f"/api/v1/products/{acme_data.product_id}", headers=acme.api_headers())

    assert response.status_code == 200
    assert response.json()["name"] == acme_data.product_name


async def test_search_does_not_find_foreign_products(tenant_pair, acme_data) -> None:
    _, globex = tenant_pair

    foreign = await globex.client.get("/api/v1/products", params={"q": acme_data.product_name}, headers=globex.api_headers())
    missing = await globex.client.get("/api/v1/products", params={"q": "nosuchwordanywhere"}, headers=globex.api_headers())

    assert foreign.status_code == 200
    assert foreign.json() == missing.json()
    assert foreign.json()["items"] == []


async def test_pagination_never_reaches_foreign_rows(tenant_pair, acme_data) -> None:
    _, globex = tenant_pair
    seen: list[str] = []
    for page in range(1, 50):
        response = await globex.client.get("/api/v1/products", params={"page": page, "perPage": 100},
                                           headers=globex.api_headers())
        assert response.status_code == 200
        seen.extend(item["id"] for item in response.json()["items"])
        if not response.json()["hasMore"]:
            break

    assert acme_data.product_id not in seen


async def test_far_page_is_empty(tenant_pair, acme_data) -> None:
    _, globex = tenant_pair

    response = await globex.client.get("/api/v1/products", params={"page": 1000, "perPage": 100},
                                       headers=globex.api_headers())

    assert response.status_code == 200
    assert response.json()["items"] == []


async def test_storefront_does_not_show_foreign_products(tenant_pair, acme_data) -> None:
    _, globex = tenant_pair

    async with globex.anonymous_client() as visitor:
        page = await visitor.get("/store", params={"q": acme_data.product_name})
        image = await visitor.get(f"/store/products/{acme_data.product_id}/image")
        missing_image = await visitor.get(f"/store/products/{random_id()}/image")

    assert page.status_code == 200
    assert 'class="product"' not in page.text
    assert image.status_code == 404
    assert image.status_code == missing_image.status_code


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_foreign_user_id_looks_missing(tenant_pair, acme_data, method) -> None:
    _, globex = tenant_pair
    body = {"role": "admin"} if method == "PATCH" else None

    foreign = await globex.client.request(method, f"/api/v1/users/{acme_data.owner_id}", json=body,
                                          headers=globex.api_headers())
    missing = await globex.client.request(method, f"/api/v1/users/{random_id()}", json=body,
                                          headers=globex.api_headers())

    same_failure(foreign, missing)


async def test_user_list_counts_only_own_users(tenant_pair, acme_data) -> None:
    _, globex = tenant_pair

    response = await globex.client.get("/api/v1/users", headers=globex.api_headers())

    assert response.status_code == 200
    emails = [user["email"] for user in response.json()["items"]]
    assert acme_data.owner_email not in emails
    assert response.json()["total"] == len(emails)


async def test_inviting_foreign_users_email_is_allowed(tenant_pair, acme_data) -> None:
    _, globex = tenant_pair

    response = await globex.client.post("/api/v1/users/invitations", json={"email": acme_data.owner_email},
                                        headers=globex.api_headers())

    assert response.status_code == 201, "an email taken at another tenant must not be detectable"


async def test_foreign_api_key_looks_like_unknown_key(tenant_pair, acme_data) -> None:
    _, globex = tenant_pair
    key_id = acme_data.api_key.split("_")[1]
    unknown = f"lvk_{'0' * len(key_id)}_{uuid.uuid4().hex}"

    foreign = await globex.client.get("/api/v1/products", headers={"Authorization": f"Bearer {acme_data.api_key}"})
    missing = await globex.client.get("/api/v1/products", headers={"Authorization": f"Bearer {unknown}"})

    same_failure(foreign, missing)
    assert foreign.status_code == 401


async def test_foreign_session_cookie_is_anonymous(tenant_pair) -> None:
    acme, globex = tenant_pair
    cookie = acme.client.cookies.get("livery_session")

    async with globex.anonymous_client(cookies={"livery_session": cookie}) as intruder:
        response = await intruder.get("/api/v1/products")

    assert response.status_code == 401


async def test_foreign_login_link_is_rejected(tenant_pair) -> None:
    acme, globex = tenant_pair

    async with globex.anonymous_client() as intruder:
        response = await intruder.get("/auth/link", params={"token": acme.login_token()})

    assert response.status_code == 400
    assert "login link is invalid" in response.text


async def test_foreign_invitation_link_looks_missing(tenant_pair, acme_data) -> None:
    _, globex = tenant_pair
    token = acme_data.invitation_url.rsplit("/", 1)[-1]

    async with globex.anonymous_client() as visitor:
        foreign = await visitor.get(f"/invite/{token}")
        missing = await visitor.get(f"/invite/{uuid.uuid4().hex}")

    assert foreign.status_code == 404
    assert foreign.status_code == missing.status_code


async def test_foreign_product_delete_form_looks_missing(tenant_pair, acme_data) -> None:
    _, globex = tenant_pair

    foreign = await globex.client.post(f"/products/{acme_data.product_id}/delete", data={"csrf_token": globex.csrf_token})
    missing = await globex.client.post(f"/products/{random_id()}/delete", data={"csrf_token": globex.csrf_token})

    assert foreign.status_code == 404
    assert foreign.status_code == missing.status_code
    assert strip_ids(foreign.text) == strip_ids(missing.text)


def strip_ids(text: str) -> str:
    return re.sub(r'value="[^"]+"', 'value=""', text)


async def test_foreign_api_key_id_cannot_be_revoked(tenant_pair, acme_data) -> None:
    acme, globex = tenant_pair
    keys = await acme.client.get("/api/v1/api-keys", headers=acme.api_headers())
    key_id = keys.json()[0]["id"]

    foreign = await globex.client.delete(f"/api/v1/api-keys/{key_id}", headers=globex.api_headers())
    missing = await globex.client.delete(f"/api/v1/api-keys/{random_id()}", headers=globex.api_headers())
    foreign_form = await globex.client.post(f"/api-keys/{key_id}/revoke", data={"csrf_token": globex.csrf_token})
    missing_form = await globex.client.post(f"/api-keys/{random_id()}/revoke", data={"csrf_token": globex.csrf_token})
    still_valid = await acme.client.get("/api/v1/products", headers=acme.api_headers())

    same_failure(foreign, missing)
    assert foreign_form.status_code == missing_form.status_code
    assert foreign_form.headers.get("location") == missing_form.headers.get("location")
    assert still_valid.status_code == 200


async def test_foreign_user_reset_link_looks_missing(tenant_pair, acme_data) -> None:
    _, globex = tenant_pair

    foreign = await globex.client.post(f"/team/{acme_data.owner_id}/reset-link", data={"csrf_token": globex.csrf_token})
    missing = await globex.client.post(f"/team/{random_id()}/reset-link", data={"csrf_token": globex.csrf_token})

    assert foreign.status_code == 404
    assert strip_ids(foreign.text) == strip_ids(missing.text)


async def test_foreign_file_download_page_looks_missing(tenant_pair) -> None:
    acme, globex = tenant_pair
    created = await acme.client.post("/api/v1/files", files={"file": ("a.txt", b"acme", "text/plain")},
                                     headers=acme.api_headers())
    assert created.status_code == 201
    file_id = created.json()["id"]

    foreign = await globex.client.get(f"/files/{file_id}/download")
    missing = await globex.client.get(f"/files/{random_id()}/download")

    assert foreign.status_code == 404
    assert strip_ids(foreign.text) == strip_ids(missing.text)


async def test_foreign_signed_download_link_looks_missing(tenant_pair) -> None:
    acme, globex = tenant_pair
    created = await acme.client.post("/api/v1/files", files={"file": ("a.txt", b"acme", "text/plain")},
                                     headers=acme.api_headers())
    link = await acme.client.get(f"/api/v1/files/{created.json()['id']}/download", headers=acme.api_headers())
    path = link.json()["url"].split(acme.host, 1)[-1]
    if not path.startswith("/_files/"):
        pytest.skip("S3 presigned URLs do not pass through the app")

    foreign = await globex.client.get(path)
    missing = await globex.client.get(path.replace("signature=", "signature=0"))

    assert foreign.status_code == 404
    assert foreign.status_code == missing.status_code


async def test_foreign_invitation_cannot_be_listed_or_revoked(tenant_pair, acme_data) -> None:
    acme, globex = tenant_pair

    listed = await globex.client.get("/api/v1/users/invitations", headers=globex.api_headers())
    foreign = await globex.client.delete(f"/api/v1/users/invitations/{acme_data.invitation_id}",
                                         headers=globex.api_headers())
    missing = await globex.client.delete(f"/api/v1/users/invitations/{random_id()}", headers=globex.api_headers())
    still_pending = await acme.client.get("/api/v1/users/invitations", headers=acme.api_headers())

    assert listed.status_code == 200
    assert acme_data.invitation_id not in [item["id"] for item in listed.json()]
    assert foreign.status_code == 404
    same_failure(foreign, missing)
    assert acme_data.invitation_id in [item["id"] for item in still_pending.json()]
