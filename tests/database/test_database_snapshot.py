"""Snapshots: pg_dump custom-format archives that pg_restore reads, per isolation mode."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest

from livery.database import DatabaseProvisioner, SnapshotError
from livery.database.snapshot import choose_pg_tool

from database_support import ISOLATIONS

pytestmark = pytest.mark.asyncio(loop_scope="session")


def pg_restore_for(provisioner_url: str) -> Path:
    with psycopg.connect(provisioner_url) as connection:
        server_version = connection.info.server_version
    return choose_pg_tool("pg_restore", server_version)


def add_owner(info, email: str) -> None:
    with psycopg.connect(info.app_url) as connection, connection.transaction():
        connection.execute("SELECT set_config('livery.tenant', %s, true)", (info.tenant,))
        if info.schema:
            connection.execute("SELECT set_config('search_path', %s, true)", (info.schema,))
        connection.execute("INSERT INTO users (email, role) VALUES (%s, 'owner')", (email,))


@pytest.mark.parametrize("isolation", ISOLATIONS)
async def test_snapshot_is_listed_by_pg_restore(provisioner: DatabaseProvisioner, provision_tenant, postgres_url, tmp_path, isolation):
    info = await provision_tenant(isolation)
    add_owner(info, "owner@example.com")

    archive = await provisioner.snapshot(info.tenant, isolation, tmp_path)

    listing = subprocess.run([str(pg_restore_for(postgres_url)), "--list", str(archive)], capture_output=True, text=True)
    assert listing.returncode == 0, listing.stderr
    assert "TABLE DATA" in listing.stdout
    assert " users " in listing.stdout
    assert archive.parent == tmp_path
    assert archive.name.startswith(info.tenant + "-")


async def test_shared_snapshot_contains_only_tenant_rows(provisioner: DatabaseProvisioner, provision_tenant, postgres_url, tmp_path):
    acme = await provision_tenant("shared")
    globex = await provision_tenant("shared")
    add_owner(acme, "owner@acme.test")
    add_owner(globex, "owner@globex.test")

    archive = await provisioner.snapshot(acme.tenant, "shared", tmp_path / "acme.dump")

    restored = subprocess.run(
        [str(pg_restore_for(postgres_url)), "--data-only", "--file=-", str(archive)], capture_output=True, text=True
    )
    assert restored.returncode == 0, restored.stderr
    assert "owner@acme.test" in restored.stdout
    assert "owner@globex.test" not in restored.stdout


async def test_snapshot_of_missing_tenant_fails_without_archive(provisioner: DatabaseProvisioner, tmp_path):
    with pytest.raises(SnapshotError) as raised:
        await provisioner.snapshot("never-provisioned", "database", tmp_path / "missing.dump")

    assert "never-provisioned" in str(raised.value)
    assert list(tmp_path.iterdir()) == []


async def test_schema_snapshot_contains_only_tenant_schema(provisioner: DatabaseProvisioner, provision_tenant, postgres_url, tmp_path):
    acme = await provision_tenant("schema")
    globex = await provision_tenant("schema")
    add_owner(acme, "owner@acme.test")
    add_owner(globex, "owner@globex.test")

    archive = await provisioner.snapshot(acme.tenant, "schema", tmp_path / "acme.dump")

    restored = subprocess.run(
        [str(pg_restore_for(postgres_url)), "--file=-", str(archive)], capture_output=True, text=True
    )
    assert restored.returncode == 0, restored.stderr
    assert "owner@acme.test" in restored.stdout
    assert "owner@globex.test" not in restored.stdout
    assert globex.schema not in restored.stdout
