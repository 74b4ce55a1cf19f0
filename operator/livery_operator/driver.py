"""The Kubernetes driver: realises a tenant's app, config, secret and routing as objects.

Every write compares first: an object is created when missing and applied
(server-side, field manager `livery-operator`) only when a field the operator
sets differs from the live object, so a drift check of an unchanged tenant
sends reads only.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from livery import naming
from livery.drivers.base import AppSpec, AppState, Driver, DriverError, EventType, RouteSpec

from . import builders, drift
from .kube import KubeClient, KubeError
from .settings import OperatorSettings

logger = logging.getLogger("livery.operator.driver")

EVENT_NAMESPACE = "default"
NAMESPACE_CHECK_SECONDS = 5.0
EVENT_MESSAGE_LIMIT = 1024
# Kinds deleted one by one before the namespace, in this order, when a tenant goes.
TENANT_KINDS = ("Ingress", "Deployment", "Service", "NetworkPolicy", "LimitRange", "ResourceQuota", "ConfigMap", "Secret")


def contains(live: Any, desired: Any) -> bool:
    """Tell whether every field of `desired` has the same value in `live`.

    Fields the API server adds (defaults, status, metadata) are ignored; lists must
    match item by item.

    NOTE: a quantity the API server rewrites in canonical form (`0.5` CPU becomes `500m`)
    never compares equal, so an object with one is re-applied on every reconcile.
    """
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(key in live and contains(live[key], value) for key, value in desired.items())
    if isinstance(desired, list):
        return isinstance(live, list) and len(live) == len(desired) and all(map(contains, live, desired))
    return live == desired


class KubernetesDriver(Driver):
    name = "kubernetes"

    def __init__(self, client: KubeClient, settings: OperatorSettings) -> None:
        self.client = client
        self.settings = settings
        # Tenant uids, so events link to the Tenant in `kubectl describe`.
        self.tenant_uids: dict[str, str] = {}
        # (spec.replicas, status.availableReplicas) of each tenant's Deployment as last applied
        # or read, so watch events caused by the operator's own writes can be skipped.
        self.observed_apps: dict[str, tuple[int, int]] = {}
        self._namespaces_checked: dict[str, float] = {}
        # Objects written, by kind and outcome (created, applied, unchanged), for tests and benchmarks.
        self.writes: dict[tuple[str, str], int] = {}

    async def ensure_object(self, desired: dict[str, Any]) -> dict[str, Any]:
        """Create `desired` or apply it when a field differs; return the live object.

        Fields that `drift` compares exactly are first put back with a JSON patch, which
        also removes what another field manager added there.
        """
        kind = desired["kind"]
        metadata = desired["metadata"]
        try:
            live = await self.client.get(kind, metadata["name"], metadata.get("namespace"))
            if live is None:
                try:
                    live = await self.client.create(desired)
                    self._count(kind, "created")
                    return live
                except KubeError as exc:
                    if exc.status != 409:
                        raise
                    live = await self.client.get(kind, metadata["name"], metadata.get("namespace")) or {}
            restore = drift.restore_operations(live, desired)
            if restore:
                live = await self.client.json_patch(kind, metadata["name"], restore, metadata.get("namespace"))
                self._count(kind, "restored")
            if contains(live, desired):
                if not restore:
                    self._count(kind, "unchanged")
                return live
            live = await self.client.apply(desired)
            self._count(kind, "applied")
            return live
        except KubeError as exc:
            if exc.status == 404 and metadata.get("namespace"):
                self._namespaces_checked.pop(desired["metadata"]["labels"].get(naming.TENANT_LABEL, ""), None)
            raise DriverError(str(exc), temporary=exc.temporary, reason="KubernetesApiError") from exc

    def _count(self, kind: str, outcome: str) -> None:
        self.writes[(kind, outcome)] = self.writes.get((kind, outcome), 0) + 1

    async def ensure_namespace(self, tenant: str) -> None:
        """Create or check the tenant's namespace, at most once per `NAMESPACE_CHECK_SECONDS`.

        One reconcile calls this from four steps. A namespace deleted in between makes the
        next write fail with 404, which clears the memory so the following reconcile recreates it.
        """
        checked = self._namespaces_checked.get(tenant)
        if checked is not None and time.monotonic() - checked < NAMESPACE_CHECK_SECONDS:
            return
        namespace = await self.ensure_object(builders.namespace(tenant))
        if (namespace.get("status") or {}).get("phase") == "Terminating":
            raise DriverError(
                f"namespace {naming.namespace_name(tenant)} is still terminating; retrying when it is gone",
                reason="NamespaceTerminating",
            )
        self._namespaces_checked[tenant] = time.monotonic()

    async def read_secret(self, tenant: str) -> dict[str, str] | None:
        try:
            obj = await self.client.get("Secret", naming.APP_SECRET_NAME, naming.namespace_name(tenant))
        except KubeError as exc:
            raise DriverError(str(exc), temporary=exc.temporary, reason="KubernetesApiError") from exc
        return None if obj is None else builders.decode_secret(obj)

    async def ensure_secret(self, tenant: str, data: dict[str, str]) -> None:
        await self.ensure_namespace(tenant)
        await self.ensure_object(builders.secret(tenant, data))

    async def ensure_config(self, tenant: str, config: dict[str, Any]) -> None:
        await self.ensure_namespace(tenant)
        await self.ensure_object(builders.config_map(tenant, config))

    async def ensure_app(self, spec: AppSpec) -> AppState:
        await self.ensure_namespace(spec.tenant)
        live: dict[str, Any] = {}
        for obj in builders.app_objects(spec, self.settings):
            live = await self.ensure_object(obj)
        self.observed_apps[spec.tenant] = app_fingerprint(live)
        return deployment_state(live, spec.replicas)

    def app_changed(self, tenant: str, deployment: dict[str, Any]) -> bool:
        """Tell whether a Deployment differs in replicas from what the last reconcile saw."""
        return self.observed_apps.get(tenant) != app_fingerprint(deployment)

    async def ensure_routing(self, route: RouteSpec) -> None:
        """Point the Ingress at the app, or at the suspension Service while the tenant is suspended.

        The suspension Service is made before the Ingress names it and removed only after
        the Ingress no longer does, so no request meets a missing backend.
        """
        await self.ensure_namespace(route.tenant)
        namespace = naming.namespace_name(route.tenant)
        try:
            if not route.hosts:
                await self.client.delete("Ingress", naming.APP_NAME, namespace)
                await self._remove_suspension_service(namespace)
                return
            if route.suspended:
                await self.ensure_object(builders.suspension_service(route.tenant, self.settings))
            await self.ensure_object(builders.ingress(route, self.settings))
            if not route.suspended:
                await self._remove_suspension_service(namespace)
        except KubeError as exc:
            raise DriverError(str(exc), temporary=exc.temporary, reason="KubernetesApiError") from exc

    async def _remove_suspension_service(self, namespace: str) -> None:
        """Delete the suspension Service if it exists; a read comes first so a routine check sends no write."""
        if await self.client.get("Service", builders.SUSPENSION_SERVICE_NAME, namespace) is not None:
            await self.client.delete("Service", builders.SUSPENSION_SERVICE_NAME, namespace)

    async def remove_tenant(self, tenant: str) -> None:
        namespace = naming.namespace_name(tenant)
        names = {
            "Ingress": naming.APP_NAME,
            "Deployment": naming.APP_NAME,
            "Service": naming.APP_NAME,
            "NetworkPolicy": builders.NETWORK_POLICY_NAME,
            "LimitRange": builders.LIMIT_RANGE_NAME,
            "ResourceQuota": builders.QUOTA_NAME,
            "ConfigMap": naming.APP_CONFIG_NAME,
            "Secret": naming.APP_SECRET_NAME,
        }
        try:
            for kind in TENANT_KINDS:
                await self.client.delete(kind, names[kind], namespace)
            await self.client.delete("Service", builders.SUSPENSION_SERVICE_NAME, namespace)
            await self.client.delete("Namespace", namespace)
        except KubeError as exc:
            raise DriverError(str(exc), temporary=exc.temporary, reason="KubernetesApiError") from exc
        self.tenant_uids.pop(tenant, None)
        self.observed_apps.pop(tenant, None)
        self._namespaces_checked.pop(tenant, None)

    async def record_event(self, tenant: str, event_type: EventType, reason: str, message: str) -> None:
        timestamp = _now()
        involved: dict[str, Any] = {"apiVersion": "livery.dev/v1alpha1", "kind": "Tenant", "name": tenant}
        if tenant in self.tenant_uids:
            involved["uid"] = self.tenant_uids[tenant]
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{tenant}.{uuid.uuid4().hex[:16]}", "namespace": EVENT_NAMESPACE},
            "involvedObject": involved,
            "reason": reason,
            "message": message[:EVENT_MESSAGE_LIMIT],
            "type": event_type,
            "source": {"component": "livery-operator"},
            "reportingComponent": "livery-operator",
            "firstTimestamp": timestamp,
            "lastTimestamp": timestamp,
            "count": 1,
        }
        try:
            await self.client.create(event)
        except KubeError as exc:
            raise DriverError(str(exc), temporary=exc.temporary, reason="KubernetesApiError") from exc


def app_fingerprint(deployment: dict[str, Any]) -> tuple[int, int]:
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    return int(spec.get("replicas") or 0), int(status.get("availableReplicas") or 0)


def deployment_state(live: dict[str, Any], desired: int) -> AppState:
    """Read the Deployment's available replicas; a rollout in progress is not ready."""
    status = live.get("status") or {}
    available = int(status.get("availableReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    generation = (live.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if desired == 0:
        return AppState(desired_replicas=0, available_replicas=available)
    if generation is not None and observed is not None and observed < generation:
        return AppState(desired, min(available, updated), "the Deployment controller has not seen the latest spec yet")
    if updated and updated < desired:
        return AppState(desired, min(available, updated), f"rolling out: {updated} of {desired} replicas updated")
    return AppState(desired_replicas=desired, available_replicas=available)


def _now() -> str:
    from livery.reconcile.conditions import now_rfc3339

    return now_rfc3339()
