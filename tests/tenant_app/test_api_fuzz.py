"""Schemathesis fuzzes every JSON API operation from the app's own OpenAPI document: no 5xx."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from livery.database import DatabaseProvisioner

from .conftest import start_tenant, stop_tenant
from .test_live_server import live_app

pytestmark = pytest.mark.asyncio(loop_scope="session")

EXAMPLES_PER_OPERATION = 10


async def test_api_fuzzing_finds_no_server_error(provisioner: DatabaseProvisioner, tmp_path: Path) -> None:
    command = shutil.which("st", path=str(Path(sys.executable).parent))
    if command is None:
        pytest.skip("the schemathesis command line (st) is not installed")
    # A tenant of its own, because the fuzzer leaves products, files and invitations behind.
    tenant = await start_tenant(
        provisioner, tmp_path, tmp_path / "files", "fuzz", "shared",
        limits={"users": 100, "storageMiB": 5, "apiRequestsPerMinute": 1_000_000},
    )
    try:
        with live_app(tenant) as url:
            base = "http://127.0.0.1:" + url.rsplit(":", 1)[1]
            result = subprocess.run(
                [
                    command, "run", f"{base}/openapi.json", "--url", base,
                    "-H", f"Authorization: Bearer {tenant.api_key}", "-H", f"Host: {tenant.host}",
                    "--checks", "not_a_server_error", "--max-examples", str(EXAMPLES_PER_OPERATION),
                    "--seed", "20261204", "--no-color",
                ],
                capture_output=True, text=True, timeout=240, cwd=tmp_path,
            )
    finally:
        await stop_tenant(provisioner, tenant)

    assert result.returncode == 0, result.stdout[-4000:]
