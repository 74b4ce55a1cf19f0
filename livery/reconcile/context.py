"""Inputs of a reconcile besides the Tenant: settings, collaborators and an observer.

The database provisioner and file storage are described here as protocols so the
steps depend on their methods only: `livery.database.DatabaseProvisioner` and
`livery.storage.open_storage(...)` satisfy them.
"""

from __future__ import annotations

import logging
import pathlib
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..drivers.base import Driver

logger = logging.getLogger("livery.reconcile")


class Provisioner(Protocol):
    async def ensure_database(self, tenant: str, isolation: str, password: str) -> Any: ...

    async def drop_database(self, tenant: str, isolation: str) -> None: ...

    async def snapshot(self, tenant: str, isolation: str, destination: pathlib.Path) -> pathlib.Path: ...

    async def database_exists(self, tenant: str, isolation: str) -> bool: ...


class SnapshotStorage(Protocol):
    def put_file(self, key: str, path: pathlib.Path) -> Any: ...


class StepObserver(Protocol):
    """Receives each step's outcome, for metrics. `outcome` is `success` or the failure reason."""

    def step_finished(self, step: str, outcome: str, seconds: float) -> None: ...


class NullObserver:
    def step_finished(self, step: str, outcome: str, seconds: float) -> None:
        return None


@dataclass(frozen=True)
class ReconcileSettings:
    """Settings the steps read; each driver's program fills them from its own settings."""

    base_domain: str = "localhost"
    url_scheme: str = "https"
    # Port shown in status.url; None leaves the scheme's default port out of the URL.
    url_port: int | None = None
    control_api_url: str | None = None
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    # Non-secret variables added to every tenant app's environment.
    extra_environment: Mapping[str, str] = field(default_factory=dict)
    # How long to wait before checking again an app whose replicas are not available yet.
    app_ready_poll_seconds: float = 5.0

    def tenant_url(self, host: str) -> str:
        """Return the URL a tenant is served at on `host`."""
        default_port = {"https": 443, "http": 80}.get(self.url_scheme)
        if self.url_port is None or self.url_port == default_port:
            return f"{self.url_scheme}://{host}/"
        return f"{self.url_scheme}://{host}:{self.url_port}/"


@dataclass
class Collaborators:
    """The parts a reconcile calls: driver, database provisioner, file storage and an observer."""

    driver: Driver
    provisioner: Provisioner
    storage: SnapshotStorage | None = None
    observer: StepObserver = field(default_factory=NullObserver)
    tenant: str = ""

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        """Log the step's outcome and report it with its duration to the observer, re-raising any error.

        Success is logged at DEBUG, because drift checks repeat every step; failures at WARNING.
        Messages of `ReconcileError` are already free of secrets.
        """
        started = time.perf_counter()
        try:
            yield
        except Exception as exc:
            seconds = time.perf_counter() - started
            reason = getattr(exc, "reason", type(exc).__name__)
            message = getattr(exc, "message", type(exc).__name__)
            logger.warning("tenant %s: %s failed after %.3f s (%s): %s", self.tenant, step, seconds, reason, message)
            self.observer.step_finished(step, reason, seconds)
            raise
        seconds = time.perf_counter() - started
        logger.debug("tenant %s: %s succeeded in %.3f s", self.tenant, step, seconds)
        self.observer.step_finished(step, "success", seconds)
