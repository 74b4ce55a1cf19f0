"""Files on S3: a moto server on 127.0.0.1 serves the bucket, which the app reaches through boto3."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import boto3
import httpx
import pytest
import pytest_asyncio

from livery.database import DatabaseProvisioner
from livery.storage import open_storage

from .conftest import TenantUnderTest, start_tenant, stop_tenant
from .servers import free_port

pytestmark = pytest.mark.asyncio(loop_scope="session")

BUCKET = "livery-tenant-files"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    previous = {name: os.environ.get(name) for name in FAKE_CREDENTIALS}
    os.environ.update(FAKE_CREDENTIALS)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def s3_tenants(
    s3_endpoint: str, provisioner: DatabaseProvisioner, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[TenantUnderTest, TenantUnderTest]]:
    """Two shared-mode tenants whose files live in one S3 bucket."""
    base_dir = tmp_path_factory.mktemp("configs-s3")
    unused_dir = Path(base_dir / "unused")
    acme = await start_tenant(provisioner, base_dir, unused_dir, "acme", "shared",
                              storage=open_storage(BUCKET, s3_endpoint, None))
    globex = await start_tenant(provisioner, base_dir, unused_dir, "globex", "shared",
                                storage=open_storage(BUCKET, s3_endpoint, None))
    yield acme, globex
    await stop_tenant(provisioner, globex)
    await stop_tenant(provisioner, acme)


async def upload(tenant: TenantUnderTest, data: bytes, path: str | None = None) -> httpx.Response:
    form = {"path": path} if path is not None else {}
    return await tenant.client.post("/api/v1/files", files={"file": ("a.txt", data, "text/plain")}, data=form,
                                    headers=tenant.api_headers())


def bucket_keys(endpoint: str) -> list[str]:
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    return sorted(item["Key"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []))


async def test_s3_upload_lands_under_tenant_prefix(s3_tenants, s3_endpoint) -> None:
    acme, _ = s3_tenants
    path = f"docs/{uuid.uuid4().hex}.txt"

    response = await upload(acme, b"on s3", path=path)

    assert response.status_code == 201, response.text
    assert f"tenants/{acme.name}/{path}" in bucket_keys(s3_endpoint)


async def test_s3_presigned_download_returns_bytes(s3_tenants) -> None:
    acme, _ = s3_tenants
    data = f"presigned {uuid.uuid4()}".encode()
    created = await upload(acme, data)
    assert created.status_code == 201

    link = await acme.client.get(f"/api/v1/files/{created.json()['id']}/download", headers=acme.api_headers())
    async with httpx.AsyncClient() as outside:
        downloaded = await outside.get(link.json()["url"])

    assert link.status_code == 200
    assert "X-Amz-Signature" in link.json()["url"]
    assert downloaded.status_code == 200
    assert downloaded.content == data


async def test_s3_traversal_key_touches_nothing(s3_tenants, s3_endpoint) -> None:
    acme, globex = s3_tenants
    secret = await upload(globex, b"globex secret", path="secret.txt")
    assert secret.status_code == 201
    before = bucket_keys(s3_endpoint)

    response = await upload(acme, b"overwrite", path=f"../../{globex.name}/secret.txt")

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "path"
    assert bucket_keys(s3_endpoint) == before


async def test_s3_foreign_file_id_looks_missing(s3_tenants) -> None:
    acme, globex = s3_tenants
    created = await upload(acme, b"acme only")
    assert created.status_code == 201

    foreign = await globex.client.get(f"/api/v1/files/{created.json()['id']}/download", headers=globex.api_headers())
    missing = await globex.client.get(f"/api/v1/files/{uuid.uuid4()}/download", headers=globex.api_headers())

    assert foreign.status_code == 404
    assert foreign.content == missing.content
