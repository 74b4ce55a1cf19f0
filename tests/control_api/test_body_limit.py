"""Request bodies over the size limit are rejected with 413 before a route reads them."""

from __future__ import annotations

import pytest

from livery_control_api.body_limit import DEFAULT_MAX_BYTES, LOGO_MAX_BYTES

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def chunks(total: int, size: int = 64 * 1024):
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


async def test_anonymous_large_logo_upload_is_rejected(api):
    tenant, _ = await api.owner()

    response = await api.http.post(
        f"/v1/tenants/{tenant}/branding/logo", content=b"x" * (LOGO_MAX_BYTES + 1),
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


async def test_chunked_body_over_limit_is_rejected(api):
    response = await api.http.post(
        "/v1/signup", content=chunks(DEFAULT_MAX_BYTES + 1), headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


async def test_logo_path_allows_larger_body(api):
    tenant, owner = await api.owner()

    response = await api.http.post(
        f"/v1/tenants/{tenant}/branding/logo", files={"file": ("logo.png", b"\x89PNG\r\n\x1a\n" + b"\0" * (600 * 1024), "image/png")},
        headers=owner,
    )

    assert response.status_code == 422
    assert "at most 512 KiB" in response.json()["error"]["message"]
