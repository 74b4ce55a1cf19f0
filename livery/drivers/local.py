"""The local driver: each tenant app as its own process on this machine.

The embedded runtime's reconcile loop calls this driver where the operator
calls the Kubernetes one. What each call does here:

- secrets and events go to the local resource store;
- the tenant config is a JSON file, `<data dir>/tenants/<name>/tenant.json`,
  written atomically so the app never reads half a file;
- the app is one process per tenant on a free port of 127.0.0.1, with the
  environment contract of the tenant app. A launcher starts it: by default a
  `livery tenant-app` command, in the embedded runtime a fork of a process
  with the app's modules preloaded. It is restarted with
  exponential backoff when it dies, stopped when the tenant is suspended and
  drained (SIGTERM, then SIGKILL after a grace period) when it is deleted;
- routing is a `RoutingTable` in memory, which the gateway reads on every
  request, mirrored to `<data dir>/routes.json` for `livery gateway-config`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import psutil

from ..models.config import CONFIG_FILE_NAME
from ..store.local import LocalStore
from .base import (
    SECRET_DATABASE_URL,
    SECRET_LOGIN_KEY,
    SECRET_SESSION_KEY,
    SECRET_USAGE_TOKEN,
    AppSpec,
    AppState,
    Driver,
    DriverError,
    EventType,
    RouteSpec,
)

logger = logging.getLogger(__name__)

ROUTES_FILE_NAME = "routes.json"
LOG_FILE_NAME = "app.log"
PID_FILE_NAME = "app.pid"
READY_POLL_SECONDS = 0.05
# After this long without a ready response the app is polled once a second instead.
READY_FAST_POLL_SECONDS = 10.0
READY_SLOW_POLL_SECONDS = 1.0
DRAIN_SECONDS = 10.0
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0
# A process that stayed up this long counts as healthy again: the next crash restarts it at once.
HEALTHY_AFTER_SECONDS = 60.0
PR_SET_PDEATHSIG = 1
APP_SECRET_KEYS = frozenset({SECRET_DATABASE_URL, SECRET_LOGIN_KEY, SECRET_SESSION_KEY, SECRET_USAGE_TOKEN})


def tenant_folder(data_dir: Path, tenant: str) -> Path:
    """Return the folder that contains a tenant's config, log and pid files."""
    return data_dir / "tenants" / tenant


def log_path(data_dir: Path, tenant: str) -> Path:
    """Return the file that collects a tenant app's standard output and error."""
    return tenant_folder(data_dir, tenant) / LOG_FILE_NAME


def files_folder(data_dir: Path) -> Path:
    """Return the root folder of local file storage; keys below it start `tenants/<name>/`."""
    return data_dir / "files"


@dataclass
class Backend:
    """The port of a tenant's app and whether the app passed its readiness check."""

    port: int
    ready: bool = False


@dataclass(frozen=True)
class Resolution:
    """The gateway's decision for one host: proxy, starting page, suspension page or 404."""

    action: str  # "proxy", "starting", "suspended" or "unknown"
    tenant: str | None = None
    port: int | None = None
    config: dict[str, Any] = field(default_factory=dict)


class RoutingTable:
    """Hosts, tenants and app ports, shared by the local driver and the gateway.

    `claims` contains every host of every known tenant (the loop sets it from
    the store), so that a tenant still provisioning gets 503 rather than 404.
    `routes` contains the hosts the driver was asked to serve.
    """

    def __init__(self, routes_file: Path | None = None) -> None:
        self._routes_file = routes_file
        self.claims: dict[str, str] = {}
        self.routes: dict[str, str] = {}
        self.suspended: set[str] = set()
        self.backends: dict[str, Backend] = {}
        self.configs: dict[str, dict[str, Any]] = {}

    def resolve(self, host: str) -> Resolution:
        """Return how to serve `host`; a host no tenant claims is `unknown`, never a default tenant."""
        tenant = self.routes.get(host)
        if tenant is None:
            claimant = self.claims.get(host)
            if claimant is None:
                return Resolution("unknown")
            return Resolution("starting", claimant, config=self.configs.get(claimant, {}))
        config = self.configs.get(tenant, {})
        if tenant in self.suspended:
            return Resolution("suspended", tenant, config=config)
        backend = self.backends.get(tenant)
        if backend is None or not backend.ready:
            return Resolution("starting", tenant, config=config)
        return Resolution("proxy", tenant, backend.port, config)

    def set_claims(self, claims: dict[str, str]) -> None:
        self.claims = dict(claims)

    def set_route(self, tenant: str, hosts: list[str], suspended: bool) -> None:
        for host in [host for host, owner in self.routes.items() if owner == tenant and host not in hosts]:
            del self.routes[host]
        for host in hosts:
            self.routes[host] = tenant
        if suspended:
            self.suspended.add(tenant)
        else:
            self.suspended.discard(tenant)
        self.save()

    def set_backend(self, tenant: str, backend: Backend | None) -> None:
        if backend is None:
            self.backends.pop(tenant, None)
        else:
            self.backends[tenant] = backend
        self.save()

    def remove(self, tenant: str) -> None:
        self.routes = {host: owner for host, owner in self.routes.items() if owner != tenant}
        self.suspended.discard(tenant)
        self.backends.pop(tenant, None)
        self.configs.pop(tenant, None)
        self.save()

    def snapshot(self) -> dict[str, Any]:
        """Return the table as JSON: per tenant its hosts, port and whether it is suspended."""
        tenants: dict[str, dict[str, Any]] = {}
        for host, tenant in sorted(self.routes.items()):
            entry = tenants.setdefault(tenant, {"hosts": [], "port": None, "suspended": tenant in self.suspended})
            entry["hosts"].append(host)
        for tenant, entry in tenants.items():
            backend = self.backends.get(tenant)
            entry["port"] = backend.port if backend is not None else None
            branding = self.configs.get(tenant, {}).get("branding") or {}
            entry["productName"] = branding.get("productName") or self.configs.get(tenant, {}).get("displayName")
        return {"tenants": tenants}

    def save(self) -> None:
        if self._routes_file is None:
            return
        write_atomically(self._routes_file, json.dumps(self.snapshot(), indent=2, sort_keys=True) + "\n")


def write_atomically(path: Path, content: str) -> None:
    """Replace `path` with `content` so a reader sees the old or the new file, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(content, encoding="utf-8")
    os.replace(temporary, path)


def free_port() -> int:
    """Return a TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def die_with_parent() -> None:
    """Ask Linux to send SIGTERM to this child when the runtime dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def app_environment(base: dict[str, str], spec: AppSpec, secret: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    """Return a tenant app's environment.

    Inherited `LIVERY_*` variables are dropped first: the runtime's own (the
    control database URL above all) must never reach a tenant's process.
    """
    environment = {key: value for key, value in base.items() if not key.startswith("LIVERY_")}
    environment.update(extra)
    environment.update(spec.environment)
    environment.update({key: value for key, value in secret.items() if key in APP_SECRET_KEYS})
    return environment


class AppHandle(Protocol):
    """A started tenant app process, as `asyncio.subprocess.Process` exposes it."""

    pid: int

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...


class AppLauncher(Protocol):
    """Starts one tenant app process listening on 127.0.0.1:`port`, its output appended to `log_path`."""

    async def start(self, environment: dict[str, str], port: int, log_path: Path) -> AppHandle: ...


class CommandLauncher:
    """Starts each app as a new process running `command --host 127.0.0.1 --port PORT`."""

    def __init__(self, command: list[str]) -> None:
        self.command = command

    async def start(self, environment: dict[str, str], port: int, log_path: Path) -> AppHandle:
        with open(log_path, "ab") as log:
            return await asyncio.create_subprocess_exec(
                *self.command,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                env=environment,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )


class AppProcess:
    """One tenant app process, kept running with backoff until `stop` is called."""

    def __init__(
        self,
        tenant: str,
        launcher: AppLauncher,
        environment: dict[str, str],
        folder: Path,
        routes: RoutingTable,
        on_change: Callable[[str], None],
        record_event: Callable[[str, EventType, str, str], Any],
    ) -> None:
        self.tenant = tenant
        self.launcher = launcher
        self.environment = environment
        self.fingerprint = fingerprint(environment)
        self.folder = folder
        self.routes = routes
        self.on_change = on_change
        self.record_event = record_event
        self.process: AppHandle | None = None
        self.ready = False
        self.keep_running = True
        self.restarts = 0
        self.last_exit: str = ""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name=f"tenant-app:{self.tenant}")

    async def _supervise(self) -> None:
        failures = 0
        while self.keep_running:
            started = time.monotonic()
            try:
                await self._run_once()
            except OSError as exc:
                self.last_exit = f"could not start: {exc}"
                logger.error("tenant %s: the app could not start: %s", self.tenant, exc)
            except Exception:
                # Supervision must go on whatever failed, or the tenant would stay down for good.
                self.last_exit = "failed in its supervisor"
                logger.exception("tenant %s: supervising the app failed", self.tenant)
            if not self.keep_running:
                break
            if time.monotonic() - started > HEALTHY_AFTER_SECONDS:
                failures = 0
            delay = min(BACKOFF_FIRST_SECONDS * 2**failures, BACKOFF_MAX_SECONDS)
            failures += 1
            self.restarts += 1
            message = f"tenant app {self.last_exit}; restarting in {delay:g} s (restart {self.restarts})"
            logger.warning("tenant %s: %s", self.tenant, message)
            await self.record_event(self.tenant, "Warning", "BackOff", message)
            await asyncio.sleep(delay)

    async def _run_once(self) -> None:
        port = free_port()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = await self.launcher.start(self.environment, port, self.folder / LOG_FILE_NAME)
        write_pid_file(self.folder / PID_FILE_NAME, self.process.pid)
        backend = Backend(port)
        self.routes.set_backend(self.tenant, backend)

        exited = asyncio.create_task(self.process.wait())
        if await wait_until_ready(port, exited):
            backend.ready = self.ready = True
            self.routes.save()
            self.on_change(self.tenant)
        code = await exited
        backend.ready = self.ready = False
        self.last_exit = f"exited with status {code}"
        if self.keep_running:
            self.on_change(self.tenant)

    async def stop(self, grace: float = DRAIN_SECONDS) -> None:
        """Stop the process: SIGTERM lets uvicorn finish open requests, SIGKILL after `grace` seconds."""
        self.keep_running = False
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), grace)
            except asyncio.TimeoutError:
                logger.warning("tenant %s: the app did not stop within %g s; killing it", self.tenant, grace)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(FileNotFoundError):
            (self.folder / PID_FILE_NAME).unlink()
        self.ready = False


async def wait_until_ready(port: int, exited: asyncio.Task[int]) -> bool:
    """Poll the app's /readyz until it returns 200; False when the process exits first."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2.0, trust_env=False) as client:
        while not exited.done():
            try:
                response = await client.get("/readyz")
                if response.status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            fast = time.monotonic() - started < READY_FAST_POLL_SECONDS
            await asyncio.wait({exited}, timeout=READY_POLL_SECONDS if fast else READY_SLOW_POLL_SECONDS)
    return False


def fingerprint(environment: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for key in sorted(environment):
        digest.update(f"{key}={environment[key]}\0".encode())
    return digest.hexdigest()


class LocalDriver(Driver):
    """Runs tenants as local processes behind the embedded gateway."""

    name = "local"

    def __init__(
        self,
        store: LocalStore,
        data_dir: Path,
        routes: RoutingTable,
        *,
        app_command: list[str] | None = None,
        launcher: AppLauncher | None = None,
        base_environment: dict[str, str] | None = None,
        app_settings: dict[str, str] | None = None,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        """`launcher` starts the app processes. Without it, each app runs `app_command`
        (`livery tenant-app`), to which the driver appends `--host` and `--port`.

        `app_settings` are extra `LIVERY_*` variables for every app, such as
        the base domain and Redis URL. The driver calls `on_change` with the
        tenant name whenever its app becomes ready or stops.
        """
        self.store = store
        self.data_dir = data_dir
        self.routes = routes
        if launcher is None:
            if app_command is None:
                raise ValueError("LocalDriver needs app_command or launcher")
            launcher = CommandLauncher(app_command)
        self.launcher = launcher
        self.base_environment = dict(os.environ if base_environment is None else base_environment)
        self.app_settings = dict(app_settings or {})
        self.on_change = on_change or (lambda tenant: None)
        self.processes: dict[str, AppProcess] = {}

    # Secrets, config and events

    async def read_secret(self, tenant: str) -> dict[str, str] | None:
        return await self.store.read_tenant_secret(tenant)

    async def ensure_secret(self, tenant: str, data: dict[str, str]) -> None:
        await self.store.write_tenant_secret(tenant, data)

    async def ensure_config(self, tenant: str, config: dict[str, Any]) -> None:
        path = tenant_folder(self.data_dir, tenant) / CONFIG_FILE_NAME
        content = json.dumps(config, indent=2, sort_keys=True) + "\n"
        self.routes.configs[tenant] = dict(config)
        try:
            if path.read_text(encoding="utf-8") == content:
                return
        except FileNotFoundError:
            pass
        write_atomically(path, content)

    async def record_event(self, tenant: str, event_type: EventType, reason: str, message: str) -> None:
        await self.store.record_event(tenant, event_type, reason, message)

    # The app process

    def config_path(self, tenant: str) -> Path:
        return tenant_folder(self.data_dir, tenant) / CONFIG_FILE_NAME

    async def ensure_app(self, spec: AppSpec) -> AppState:
        current = self.processes.get(spec.tenant)
        if spec.replicas == 0:
            if current is not None:
                await self._stop(spec.tenant)
            return AppState(desired_replicas=0, available_replicas=0, message="stopped")

        secret = await self.read_secret(spec.tenant)
        if secret is None:
            raise DriverError(f"the secret of tenant {spec.tenant} does not exist yet", reason="SecretMissing")
        environment = app_environment(self.base_environment, spec, secret, self._driver_settings(spec.tenant))

        if current is not None and current.fingerprint != fingerprint(environment):
            # NOTE: a changed environment restarts the app in place, so its hosts get 503 for
            # about a second; Kubernetes rolls a Deployment without that gap.
            logger.info("tenant %s: the app environment changed; restarting the app", spec.tenant)
            await self._stop(spec.tenant, grace=DRAIN_SECONDS)
            current = None
        if current is None:
            kill_stale_process(tenant_folder(self.data_dir, spec.tenant))
            current = AppProcess(
                spec.tenant,
                self.launcher,
                environment,
                tenant_folder(self.data_dir, spec.tenant),
                self.routes,
                self.on_change,
                self.record_event,
            )
            self.processes[spec.tenant] = current
            current.start()
            logger.info("tenant %s: started the app", spec.tenant)

        # One process serves a tenant on one machine, whatever the plan's replica count.
        available = 1 if current.ready else 0
        message = "running" if current.ready else (f"starting; last {current.last_exit}" if current.last_exit else "starting")
        return AppState(desired_replicas=1, available_replicas=available, message=message)

    def _driver_settings(self, tenant: str) -> dict[str, str]:
        settings = {
            "LIVERY_TENANT_CONFIG": str(self.config_path(tenant)),
            "LIVERY_TRUSTED_PROXIES": "127.0.0.1",
        }
        if "LIVERY_S3_BUCKET" not in self.app_settings:
            settings["LIVERY_FILES_DIR"] = str(files_folder(self.data_dir))
        settings.update(self.app_settings)
        return settings

    async def _stop(self, tenant: str, grace: float = DRAIN_SECONDS) -> None:
        process = self.processes.pop(tenant, None)
        self.routes.set_backend(tenant, None)
        if process is not None:
            await process.stop(grace)
            logger.info("tenant %s: stopped the app", tenant)

    async def ensure_routing(self, route: RouteSpec) -> None:
        self.routes.set_route(route.tenant, list(route.hosts), route.suspended)

    async def remove_tenant(self, tenant: str) -> None:
        # Routes go first, so no new request reaches the app while it drains.
        self.routes.remove(tenant)
        await self._stop(tenant)
        folder = tenant_folder(self.data_dir, tenant)
        with contextlib.suppress(FileNotFoundError):
            (folder / CONFIG_FILE_NAME).unlink()
        await self.store.delete_tenant_secret(tenant)

    def app_states(self) -> dict[str, bool]:
        """Return whether each running tenant app is ready, by tenant."""
        return {tenant: process.ready for tenant, process in self.processes.items()}

    async def shutdown(self, grace: float = DRAIN_SECONDS) -> None:
        """Stop every tenant app at once, each with `grace` seconds to drain."""
        tenants = list(self.processes)
        await asyncio.gather(*(self._stop(tenant, grace) for tenant in tenants))


def write_pid_file(path: Path, pid: int) -> None:
    """Record the app's pid with its start time, so a later process that reuses the pid is not mistaken for it."""
    try:
        started = psutil.Process(pid).create_time()
    except psutil.Error:
        return  # It already exited, so there is nothing a later run could kill.
    path.write_text(f"{pid} {started!r}\n", encoding="utf-8")


def running_app(pid_file: Path) -> psutil.Process | None:
    """Return the process a pid file names while it still runs, or None."""
    try:
        pid_text, started_text = pid_file.read_text(encoding="utf-8").split()
        process = psutil.Process(int(pid_text))
        if process.create_time() != float(started_text) or process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process
    except (FileNotFoundError, ValueError, psutil.Error):
        return None


def kill_stale_process(folder: Path) -> None:
    """Kill a tenant app left running by a runtime that died, found through its pid file."""
    pid_file = folder / PID_FILE_NAME
    process = running_app(pid_file)
    if process is not None:
        logger.warning("killing tenant app process %d left over from a previous run", process.pid)
        with contextlib.suppress(psutil.Error):
            process.kill()
            process.wait(5)
    pid_file.unlink(missing_ok=True)


def remove_tenant_folder(data_dir: Path, tenant: str) -> None:
    """Delete a tenant's config, log and pid files."""
    shutil.rmtree(tenant_folder(data_dir, tenant), ignore_errors=True)
