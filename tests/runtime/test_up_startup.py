"""`livery up` start-up: one-line messages for what stops it, and the embedded PostgreSQL default."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from .runtime_process import REPO_ROOT, RuntimeProcess, phase_of, tenant_page, wait_for

pytestmark = pytest.mark.slow


def test_port_in_use_exits_with_message(tmp_path: Path) -> None:
    runtime = RuntimeProcess(tmp_path / "data", "postgresql://unused@127.0.0.1:1/unused")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", runtime.gateway_port))
        squatter.listen()

        result = runtime.run_up_once()

    assert result.returncode == 1
    message = result.stderr.strip()
    assert message == (
        f"error: port {runtime.gateway_port} on 127.0.0.1 is in use; "
        "stop the program that uses it or choose another port with --gateway-port"
    )


@pytest.mark.skipif(os.getuid() != 0, reason="handing a folder to another user needs root")
def test_data_folder_of_other_user_exits_with_message(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    os.chown(data_dir, 65534, 65534)
    runtime = RuntimeProcess(data_dir, "postgresql://unused@127.0.0.1:1/unused")

    result = runtime.run_up_once()

    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"the data folder {data_dir} belongs to user" in result.stderr
    assert not (data_dir / "livery.lock").exists()


def test_unreachable_database_exits_with_message(tmp_path: Path) -> None:
    runtime = RuntimeProcess(tmp_path / "data", "postgresql://livery:secret-password@127.0.0.1:1/control")

    result = runtime.run_up_once()

    assert result.returncode == 1
    assert "cannot connect to PostgreSQL at LIVERY_DATABASE_URL" in result.stderr
    assert "secret-password" not in result.stderr


def test_broken_embedded_postgres_exits_with_message(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "postgres").write_text("not a PostgreSQL data folder\n")
    runtime = RuntimeProcess(data_dir, None)

    result = runtime.run_up_once()

    assert result.returncode == 1
    assert "error: the embedded PostgreSQL could not start" in result.stderr
    assert "set LIVERY_DATABASE_URL" in result.stderr


def test_embedded_postgres_default_serves_and_resumes(tmp_path: Path) -> None:
    runtime = RuntimeProcess(tmp_path / "data", None).start()
    try:
        applied = runtime.cli("apply", "-f", str(REPO_ROOT / "examples" / "tenants" / "acme.yaml"))
        assert applied.returncode == 0, applied.stderr
        page = wait_for(lambda: tenant_page(runtime, "acme.localhost"), 90, message="acme served")
    finally:
        first_status = runtime.stop()
    stopped_apps = runtime.tenant_app_processes()

    runtime.start()
    try:
        resumed = wait_for(lambda: tenant_page(runtime, "acme.localhost"), 90, message="acme served again")
        phase = wait_for(lambda: phase_of(runtime, "acme") == "Ready", 90, message="acme Ready")
    finally:
        second_status = runtime.stop()

    assert "Acme Shop" in page.text
    assert (tmp_path / "data" / "postgres" / "PG_VERSION").exists()
    assert first_status == 0
    assert stopped_apps == {}
    assert "Acme Shop" in resumed.text
    assert phase
    assert second_status == 0
