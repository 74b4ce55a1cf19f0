"""The driver interface: how reconcile steps realise a tenant, whatever runs it.

The reconcile steps in `livery.reconcile` decide *what* a tenant needs and
call a `Driver` to make it so. The Kubernetes driver (in the operator) turns
each call into Kubernetes objects; the local driver runs `livery tenant-app`
processes and writes gateway routes. No step depends on which driver runs it.

Every method is idempotent: calling it again with the same arguments changes
nothing, and calling it after a crash half-way finishes the job.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Literal

EventType = Literal["Normal", "Warning"]

# Keys of the per-tenant secret. The tenant app receives each as an environment variable.
SECRET_DATABASE_URL = "LIVERY_DATABASE_URL"
SECRET_LOGIN_KEY = "LIVERY_LOGIN_KEY"
SECRET_SESSION_KEY = "LIVERY_SESSION_KEY"
SECRET_USAGE_TOKEN = "LIVERY_USAGE_TOKEN"


@dataclass(frozen=True)
class AppSpec:
    """The desired state of a tenant app: everything a driver needs to start or update it."""

    tenant: str
    replicas: int
    cpu: str
    memory: str
    environment: dict[str, str]
    config_checksum: str
    labels: dict[str, str] = field(default_factory=dict)
    # SHA-256 hex digest of the tenant secret's data, so new credentials restart the app; empty when unknown.
    secret_checksum: str = ""


@dataclass(frozen=True)
class AppState:
    """The observed state of a tenant app."""

    desired_replicas: int
    available_replicas: int
    message: str = ""

    @property
    def ready(self) -> bool:
        return self.available_replicas >= self.desired_replicas


@dataclass(frozen=True)
class RouteSpec:
    """The routing of a tenant: every host, in order, the primary host first."""

    tenant: str
    hosts: list[str]
    suspended: bool
    labels: dict[str, str] = field(default_factory=dict)


class DriverError(Exception):
    """A driver call failed. `temporary` errors are retried; others need a change of spec."""

    def __init__(self, message: str, *, temporary: bool = True, reason: str = "DriverError") -> None:
        super().__init__(message)
        self.temporary = temporary
        self.reason = reason


class Driver(abc.ABC):
    """Realises the parts of a tenant that run outside the database."""

    name: str = "driver"

    @abc.abstractmethod
    async def read_secret(self, tenant: str) -> dict[str, str] | None:
        """Return the tenant's secret data, or None when it does not exist yet."""

    @abc.abstractmethod
    async def ensure_secret(self, tenant: str, data: dict[str, str]) -> None:
        """Create or update the tenant's secret so that it contains exactly `data`."""

    @abc.abstractmethod
    async def ensure_config(self, tenant: str, config: dict[str, Any]) -> None:
        """Create or update the tenant config (the JSON file behind `LIVERY_TENANT_CONFIG`)."""

    @abc.abstractmethod
    async def ensure_app(self, spec: AppSpec) -> AppState:
        """Run the tenant app as `spec` describes (zero replicas stops it) and return what is running."""

    @abc.abstractmethod
    async def ensure_routing(self, route: RouteSpec) -> None:
        """Serve `route.hosts` from the tenant's app, or the suspension page when suspended."""

    @abc.abstractmethod
    async def remove_tenant(self, tenant: str) -> None:
        """Stop the app and delete routing, config and secret. Nothing in the database is touched."""

    @abc.abstractmethod
    async def record_event(self, tenant: str, event_type: EventType, reason: str, message: str) -> None:
        """Attach an event to the Tenant. Messages never contain secrets."""

    async def record_events(self, tenant: str, events: list[tuple[EventType, str, str]]) -> list[BaseException | None]:
        """Attach (type, reason, message) events in order and return the error of each, or None.

        A driver whose events do not depend on each other may send them concurrently.
        """
        errors: list[BaseException | None] = []
        for event_type, reason, message in events:
            try:
                await self.record_event(tenant, event_type, reason, message)
                errors.append(None)
            except Exception as exc:  # noqa: BLE001 - the caller decides what a failed event means
                errors.append(exc)
        return errors
