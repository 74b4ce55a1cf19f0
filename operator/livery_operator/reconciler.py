"""Run the shared reconcile steps for Tenants stored in the Kubernetes API.

`TenantReconciler` reads a Tenant fresh from the API and its Plan from the
watch-fed `TenantDirectory`, runs `livery.reconcile`, and writes the status
subresource only when it changed.
One lock per tenant keeps the change handlers, the drift timer and the
Deployment watch from reconciling the same tenant at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from livery import naming
from livery.models.errors import format_validation_error
from livery.models.plan import Plan
from livery.models.tenant import Tenant, TenantMeta, TenantSpec, TenantStatus
from livery.reconcile import ReconcileResult, ReconcileSettings, finalize_tenant, reconcile_tenant
from livery.reconcile.conditions import make_condition
from livery.reconcile.context import Provisioner, SnapshotStorage

from .directory import TenantDirectory
from .driver import KubernetesDriver
from .kube import KubeClient, KubeError
from .metrics import RECONCILES, MetricsObserver

logger = logging.getLogger("livery.operator")


def parse_tenant(body: Mapping[str, Any]) -> Tenant:
    """Build the Tenant model from an API object; a status with unknown fields is dropped."""
    data = {key: body[key] for key in ("apiVersion", "kind", "metadata", "spec") if key in body}
    data["metadata"] = dict(body.get("metadata") or {})
    tenant = Tenant.model_validate(data)
    raw_status = body.get("status")
    if raw_status:
        try:
            tenant.status = TenantStatus.model_validate(raw_status)
        except ValidationError:
            logger.warning("tenant %s: ignoring a status that does not match the schema", tenant.name)
    return tenant


def minimal_tenant(body: Mapping[str, Any]) -> Tenant:
    """Build a Tenant from an invalid object with only what deletion needs, so it can still go.

    The deletion policy is kept when valid and is otherwise Retain, which drops nothing.
    """
    spec = body.get("spec") or {}
    policy = spec.get("deletionPolicy") if spec.get("deletionPolicy") in ("Retain", "Delete", "Snapshot") else "Retain"
    isolation = spec.get("isolation") if spec.get("isolation") in ("database", "schema", "shared") else None
    plan = spec.get("plan") if isinstance(spec.get("plan"), str) and spec.get("plan") else "unknown"
    metadata = body.get("metadata") or {}
    return Tenant.model_construct(
        metadata=TenantMeta.model_construct(name=metadata.get("name"), uid=metadata.get("uid"), generation=metadata.get("generation")),
        spec=TenantSpec.model_construct(
            display_name=metadata.get("name"), plan=plan, isolation=isolation, deletion_policy=policy, limits=None, domains=None
        ),
        status=None,
    )


class TenantReconciler:
    def __init__(
        self,
        client: KubeClient,
        driver: KubernetesDriver,
        provisioner: Provisioner,
        settings: ReconcileSettings,
        storage: SnapshotStorage | None = None,
        max_concurrent: int = 16,
    ) -> None:
        self.client = client
        self.driver = driver
        self.provisioner = provisioner
        self.settings = settings
        self.storage = storage
        self.observer = MetricsObserver()
        self._locks: dict[str, asyncio.Lock] = {}
        # Bounds the reconciles in flight, and so the connections to the tenant database server.
        self._slots = asyncio.Semaphore(max_concurrent)
        # Every Tenant's host claims and plan, and every Plan. The drift loop reconciles all those tenants.
        # Until the start-up handler has filled it, Plans are read from the API and no claims are known.
        self.directory = TenantDirectory(settings.base_domain)
        self.directory_loaded = False
        # Wall time of each tenant's last reconcile, measured inside its slot (no queueing), in seconds.
        self.durations: dict[str, float] = {}

    def lock(self, tenant: str) -> asyncio.Lock:
        return self._locks.setdefault(tenant, asyncio.Lock())

    async def read_plan(self, name: str) -> Plan | None:
        """Return the Plan from the directory, or read it from the API before the directory is loaded."""
        if self.directory_loaded:
            body: Mapping[str, Any] | None = self.directory.plan(name)
        else:
            body = await self.client.get("Plan", name)
        if body is None:
            return None
        data = {key: body[key] for key in ("apiVersion", "kind", "metadata", "spec") if key in body}
        return Plan.model_validate(data)

    async def reconcile(self, name: str, trigger: str) -> ReconcileResult | None:
        """Reconcile the Tenant `name` and persist its status; None when it is gone or being deleted."""
        async with self.lock(name), self._slots:
            started = time.perf_counter()
            body = await self.client.get("Tenant", name)
            if body is None:
                self.directory.remove_tenant(name)
                return None
            if (body.get("metadata") or {}).get("deletionTimestamp"):
                return None
            RECONCILES.labels(trigger=trigger).inc()
            try:
                tenant = parse_tenant(body)
            except ValidationError as exc:
                return await self.reject_invalid(name, body, exc)
            self._remember_uid(tenant)
            plan = await self.read_plan(tenant.spec.plan)
            result = await reconcile_tenant(
                tenant,
                plan,
                driver=self.driver,
                provisioner=self.provisioner,
                settings=self.settings,
                claimed_hosts=self.directory.holders(naming.tenant_hosts(tenant, self.settings.base_domain)),
                storage=self.storage,
                observer=self.observer,
            )
            await self.write_status(name, body.get("status"), result.status)
            self.durations[name] = time.perf_counter() - started
            self.observer.set_phase(name, result.status.phase)
            return result

    async def reject_invalid(self, name: str, body: Mapping[str, Any], exc: ValidationError) -> ReconcileResult:
        """Report a Tenant the API server admitted but the models reject; nothing is provisioned."""
        problems = "; ".join(format_validation_error(exc))
        message = f"the Tenant is invalid, so nothing is provisioned: {problems}"
        logger.warning("tenant %s: %s", name, message)
        previous = None
        if body.get("status"):
            try:
                previous = TenantStatus.model_validate(body["status"]).condition("Ready")
            except ValidationError:
                previous = None
        generation = (body.get("metadata") or {}).get("generation")
        status = TenantStatus(
            phase="Failed",
            conditions=[make_condition("Ready", False, "InvalidSpec", message[:32000], generation, previous)],
            observed_generation=generation,
        )
        await self.write_status(name, body.get("status"), status)
        self.observer.set_phase(name, "Failed")
        return ReconcileResult(status=status, permanent_error=message)

    async def finalize(self, name: str) -> ReconcileResult | None:
        """Apply the deletion policy of the Tenant `name`; None when it is already gone."""
        async with self.lock(name), self._slots:
            body = await self.client.get("Tenant", name)
            if body is None:
                return None
            try:
                tenant = parse_tenant(body)
            except ValidationError:
                tenant = minimal_tenant(body)
            self._remember_uid(tenant)
            plan = await self.read_plan(tenant.spec.plan)
            result = await finalize_tenant(
                tenant,
                plan,
                driver=self.driver,
                provisioner=self.provisioner,
                storage=self.storage,
                observer=self.observer,
            )
            await self.write_status(name, body.get("status"), result.status)
        if result.finished:
            self.directory.remove_tenant(name)
            self._locks.pop(name, None)
            self.durations.pop(name, None)
            self.observer.set_phase(name, None)
        else:
            self.observer.set_phase(name, result.status.phase)
        return result

    async def write_status(self, name: str, live: Mapping[str, Any] | None, status: TenantStatus) -> None:
        """Patch the status subresource when it differs from the live one."""
        desired = status.to_json()
        if dict(live or {}) == desired:
            return
        # Keys the new status leaves out are set to null, so the merge patch removes them.
        patch: dict[str, Any] = {key: None for key in (live or {}) if key not in desired}
        patch.update(desired)
        try:
            await self.client.merge_patch("Tenant", name, {"status": patch}, subresource="status")
        except KubeError as exc:
            if exc.status != 404:
                raise

    def _remember_uid(self, tenant: Tenant) -> None:
        if tenant.metadata.uid:
            self.driver.tenant_uids[tenant.name] = tenant.metadata.uid
        if tenant.status is not None and tenant.status.isolation:
            self.driver.provisioned.add(tenant.name)
