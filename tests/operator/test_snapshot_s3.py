"""deletionPolicy Snapshot with S3: the archive lands in the bucket and pg_restore reads it."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import boto3
import psycopg
import pytest
from moto.server import ThreadedMotoServer
from operator_support import MemoryDriver, unique_name

from livery.database.snapshot import choose_pg_dump
from livery.reconcile import ReconcileSettings, finalize_tenant, reconcile_tenant
from livery.storage import S3Storage

S3_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "livery-operator-test",
    "AWS_SECRET_ACCESS_KEY": "livery-operator-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def s3_bucket() -> Iterator[tuple[str, str]]:
    """Serve moto S3 on 127.0.0.1 and yield (endpoint, empty bucket)."""
    saved = {name: os.environ.get(name) for name in S3_ENVIRONMENT}
    os.environ.update(S3_ENVIRONMENT)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    bucket = f"livery-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    yield endpoint, bucket
    server.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.mark.parametrize("isolation", ["database", "schema", "shared"])
async def test_snapshot_archive_reaches_s3(isolation, s3_bucket, make_tenant, plans, provisioner, postgres_url, tmp_path):
    endpoint, bucket = s3_bucket
    plan = {"database": "enterprise", "schema": "pro", "shared": "free"}[isolation]
    tenant = make_tenant(unique_name(f"snap-{isolation[:2]}"), plan, deletionPolicy="Snapshot")
    driver = MemoryDriver()
    storage = S3Storage(bucket, endpoint)
    await reconcile_tenant(tenant, plans[plan], driver=driver, provisioner=provisioner, settings=ReconcileSettings())

    result = await finalize_tenant(tenant, plans[plan], driver=driver, provisioner=provisioner, storage=storage)

    assert result.finished is True
    keys = [item["Key"] for item in boto3.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket=bucket).get("Contents", [])]
    archives = [key for key in keys if key.startswith(f"tenants/{tenant.name}/snapshots/")]
    assert len(archives) == 1
    assert archives[0].endswith(f"-{isolation}.dump")
    local = tmp_path / "snapshot.dump"
    boto3.client("s3", endpoint_url=endpoint).download_file(bucket, archives[0], str(local))
    with psycopg.connect(postgres_url) as connection:
        server_version = connection.info.server_version
    listing = subprocess.run(
        [str(choose_pg_dump(server_version).with_name("pg_restore")), "--list", str(local)],
        capture_output=True, text=True, check=True,
    )
    assert "TABLE DATA" in listing.stdout
    assert await provisioner.database_exists(tenant.name, isolation) is False
    assert tenant.name not in driver.secrets
