"""Run `livery up` and the `livery` command as subprocesses, as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy.engine import make_url

from livery.drivers.local import running_app

from .servers import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 120.0


def livery_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "livery_runtime", *args]


def clean_environment(**overrides: str | None) -> dict[str, str]:
    """Return this process's environment without LIVERY_* settings, plus `overrides` (None removes)."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("LIVERY_")}
    for key, value in overrides.items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    return environment


class RuntimeProcess:
    """One `livery up` child process on free ports with its own data folder."""

    def __init__(self, data_dir: Path, database_url: str | None, *, resync_seconds: float = 30.0) -> None:
        self.data_dir = data_dir
        self.api_port = free_port()
        self.gateway_port = free_port()
        self.environment = clean_environment(LIVERY_DATABASE_URL=database_url, LIVERY_LOG_LEVEL="INFO")
        self.resync_seconds = resync_seconds
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-up.log"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def up_command(self) -> list[str]:
        return livery_command(
            "up",
            "--data-dir",
            str(self.data_dir),
            "--api-port",
            str(self.api_port),
            "--gateway-port",
            str(self.gateway_port),
            "--resync-seconds",
            str(self.resync_seconds),
        )

    def start(self) -> RuntimeProcess:
        """Start `livery up` and return once it prints its banner; a restart appends to the same log."""
        offset = len(self.output())
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.up_command(), env=self.environment, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"livery up exited with {self.process.returncode}:\n{self.output()}")
            if "Livery is running." in self.output()[offset:]:
                return self
            time.sleep(0.1)
        raise RuntimeError(f"livery up did not start within {START_TIMEOUT_SECONDS:g} s:\n{self.output()}")

    def run_up_once(self, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run `livery up` to completion, for start-up failures that exit at once."""
        return subprocess.run(
            self.up_command(), env=self.environment, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout
        )

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 60.0) -> int:
        """Send SIGTERM, as Ctrl-C would, and return the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def cli(self, *args: str, check: bool = False, data_dir: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `livery ARGS --data-dir DIR`; `data_dir=False` leaves the option out, for offline commands."""
        options = ("--data-dir", str(self.data_dir)) if data_dir else ()
        result = subprocess.run(
            livery_command(*args, *options),
            env=self.environment,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"livery {' '.join(args)} failed with {result.returncode}:\n{result.stderr}")
        return result

    def admin(self, method: str, path: str, body: Any = None) -> httpx.Response:
        token = (self.data_dir / "admin-token").read_text().strip()
        return httpx.request(
            method, self.api_url + path, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def gateway_get(self, host: str, path: str = "/", **kwargs: Any) -> httpx.Response:
        headers = {"Host": f"{host}:{self.gateway_port}", **kwargs.pop("headers", {})}
        return httpx.get(self.gateway_url + path, headers=headers, timeout=30, **kwargs)

    def tenant_app_processes(self) -> dict[str, list[int]]:
        """Return the pids of the running tenant app processes of this data folder, by tenant, from their pid files."""
        found: dict[str, list[int]] = {}
        for pid_file in sorted((self.data_dir / "tenants").glob("*/app.pid")):
            process = running_app(pid_file)
            if process is not None:
                found.setdefault(pid_file.parent.name, []).append(process.pid)
        return found


def app_processes_named(tenant: str, data_dir: Path) -> list[int]:
    """Return the pids of the processes named like a forked app of `tenant` that log into `data_dir`.

    The pid files are not used, so an app its runtime lost track of is found too.
    Other runtimes on the machine may run tenants of the same name, hence the log check.
    """
    name = f"livery:{tenant}"[:15]
    log = str(data_dir / "tenants" / tenant / "app.log")
    found = []
    for process in psutil.process_iter(["name"]):
        if process.info["name"] != name:
            continue
        try:
            if os.readlink(f"/proc/{process.pid}/fd/1") == log:
                found.append(process.pid)
        except OSError:
            continue
    return found


def wait_for(condition: Callable[[], Any], timeout: float = 60.0, interval: float = 0.1, message: str = "") -> Any:
    """Call `condition` until it returns a true value and return that value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except httpx.TransportError as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {message or condition}; last value: {last!r}")


def tenant_page(runtime: RuntimeProcess, host: str) -> httpx.Response | None:
    """Return the gateway's 200 response for `host`, or None while it returns another status."""
    response = runtime.gateway_get(host)
    return response if response.status_code == 200 else None


def status_of(runtime: RuntimeProcess, name: str) -> dict[str, Any]:
    response = runtime.admin("GET", f"/v1/admin/tenants/{name}")
    assert response.status_code == 200, response.text
    return response.json().get("status") or {}


def phase_of(runtime: RuntimeProcess, name: str) -> str | None:
    return status_of(runtime, name).get("phase")


def database_url(server_url: str, database: str) -> str:
    """Return `server_url` pointing at another database on the same server."""
    return make_url(server_url).set(database=database).render_as_string(hide_password=False)
