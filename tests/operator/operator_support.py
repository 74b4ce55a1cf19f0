"""Helpers of the operator tests: shipped plans, unique tenant names and an in-memory driver.

`MemoryDriver` keeps what each call stores and can crash after a number of
calls, standing in for an operator killed between two steps.
"""

from __future__ import annotations

import copy
import itertools
import os
from pathlib import Path
from typing import Any

import yaml

from livery.drivers.base import AppSpec, AppState, Driver, EventType, RouteSpec
from livery.models.plan import Plan

PLANS_DIR = Path(__file__).resolve().parents[2] / "livery" / "plans"
PLAN_OF_ISOLATION = {"shared": "free", "schema": "pro", "database": "enterprise"}
_serial = itertools.count(1)


def load_plan(name: str) -> Plan:
    return Plan.model_validate(yaml.safe_load((PLANS_DIR / f"{name}.yaml").read_text()))


# Every name handed out, so the session can drop what the tests left in PostgreSQL.
CREATED_NAMES: list[str] = []


def unique_name(prefix: str) -> str:
    """Return a tenant name no other test in this session uses."""
    name = f"{prefix}-{os.getpid() % 1000}-{next(_serial)}"
    CREATED_NAMES.append(name)
    return name


def tenant_manifest(name: str, plan: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "livery.dev/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": name},
        "spec": {"displayName": f"Tenant {name}", "plan": plan, "owner": {"email": f"owner@{name}.example.com"}, **spec},
    }


class Crash(BaseException):
    """Raised by `MemoryDriver` to stop a reconcile dead, as a killed process would."""


class MemoryDriver(Driver):
    name = "memory"

    def __init__(self, *, available: bool = True) -> None:
        self.secrets: dict[str, dict[str, str]] = {}
        self.configs: dict[str, dict[str, Any]] = {}
        self.apps: dict[str, AppSpec] = {}
        self.routes: dict[str, RouteSpec] = {}
        self.events: list[tuple[str, str, str, str]] = []
        self.available = available
        self.calls = 0
        self.crash_after: int | None = None
        self.secret_writes = 0

    def _tick(self) -> None:
        self.calls += 1
        if self.crash_after is not None and self.calls > self.crash_after:
            raise Crash(f"crashed before call {self.calls}")

    async def read_secret(self, tenant: str) -> dict[str, str] | None:
        self._tick()
        stored = self.secrets.get(tenant)
        return None if stored is None else dict(stored)

    async def ensure_secret(self, tenant: str, data: dict[str, str]) -> None:
        self._tick()
        self.secrets[tenant] = dict(data)
        self.secret_writes += 1

    async def ensure_config(self, tenant: str, config: dict[str, Any]) -> None:
        self._tick()
        self.configs[tenant] = copy.deepcopy(config)

    async def ensure_app(self, spec: AppSpec) -> AppState:
        self._tick()
        self.apps[spec.tenant] = spec
        return AppState(desired_replicas=spec.replicas, available_replicas=spec.replicas if self.available else 0)

    async def ensure_routing(self, route: RouteSpec) -> None:
        self._tick()
        self.routes[route.tenant] = route

    async def remove_tenant(self, tenant: str) -> None:
        self._tick()
        for store in (self.secrets, self.configs, self.apps, self.routes):
            store.pop(tenant, None)

    async def record_event(self, tenant: str, event_type: EventType, reason: str, message: str) -> None:
        self.events.append((tenant, event_type, reason, message))


class FlakyProvisioner:
    """The real provisioner, made to fail for chosen tenants the way an unreachable server does.

    `unreachable` tenants get the real connection error of a server on a closed
    port; `fail_once` tenants get it on their first call only. Every call is counted.
    """

    def __init__(self, real: Any, unreachable_url: str) -> None:
        self.real = real
        self.unreachable_url = unreachable_url
        self.unreachable: set[str] = set()
        self.fail_once: set[str] = set()
        self.calls: dict[tuple[str, str], int] = {}

    def _count(self, method: str, tenant: str) -> None:
        self.calls[(method, tenant)] = self.calls.get((method, tenant), 0) + 1

    async def _maybe_fail(self, tenant: str) -> None:
        if tenant in self.fail_once:
            self.fail_once.discard(tenant)
        elif tenant not in self.unreachable:
            return
        from livery.database import DatabaseProvisioner

        await DatabaseProvisioner(self.unreachable_url, connect_timeout=1).database_exists(tenant, "database")

    async def ensure_database(self, tenant: str, isolation: str, password: str) -> Any:
        self._count("ensure_database", tenant)
        await self._maybe_fail(tenant)
        return await self.real.ensure_database(tenant, isolation, password)

    async def drop_database(self, tenant: str, isolation: str) -> None:
        self._count("drop_database", tenant)
        await self._maybe_fail(tenant)
        await self.real.drop_database(tenant, isolation)

    async def snapshot(self, tenant: str, isolation: str, destination: Path) -> Path:
        self._count("snapshot", tenant)
        return await self.real.snapshot(tenant, isolation, destination)

    async def provisioned(self, tenant: str, isolation: str) -> bool:
        self._count("provisioned", tenant)
        await self._maybe_fail(tenant)
        return await self.real.provisioned(tenant, isolation)

    async def database_exists(self, tenant: str, isolation: str) -> bool:
        return await self.real.database_exists(tenant, isolation)


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.1, message: str = "") -> Any:
    """Poll `predicate` until it returns a truthy value; fail with `message` after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message or predicate}; last value {last!r}")
