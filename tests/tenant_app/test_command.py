"""`livery tenant-app` serves a provisioned tenant from its LIVERY_* environment."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from livery.database import DatabaseProvisioner
from livery.tenant_schema import HEAD_REVISION

from .servers import free_port
from .support import tenant_config_document

pytestmark = pytest.mark.asyncio(loop_scope="session")

START_TIMEOUT_SECONDS = 30


async def test_command_serves_real_tenant(provisioner: DatabaseProvisioner, tmp_path: Path) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    info = await provisioner.ensure_database(name, "shared", f"pw-{uuid.uuid4().hex}")
    config_path = tmp_path / "tenant.json"
    config_path.write_text(json.dumps(tenant_config_document(name, branding={"productName": "Command Shop"})))
    port = free_port()
    environment = {key: value for key, value in os.environ.items() if not key.startswith("LIVERY_")}
    environment.update({
        "LIVERY_TENANT": name,
        "LIVERY_TENANT_CONFIG": str(config_path),
        "LIVERY_DATABASE_URL": info.app_url,
        "LIVERY_ISOLATION": "shared",
        "LIVERY_FILES_DIR": str(tmp_path / "files"),
        "LIVERY_SESSION_KEY": "command-session-key-0123456789abcdef",
        "LIVERY_TRUSTED_PROXIES": "127.0.0.1",
    })
    process = subprocess.Popen(
        [sys.executable, "-m", "livery_runtime", "tenant-app", "--host", "127.0.0.1", "--port", str(port)],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            ready = await wait_until_ready(client, process)
            store = await client.get("/store", headers={"X-Forwarded-Host": f"{name}.localhost"})
            unknown = await client.get("/store", headers={"X-Forwarded-Host": "unknown.localhost"})
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0].decode(errors="replace")
        await provisioner.drop_database(name, "shared")

    assert ready.json() == {"ready": True, "revision": HEAD_REVISION}
    assert store.status_code == 200
    assert "Command Shop" in store.text
    assert unknown.status_code == 404
    assert info.app_url.split("@")[0].split(":")[-1] not in output, "the database password must not be logged"
    assert f'"tenant": "{name}"' in output


async def wait_until_ready(client: httpx.AsyncClient, process: subprocess.Popen) -> httpx.Response:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"livery tenant-app exited with {process.returncode}")
        try:
            response = await client.get("/readyz")
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"livery tenant-app was not ready within {START_TIMEOUT_SECONDS} s")
