"""`livery up` killed with SIGKILL while tenants provision, then started again on the same folder."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from livery.database.provisioner import DatabaseProvisioner

from .runtime_process import (
    REPO_ROOT,
    RuntimeProcess,
    app_processes_named,
    database_url,
    phase_of,
    status_of,
    tenant_page,
    wait_for,
)

pytestmark = pytest.mark.slow

TENANTS = ("hooli", "pied-piper", "aviato")
MODES = {"hooli": "shared", "pied-piper": "schema", "aviato": "database"}
PLANS = {"shared": "free", "schema": "pro", "database": "enterprise"}
READY_TIMEOUT_SECONDS = 90.0


def manifest(name: str) -> str:
    mode = MODES[name]
    return (
        "apiVersion: livery.dev/v1alpha1\nkind: Tenant\n"
        f"metadata:\n  name: {name}\n"
        f"spec:\n  displayName: {name.title()}\n  plan: {PLANS[mode]}\n  isolation: {mode}\n"
        f"  deletionPolicy: Delete\n  branding:\n    productName: {name.title()} App\n"
    )


def drop_leftovers(server_url: str) -> None:
    """Drop the databases, schemas, rows and roles these tests' tenants may have left on the server."""
    provisioner = DatabaseProvisioner(server_url)

    async def drop_all() -> None:
        for name, mode in {**MODES, "acme": "shared"}.items():
            await provisioner.drop_database(name, mode)

    asyncio.run(drop_all())


@pytest.fixture
def control_database(postgres_url: str) -> Iterator[str]:
    drop_leftovers(postgres_url)
    name = f"livery_crash_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield database_url(postgres_url, name)
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    drop_leftovers(postgres_url)


def secrets_in_store(url: str) -> dict[str, dict[str, str]]:
    with psycopg.connect(url) as connection:
        return {row[0]: row[1] for row in connection.execute("SELECT tenant, data FROM livery_tenant_secrets")}


def test_sigkill_during_provisioning_then_restart_converges(control_database: str, tmp_path: Path) -> None:
    manifests = tmp_path / "tenants.yaml"
    manifests.write_text("---\n".join(manifest(name) for name in TENANTS))
    first = RuntimeProcess(tmp_path / "data", control_database).start()
    applied = first.cli("apply", "-f", str(manifests))
    assert applied.returncode == 0, applied.stderr
    # Kill as soon as the first app process exists, while the others are still being provisioned.
    wait_for(lambda: first.tenant_app_processes() or status_of(first, "hooli").get("database"), 30, 0.02)
    before = secrets_in_store(control_database)

    first.kill()
    wait_for(
        lambda: all(not app_processes_named(name, first.data_dir) for name in TENANTS),
        30,
        message="orphaned tenant apps to exit",
    )
    second = RuntimeProcess(tmp_path / "data", control_database)
    second.start()
    try:
        for name in TENANTS:
            wait_for(lambda: tenant_page(second, f"{name}.localhost"), READY_TIMEOUT_SECONDS, message=f"{name} served")
            wait_for(lambda: phase_of(second, name) == "Ready", READY_TIMEOUT_SECONDS, message=f"{name} Ready")
        processes = second.tenant_app_processes()
        named = {name: app_processes_named(name, second.data_dir) for name in TENANTS}
        after = secrets_in_store(control_database)
    finally:
        second.stop()

    assert sorted(processes) == sorted(TENANTS)
    for name in TENANTS:
        assert named[name] == processes[name]
    for name, secret in before.items():
        changed = sorted(key for key, value in secret.items() if after[name].get(key) != value)
        assert changed == [], f"secret keys of {name} changed across the crash"
    assert sorted(after) == sorted(TENANTS)


def test_sigterm_stops_every_tenant_app(control_database: str, tmp_path: Path) -> None:
    runtime = RuntimeProcess(tmp_path / "data", control_database).start()
    runtime.cli("apply", "-f", str(REPO_ROOT / "examples" / "tenants" / "acme.yaml"), check=True)
    wait_for(lambda: runtime.tenant_app_processes().get("acme"), 60, message="acme app started")

    status = runtime.stop()

    assert status == 0
    assert runtime.tenant_app_processes() == {}
    assert not (runtime.data_dir / "runtime.json").exists()
