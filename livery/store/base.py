"""The resource store interface: where Tenant and Plan resources are kept.

On a cluster the store is the Kubernetes API (`livery.store.kubernetes`); in the
embedded runtime it is a set of tables in the control database
(`livery.store.local`). The control API and the `livery` command use this
interface only, so they work the same on both.

Writers own fields: `apply_tenant` merges only the keys it is given and
records `field_manager` as their owner, as Kubernetes server-side apply does,
so an admin's `kubectl` edit and the control API's writes never erase each
other. Only the reconciler writes `status`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

from ..models.plan import Plan
from ..models.tenant import Tenant, TenantStatus

CONTROL_API_FIELD_MANAGER = "livery-control-api"
CLI_FIELD_MANAGER = "livery-cli"


class StoreError(Exception):
    """A store operation failed."""


class NotFound(StoreError):
    """The resource does not exist."""


class Conflict(StoreError):
    """The write lost a race or would take a field another manager owns; re-read and retry."""


class AlreadyExists(Conflict):
    """A create found a resource of that name already there."""


class Invalid(StoreError):
    """The resource breaks a rule; `errors` holds one `field.path: message` line per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Event:
    """An event recorded on a Tenant by the reconciler."""

    type: str
    reason: str
    message: str
    timestamp: str
    count: int = 1


class ResourceStore(abc.ABC):
    """Reads and writes Tenant and Plan resources."""

    @abc.abstractmethod
    async def get_tenant(self, name: str) -> Tenant:
        """Return the Tenant `name` with its status, or raise `NotFound`."""

    @abc.abstractmethod
    async def list_tenants(self) -> list[Tenant]:
        """Return every Tenant, sorted by name."""

    @abc.abstractmethod
    async def apply_tenant(self, name: str, spec_patch: dict[str, Any], field_manager: str) -> Tenant:
        """Create the Tenant or merge `spec_patch` (camelCase keys) into its spec, validated first.

        Raises `Invalid` with every problem when the result breaks a rule, and
        changes nothing in that case.
        """

    @abc.abstractmethod
    async def create_tenant(self, name: str, spec: dict[str, Any], field_manager: str) -> Tenant:
        """Create the Tenant with `spec` (camelCase keys), validated first.

        Raises `AlreadyExists` when a Tenant of that name exists, also one being
        deleted, and `Invalid` when the spec breaks a rule; either way nothing changes.
        """

    @abc.abstractmethod
    async def delete_tenant(self, name: str) -> None:
        """Mark the Tenant for deletion; the reconciler removes it when cleanup is done."""

    @abc.abstractmethod
    async def get_plan(self, name: str) -> Plan:
        """Return the Plan `name`, or raise `NotFound`."""

    @abc.abstractmethod
    async def list_plans(self) -> list[Plan]:
        """Return every Plan, sorted by name."""

    @abc.abstractmethod
    async def apply_plan(self, plan: Plan, field_manager: str) -> Plan:
        """Create or replace a Plan."""

    @abc.abstractmethod
    async def tenant_events(self, name: str) -> list[Event]:
        """Return the events recorded on the Tenant, oldest first."""

    @abc.abstractmethod
    async def read_tenant_secret(self, name: str) -> dict[str, str] | None:
        """Return the tenant's secret data (login key, usage token), or None before provisioning."""

    async def tenant_status(self, name: str) -> TenantStatus | None:
        """Return the Tenant's status, or None when the reconciler has not reported yet."""
        return (await self.get_tenant(name)).status
