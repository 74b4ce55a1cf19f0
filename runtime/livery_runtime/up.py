"""`livery up`: the embedded runtime, the whole platform as one supervised process tree.

One process runs the control API, the gateway and the reconcile loop on one
asyncio event loop. Its children are the tenant apps (one `livery tenant-app`
process each) and, unless `LIVERY_DATABASE_URL` names a server, an embedded
PostgreSQL from the `pgserver` package in the data folder.

The data folder contains everything a restart needs: the PostgreSQL data, the
admin token and signing key (mode 0600), tenant config and log files, local
file storage and `runtime.json`, where the `livery` command reads the control
API's address. A lock file keeps a second `livery up` off the same folder.
Emails (verification and invitation links) are not sent: the development
mailer writes each one as an `.eml` file to `mail/` in the data folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import uvicorn

from livery.models.plan import Plan
from livery.settings import CommonSettings, SettingsError, load_settings

logger = logging.getLogger("livery.runtime")

DEFAULT_DATA_DIR = Path(".livery")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_API_PORT = 8000
DEFAULT_GATEWAY_PORT = 8080
LOCK_FILE = "livery.lock"
RUNTIME_FILE = "runtime.json"
ADMIN_TOKEN_FILE = "admin-token"
JWT_SECRET_FILE = "jwt-secret"
MAIL_FOLDER = "mail"  # development mailer output: one .eml file per message
POSTGRES_FOLDER = "postgres"
RUNTIME_FIELD_MANAGER = "livery-runtime"
PLANS_FOLDER = Path(__file__).resolve().parents[2] / "livery" / "plans"
SHUTDOWN_GRACE_SECONDS = 10.0


class StartupError(Exception):
    """`livery up` cannot start. The message is one line with the cause and the fix."""


@dataclass(frozen=True)
class UpOptions:
    data_dir: Path = DEFAULT_DATA_DIR
    host: str = DEFAULT_HOST
    api_port: int = DEFAULT_API_PORT
    gateway_port: int = DEFAULT_GATEWAY_PORT
    resync_seconds: float = 30.0


# Start-up checks, each failing with a one-line message.


def prepare_data_dir(data_dir: Path) -> Path:
    """Create the data folder (mode 0700) or check that the current user owns it."""
    data_dir = data_dir.expanduser().resolve()
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except PermissionError:
        raise StartupError(f"cannot create the data folder {data_dir}: permission denied; pass --data-dir with a folder you can write") from None
    owner = data_dir.stat().st_uid
    if owner != os.getuid():
        raise StartupError(
            f"the data folder {data_dir} belongs to user {user_name(owner)}, not to you ({user_name(os.getuid())}); "
            f"run livery up as {user_name(owner)} or pass --data-dir with a folder of your own"
        )
    if not os.access(data_dir, os.W_OK):
        raise StartupError(f"the data folder {data_dir} is not writable; fix its permissions or pass another --data-dir")
    return data_dir


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def acquire_lock(data_dir: Path) -> IO[str]:
    """Take the data folder's lock, held until the process exits (even by SIGKILL)."""
    handle = open(data_dir / LOCK_FILE, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        handle.seek(0)
        pid = handle.read().strip() or "unknown"
        handle.close()
        raise StartupError(
            f"livery up is already running on {data_dir} (pid {pid}); stop it first or pass another --data-dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def check_port_free(host: str, port: int, option: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise StartupError(
                f"port {port} on {host} is in use; stop the program that uses it or choose another port with {option}"
            ) from None


def read_or_create_secret(path: Path) -> str:
    """Return the secret in `path`, creating it with mode 0600 on first use."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value


def start_embedded_postgres(data_dir: Path) -> Any:
    """Start (or reuse) the embedded PostgreSQL server in the data folder and return its handle."""
    import pgserver

    folder = data_dir / POSTGRES_FOLDER
    try:
        return pgserver.get_server(folder, cleanup_mode="stop")
    except Exception as exc:
        log = folder / "log"
        raise StartupError(
            f"the embedded PostgreSQL could not start ({type(exc).__name__}: {first_line(exc)}); "
            f"see {log} if it exists, or set LIVERY_DATABASE_URL to a running server"
        ) from None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else "no details"


async def check_database(url: str) -> None:
    import psycopg

    try:
        connection = await psycopg.AsyncConnection.connect(url, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise StartupError(
            f"cannot connect to PostgreSQL at LIVERY_DATABASE_URL ({first_line(exc)}); check that the server runs and the URL is right"
        ) from None
    await connection.close()


# The runtime itself.


class Runtime:
    """Everything `livery up` runs, started and stopped in order."""

    def __init__(self, options: UpOptions, settings: CommonSettings) -> None:
        self.options = options
        self.settings = settings
        self.data_dir = options.data_dir
        self.stopping = asyncio.Event()
        self.postgres: Any = None
        self.store: Any = None
        self.driver: Any = None
        self.loop: Any = None
        self.servers: list[Any] = []
        self.server_tasks: list[asyncio.Task[Any]] = []

    @property
    def api_url(self) -> str:
        return f"http://{self.options.host}:{self.options.api_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.options.host}:{self.options.gateway_port}"

    async def start(self) -> None:
        from livery.drivers.local import LocalDriver, RoutingTable, files_folder
        from livery.reconcile import ReconcileSettings
        from livery.store.local import LocalStore

        from .gateway import Gateway
        from .launcher import ForkLauncher
        from .loop import ReconcileLoop

        control_url = await self._database_url()
        tenant_admin_url = secret_value(self.settings.tenant_database_url) or control_url
        self.store = await LocalStore.open(control_url)
        await apply_default_plans(self.store)

        routes = RoutingTable(self.data_dir / "routes.json")
        self.driver = LocalDriver(
            self.store, self.data_dir, routes, launcher=ForkLauncher(), app_settings=self.app_settings()
        )
        reconcile_settings = ReconcileSettings(
            base_domain=self.settings.base_domain,
            url_scheme="http",
            url_port=self.options.gateway_port,
            control_api_url=self.api_url,
            s3_bucket=self.settings.s3_bucket,
            s3_endpoint_url=self.settings.s3_endpoint_url,
            app_ready_poll_seconds=2.0,
        )
        self.loop = ReconcileLoop(
            self.store,
            self.driver,
            make_provisioner(tenant_admin_url),
            reconcile_settings,
            storage=make_storage(self.settings, files_folder(self.data_dir)),
            resync_seconds=self.options.resync_seconds,
        )
        self.driver.on_change = self.loop.enqueue

        await self._serve(make_control_api(self.data_dir, control_url, self.api_url, self.store), self.options.api_port)
        # The tenant apps set Date and Server themselves; the proxy must not add a second copy.
        await self._serve(Gateway(routes), self.options.gateway_port, own_headers=False)
        await self.loop.start()
        write_runtime_file(self.data_dir, self.api_url, self.gateway_url)

    def app_settings(self) -> dict[str, str]:
        """Return the `LIVERY_*` settings every tenant app gets besides the reconciler's environment."""
        settings = {"LIVERY_BASE_DOMAIN": self.settings.base_domain, "LIVERY_LOG_LEVEL": self.settings.log_level}
        if self.settings.redis_url is not None:
            settings["LIVERY_REDIS_URL"] = self.settings.redis_url.get_secret_value()
        return settings

    async def _database_url(self) -> str:
        configured = secret_value(self.settings.database_url)
        if configured:
            await check_database(configured)
            return configured
        self.postgres = await asyncio.to_thread(start_embedded_postgres, self.data_dir)
        return str(self.postgres.get_uri())

    async def _serve(self, app: Any, port: int, *, own_headers: bool = True) -> None:
        config = uvicorn.Config(
            app,
            host=self.options.host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            # Both servers face clients directly, so a client's X-Forwarded-For must not become its address.
            proxy_headers=False,
            server_header=own_headers,
            date_header=own_headers,
            ws_max_size=16 * 1024 * 1024,
        )
        server = EmbeddedServer(config)
        task = asyncio.create_task(server.serve(), name=f"uvicorn:{port}")
        while not server.started:
            if task.done():
                # uvicorn logs the reason and exits when it cannot bind.
                raise StartupError(f"could not listen on {self.options.host}:{port}; see the message above")
            await asyncio.sleep(0.02)
        self.servers.append(server)
        self.server_tasks.append(task)

    async def stop(self) -> None:
        """Stop in reverse order: stop accepting requests, stop reconciling, drain the apps."""
        for server in self.servers:
            server.should_exit = True
        if self.server_tasks:
            await asyncio.gather(*self.server_tasks, return_exceptions=True)
        if self.loop is not None:
            await self.loop.stop()
        if self.driver is not None:
            await self.driver.shutdown(SHUTDOWN_GRACE_SECONDS)
        if self.store is not None:
            await self.store.close()
        if self.postgres is not None:
            await asyncio.to_thread(self.postgres.cleanup)
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / RUNTIME_FILE).unlink()


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the runtime, which stops every part in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def secret_value(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


async def apply_default_plans(store: Any) -> None:
    """Create each plan of `livery/plans/` that does not exist yet; plans an admin changed stay as they are."""
    from livery.manifests import read_manifests
    from livery.store.base import NotFound

    for manifest in read_manifests([PLANS_FOLDER]):
        if not isinstance(manifest.resource, Plan):
            continue
        try:
            await store.get_plan(manifest.resource.name)
        except NotFound:
            await store.apply_plan(manifest.resource, RUNTIME_FIELD_MANAGER)
            logger.info("created the default plan %s", manifest.resource.name)


def make_provisioner(admin_url: str) -> Any:
    from livery.database.provisioner import DatabaseProvisioner

    return DatabaseProvisioner(admin_url)


def make_storage(settings: CommonSettings, files_dir: Path) -> Any:
    """Return file storage for deletion snapshots: S3 when configured, else the data folder."""
    from livery.storage import open_storage

    return open_storage(settings.s3_bucket, settings.s3_endpoint_url, None if settings.s3_bucket else files_dir)


def make_control_api(data_dir: Path, control_url: str, public_url: str, store: Any) -> Any:
    """Build the control API app on the local store, with the admin token and signing key of the data folder."""
    from pydantic import SecretStr

    from livery.drivers.local import files_folder
    from livery_control_api.app import create_app
    from livery_control_api.context import OutboxMailer
    from livery_control_api.settings import ControlApiSettings

    settings = load_settings(ControlApiSettings).model_copy(
        update={
            "database_url": SecretStr(control_url),
            "admin_token": SecretStr(read_or_create_secret(data_dir / ADMIN_TOKEN_FILE)),
            "jwt_secret": SecretStr(read_or_create_secret(data_dir / JWT_SECRET_FILE)),
            "public_url": public_url,
            "files_dir": str(files_folder(data_dir)),
        }
    )
    # No SMTP is built in: verification and invitation emails land as files in <data-dir>/mail.
    mailer = OutboxMailer(data_dir / MAIL_FOLDER) if settings.environment != "production" else None
    return create_app(settings=settings, store=store, mailer=mailer)


def write_runtime_file(data_dir: Path, api_url: str, gateway_url: str) -> None:
    content = {"pid": os.getpid(), "apiUrl": api_url, "gatewayUrl": gateway_url}
    (data_dir / RUNTIME_FILE).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")


def command_name() -> str:
    """Return how to call `livery` from this shell: by name when it is on PATH, else by its path."""
    script = Path(sys.executable).parent / "livery"
    if shutil.which("livery") == str(script) or not script.exists():
        return "livery"
    return os.path.relpath(script)


def banner(runtime: Runtime) -> str:
    livery = command_name()
    # The commands find the runtime through its data folder, so a non-default one must be named.
    folder = "" if runtime.data_dir == DEFAULT_DATA_DIR.resolve() else f" --data-dir {runtime.data_dir}"
    gateway = runtime.gateway_url
    port = runtime.options.gateway_port
    domain = runtime.settings.base_domain
    return "\n".join(
        [
            "Livery is running.",
            f"  control API  {runtime.api_url}  (signup page {runtime.api_url}/signup, API docs {runtime.api_url}/docs)",
            f"  gateway      {gateway}  (tenant <name> is served at http://<name>.{domain}:{port}/)",
            f"  data folder  {runtime.data_dir}",
            "Try, in another terminal:",
            f"  {livery} apply -f examples/tenants/{folder}",
            f"  {livery} get tenants{folder}",
            f"  open http://acme.{domain}:{port}/",
            "Press Ctrl-C to stop.",
        ]
    )


async def run_runtime(options: UpOptions, settings: CommonSettings) -> None:
    runtime = Runtime(options, settings)
    event_loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        event_loop.add_signal_handler(signal_number, runtime.stopping.set)
    try:
        await runtime.start()
        print(banner(runtime), flush=True)
        await runtime.stopping.wait()
        logger.info("stopping")
    finally:
        await runtime.stop()
        logger.info("stopped")


def up(options: UpOptions) -> int:
    """Run the embedded runtime until Ctrl-C or SIGTERM; return the exit status."""
    logging.basicConfig(level=os.environ.get("LIVERY_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # These libraries log every step or request at INFO; only their warnings matter here.
    for library in ("alembic", "pgserver", "httpx"):
        logging.getLogger(library).setLevel(logging.WARNING)
    try:
        settings = load_settings(CommonSettings)
        data_dir = prepare_data_dir(options.data_dir)
        options = UpOptions(data_dir, options.host, options.api_port, options.gateway_port, options.resync_seconds)
        lock = acquire_lock(data_dir)
        check_port_free(options.host, options.api_port, "--api-port")
        check_port_free(options.host, options.gateway_port, "--gateway-port")
    except (StartupError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        asyncio.run(run_runtime(options, settings))
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        lock.close()
    return 0
