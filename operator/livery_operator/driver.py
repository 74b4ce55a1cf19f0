"""The Kubernetes driver: realises a tenant's app, config, secret and routing as objects.

Every write compares first: an object is created when missing and applied
(server-side, field manager `livery-operator`) only when a field the operator
sets differs from the live object, so a drift check of an unchanged tenant
sends reads only. In a namespace this driver created moments ago, objects are
created without a read first, since none can exist yet. A 409 Conflict falls
back to the read.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
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
        # Tenants whose status records a provisioned isolation: their Secret was written by this
        # Tenant, by this or an earlier Livery, even when it lacks the uid mark.
        self.provisioned: set[str] = set()
        # Tenants whose ignored Secret was already logged, so the warning is not repeated every reconcile.
        self._ignored_secrets: set[str] = set()
        # The Secret object `read_secret` last found for each tenant, so the `ensure_secret` of
        # the same reconcile compares against it instead of reading it again.
        self._secrets_read: dict[str, dict[str, Any]] = {}
        # (spec.replicas, status.availableReplicas) of each tenant's Deployment as last applied
        # or read, so watch events caused by the operator's own writes can be skipped.
        self.observed_apps: dict[str, tuple[int, int]] = {}
        self._namespaces_checked: dict[str, float] = {}
        # Namespaces this driver created within NAMESPACE_CHECK_SECONDS, in creation order, each
        # with the live objects written in it since, by (kind, name).
        self._new_namespaces: dict[str, tuple[float, dict[tuple[str, str], dict[str, Any]]]] = {}
        # Tenants whose Secret read found nothing, so their namespace is probably missing too.
        self._secret_missing: set[str] = set()
        # Objects written, by kind and outcome (created, applied, unchanged), for tests and benchmarks.
        self.writes: dict[tuple[str, str], int] = {}

    async def ensure_object(
        self,
        desired: dict[str, Any],
        *,
        probably_missing: bool = False,
        check_existing: Callable[[dict[str, Any]], None] | None = None,
        known_live: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Create `desired` or apply it when a field differs; return the live object.

        Fields that `drift` compares exactly are first put back with a JSON patch, which
        also removes what another field manager added there. With `probably_missing`,
        or in a namespace this driver just created, the create comes without a read
        first, and a 409 Conflict falls back to the read. `check_existing` receives an object
        that already existed before anything is written to it, and may raise. `known_live` is
        the object as just read by the caller, used in place of another read.
        """
        kind = desired["kind"]
        metadata = desired["metadata"]
        key = (kind, metadata["name"])
        written = self._recent_writes(metadata.get("namespace"))
        try:
            if written is not None and key in written:
                live: dict[str, Any] | None = written[key]
            elif known_live is not None:
                live = known_live
            elif written is not None or probably_missing:
                live = None
            else:
                live = await self.client.get(kind, metadata["name"], metadata.get("namespace"))
            if live is None:
                try:
                    live = await self.client.create(desired)
                    self._count(kind, "created")
                    return self._remember(written, key, live)
                except KubeError as exc:
                    if exc.status != 409:
                        raise
                    live = await self.client.get(kind, metadata["name"], metadata.get("namespace")) or {}
            if check_existing is not None:
                check_existing(live)
            restore = drift.restore_operations(live, desired)
            if restore:
                live = await self.client.json_patch(kind, metadata["name"], restore, metadata.get("namespace"))
                self._count(kind, "restored")
            if contains(live, desired):
                if not restore:
                    self._count(kind, "unchanged")
                return self._remember(written, key, live)
            live = await self.client.apply(desired)
            self._count(kind, "applied")
            return self._remember(written, key, live)
        except KubeError as exc:
            if exc.status == 404 and metadata.get("namespace"):
                self._namespaces_checked.pop(desired["metadata"]["labels"].get(naming.TENANT_LABEL, ""), None)
                self._new_namespaces.pop(metadata["namespace"], None)
            raise DriverError(str(exc), temporary=exc.temporary, reason="KubernetesApiError") from exc

    def _recent_writes(self, namespace: str | None) -> dict[tuple[str, str], dict[str, Any]] | None:
        """Return the objects written in `namespace` if this driver created it within NAMESPACE_CHECK_SECONDS.

        Any other object in such a namespace cannot exist unless another client made it
        in between, and then its create gets 409 Conflict and `ensure_object` reads it.
        """
        entry = self._new_namespaces.get(namespace or "")
        if entry is None or time.monotonic() - entry[0] >= NAMESPACE_CHECK_SECONDS:
            return None
        return entry[1]

    @staticmethod
    def _remember(
        written: dict[tuple[str, str], dict[str, Any]] | None, key: tuple[str, str], live: dict[str, Any]
    ) -> dict[str, Any]:
        if written is not None:
            written[key] = live
        return live

    def _forget_old_new_namespaces(self) -> None:
        """Drop the entries older than NAMESPACE_CHECK_SECONDS; the dict is in creation order."""
        now = time.monotonic()
        while self._new_namespaces:
            oldest = next(iter(self._new_namespaces))
            if now - self._new_namespaces[oldest][0] < NAMESPACE_CHECK_SECONDS:
                break
            del self._new_namespaces[oldest]

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
        self._forget_old_new_namespaces()
        created_before = self.writes.get(("Namespace", "created"), 0)
        probably_missing = tenant in self._secret_missing
        self._secret_missing.discard(tenant)
        namespace = await self.ensure_object(
            builders.namespace(tenant, self.tenant_uids.get(tenant)),
            probably_missing=probably_missing,
            check_existing=lambda live: self._check_namespace_owner(tenant, live),
        )
        if (namespace.get("status") or {}).get("phase") == "Terminating":
            raise DriverError(
                f"namespace {naming.namespace_name(tenant)} is still terminating; retrying when it is gone",
                reason="NamespaceTerminating",
            )
        self._namespaces_checked[tenant] = time.monotonic()
        if self.writes.get(("Namespace", "created"), 0) > created_before:
            name = naming.namespace_name(tenant)
            self._new_namespaces.pop(name, None)  # re-inserted last, keeping the dict in creation order
            self._new_namespaces[name] = (time.monotonic(), {})

    def _check_namespace_owner(self, tenant: str, live: dict[str, Any]) -> None:
        if builders.owned_by(live, tenant, self.tenant_uids.get(tenant)):
            return
        name = naming.namespace_name(tenant)
        raise DriverError(
            f"namespace {name} exists but was not made by Livery for this Tenant (its labels or "
            f"{builders.TENANT_UID_ANNOTATION} annotation differ); nothing is written to it. Delete or "
            "rename that namespace, or give the Tenant another name",
            reason="NamespaceNotOwned",
        )

    async def read_secret(self, tenant: str) -> dict[str, str] | None:
        try:
            obj = await self.client.get("Secret", naming.APP_SECRET_NAME, naming.namespace_name(tenant))
        except KubeError as exc:
            raise DriverError(str(exc), temporary=exc.temporary, reason="KubernetesApiError") from exc
        if obj is None:
            self._secret_missing.add(tenant)
            self._secrets_read.pop(tenant, None)
            return None
        self._secret_missing.discard(tenant)
        self._secrets_read[tenant] = obj
        # A new Tenant trusts only credentials marked with its uid, so planted ones or those left by
        # an earlier Tenant of the name are ignored and it is treated as new. A provisioned one
        # also keeps an unmarked Secret (written before the mark existed); the next write marks it.
        require_mark = tenant not in self.provisioned
        if not builders.owned_by(obj, tenant, self.tenant_uids.get(tenant), require_mark=require_mark):
            if tenant not in self._ignored_secrets:
                self._ignored_secrets.add(tenant)
                logger.warning("tenant %s: ignoring a Secret %s that this Tenant did not write", tenant, naming.APP_SECRET_NAME)
            return None
        self._ignored_secrets.discard(tenant)
        return builders.decode_secret(obj)

    async def ensure_secret(self, tenant: str, data: dict[str, str]) -> None:
        """Write the app's Secret and, beside it, the control API's subset of its keys."""
        await self.ensure_namespace(tenant)
        uid = self.tenant_uids.get(tenant)
        await asyncio.gather(
            self.ensure_object(builders.secret(tenant, data, uid), known_live=self._secrets_read.pop(tenant, None)),
            self.ensure_object(builders.control_secret(tenant, data, uid)),
        )

    async def ensure_config(self, tenant: str, config: dict[str, Any]) -> None:
        await self.ensure_namespace(tenant)
        await self.ensure_object(builders.config_map(tenant, config))

    async def ensure_app(self, spec: AppSpec) -> AppState:
        """Apply the app's objects; the Deployment goes last, after the quota, limits and policy that govern its pods.

        The objects before it do not depend on each other, so they are applied concurrently.
        """
        await self.ensure_namespace(spec.tenant)
        *governing, deployment = builders.app_objects(spec, self.settings)
        await asyncio.gather(*(self.ensure_object(obj) for obj in governing))
        live = await self.ensure_object(deployment)
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
        # Routing is the last step of a reconcile, so the objects kept for its later steps can go.
        self._new_namespaces.pop(namespace, None)

    async def _remove_suspension_service(self, namespace: str) -> None:
        """Delete the suspension Service if it exists; a read comes first so a routine check sends no write."""
        written = self._recent_writes(namespace)
        if written is not None and ("Service", builders.SUSPENSION_SERVICE_NAME) not in written:
            return  # nothing made it in a namespace this new
        if await self.client.get("Service", builders.SUSPENSION_SERVICE_NAME, namespace) is not None:
            await self.client.delete("Service", builders.SUSPENSION_SERVICE_NAME, namespace)

    async def remove_tenant(self, tenant: str) -> None:
        namespace = naming.namespace_name(tenant)
        try:
            live = await self.client.get("Namespace", namespace)
        except KubeError as exc:
            raise DriverError(str(exc), temporary=exc.temporary, reason="KubernetesApiError") from exc
        if live is not None and not builders.owned_by(live, tenant, self.tenant_uids.get(tenant)):
            # Another team's namespace of that name: nothing in it is this Tenant's to delete.
            logger.warning("tenant %s: namespace %s is not Livery's for this Tenant; left as it is", tenant, namespace)
            self._forget_tenant(tenant, namespace)
            return
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
            await self.client.delete("Secret", naming.CONTROL_SECRET_NAME, namespace)
            await self.client.delete("Namespace", namespace)
        except KubeError as exc:
            raise DriverError(str(exc), temporary=exc.temporary, reason="KubernetesApiError") from exc
        self._forget_tenant(tenant, namespace)

    def _forget_tenant(self, tenant: str, namespace: str) -> None:
        self.tenant_uids.pop(tenant, None)
        self.provisioned.discard(tenant)
        self._ignored_secrets.discard(tenant)
        self._secrets_read.pop(tenant, None)
        self.observed_apps.pop(tenant, None)
        self._namespaces_checked.pop(tenant, None)
        self._new_namespaces.pop(namespace, None)

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


    async def record_events(self, tenant: str, events: list[tuple[EventType, str, str]]) -> list[BaseException | None]:
        """Create the Events concurrently, because each Event is its own object and their order does not matter."""
        results = await asyncio.gather(
            *(self.record_event(tenant, event_type, reason, message) for event_type, reason, message in events),
            return_exceptions=True,
        )
        return [result if isinstance(result, BaseException) else None for result in results]


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
