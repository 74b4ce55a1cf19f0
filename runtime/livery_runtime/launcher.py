"""Start tenant apps by forking a process that has the tenant app's modules imported already.

A new Python process spends about a second importing FastAPI, SQLAlchemy,
uvicorn and the tenant app before it can serve, and each copy keeps its own
copy of those modules in memory. The embedded runtime instead starts one
`multiprocessing` fork server with those modules preloaded and forks every
tenant app from it. A forked app starts serving sooner, and the pages of the
preloaded modules stay shared between all apps until one of them writes to them.

Each forked app clears the fork server's environment and takes only its own
(the tenant app contract), appends its output to its log file and runs the
same code as `livery tenant-app`. It stops when the runtime ends, even by
SIGKILL: it watches the runtime's pid, and it gets SIGTERM when the fork
server exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import os
import select
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from livery.drivers.local import die_with_parent

# Modules the fork server imports once; a missing optional one is skipped by multiprocessing.
PRELOAD = [
    "livery_runtime.cli",
    "livery_runtime.launcher",
    "livery_runtime.tenant_app",
    "livery_tenant_app.app",
    "livery_tenant_app.config",
    "livery_tenant_app.logs",
    "livery_tenant_app.settings",
    "livery.storage",
    "uvicorn",
    "uvicorn.config",
    "uvicorn.server",
    "uvicorn.lifespan.on",
    "uvicorn.loops.auto",
    "uvicorn.protocols.http.auto",
    "uvicorn.protocols.websockets.auto",
    "psycopg",
    "sqlalchemy.ext.asyncio",
]
PR_SET_NAME = 15


def serve_tenant_app(environment: dict[str, str], port: int, log_path: str, runtime_pid: int) -> None:
    """Run in the forked child: become the tenant app process for `environment` and serve on `port`."""
    os.setsid()
    release_fork_server()
    die_with_parent()
    stop_when_process_ends(runtime_pid)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.environ.clear()
    os.environ.update(environment)
    set_process_name(f"livery:{environment.get('LIVERY_TENANT', 'app')}")

    import click

    from .tenant_app import tenant_app

    try:
        tenant_app(host="127.0.0.1", port=port)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


def release_fork_server() -> None:
    """Close this child's copy of the write end of the fork server's liveness pipe.

    The fork server exits when every write end is closed. multiprocessing
    hands a copy to every forked child, so after a SIGKILL of the runtime the
    fork server would wait for the apps while the apps (which exit with the
    fork server) wait for it.
    """
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    descriptor = getattr(server, "_forkserver_alive_fd", None)
    if descriptor is not None:
        with contextlib.suppress(OSError):
            os.close(descriptor)
        server._forkserver_alive_fd = None


def stop_when_process_ends(pid: int) -> None:
    """Send SIGTERM to this process when process `pid` (the runtime) ends, however it ends."""
    if not hasattr(os, "pidfd_open"):
        return
    try:
        descriptor = os.pidfd_open(pid)
    except OSError:
        os.kill(os.getpid(), signal.SIGTERM)
        return

    def watch() -> None:
        select.select([descriptor], [], [])
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="watch-runtime", daemon=True).start()


def set_process_name(name: str) -> None:
    """Set the name `ps -o comm` and `top` show (15 bytes at most on Linux)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


class ForkedApp:
    """A tenant app forked from the fork server, with the interface of `asyncio.subprocess.Process`."""

    def __init__(self, process: Any) -> None:
        self._process = process
        self.pid: int = process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    async def wait(self) -> int:
        loop = asyncio.get_running_loop()
        ended = loop.create_future()
        sentinel = self._process.sentinel
        loop.add_reader(sentinel, lambda: ended.done() or ended.set_result(None))
        try:
            if self._process.exitcode is None:
                await ended
        finally:
            loop.remove_reader(sentinel)
        self._process.join(0)
        return int(self._process.exitcode if self._process.exitcode is not None else -1)

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)


class ForkLauncher:
    """Forks tenant apps from a `multiprocessing` fork server with `PRELOAD` imported."""

    def __init__(self) -> None:
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(PRELOAD)

    async def start(self, environment: dict[str, str], port: int, log_path: Path) -> ForkedApp:
        process = self._context.Process(
            target=serve_tenant_app,
            args=(dict(environment), port, str(log_path), os.getpid()),
            name=f"tenant-app:{environment.get('LIVERY_TENANT', '')}",
            # Daemonic children are terminated if the runtime exits without stopping them.
            daemon=True,
        )
        # The first start launches the fork server and imports PRELOAD, so it runs off the event loop.
        await asyncio.to_thread(process.start)
        return ForkedApp(process)
