"""kopf handlers that drive the `TenantReconciler`.

- Tenant created, changed or seen at start-up: reconcile. A temporary failure
  raises `kopf.TemporaryError` with a growing delay. A spec that can never work
  raises `kopf.PermanentError`.
- Tenant deleted: the finalizer handler applies the deletion policy. It lets the
  Tenant go only when the database step succeeded.
- Every `resync_seconds`: one loop reconciles every tenant again, which
  re-asserts every object (drift).
- A managed Deployment deleted or changed in replicas: reconcile its tenant, so
  AppReady follows the available replicas and a deleted app comes back at once.
- A Plan created, changed or deleted: reconcile every tenant on it.

kopf keeps its progress and diff-base in `livery.dev/` annotations, never in
`status`, because the API server prunes status fields the CRD does not declare.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from livery import naming
from livery.models.base import API_GROUP, API_VERSION

from .kube import KubeError
from .reconciler import TenantReconciler

logger = logging.getLogger("livery.operator")

ANNOTATION_PREFIX = "livery.dev"
FINALIZER = "livery.dev/finalizer"
# Tenants reconciled at once after a Plan change.
PLAN_FANOUT = 20


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """Keep kopf's bookkeeping in annotations and leave events to the reconcile steps."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = FINALIZER
    # The steps post one event per condition change; kopf's own events would repeat them.
    settings.posting.level = logging.WARNING
    settings.networking.request_timeout = 60
    settings.watching.server_timeout = 300


def build_registry(
    reconciler: TenantReconciler,
    *,
    resync_seconds: float,
    connection: kopf.ConnectionInfo | None = None,
) -> kopf.OperatorRegistry:
    """Register every handler on a fresh registry bound to `reconciler`."""
    registry = kopf.OperatorRegistry()
    tenants = (API_GROUP, API_VERSION, "tenants")
    plans = (API_GROUP, API_VERSION, "plans")
    managed = {naming.MANAGED_BY_LABEL: naming.MANAGED_BY}

    resync_tasks: list[asyncio.Task[None]] = []

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings)
        await load_directory(reconciler)
        # One loop for every tenant instead of a kopf timer per tenant, which costs a task each.
        resync_tasks.append(asyncio.create_task(resync_forever(reconciler, resync_seconds), name="livery-resync"))

    if connection is not None:

        @kopf.on.login(registry=registry)
        async def login(**_: Any) -> kopf.ConnectionInfo:
            return connection

    @kopf.on.cleanup(registry=registry)
    async def close(**_: Any) -> None:
        for task in resync_tasks:
            task.cancel()
        await asyncio.gather(*resync_tasks, return_exceptions=True)
        await reconciler.client.close()

    # kopf 1.45 runs on-event handlers before the create, update and resume handlers of the same event
    # (`process_resource_causes`), so a reconcile sees the claims of the event that triggered it.
    @kopf.on.event(*tenants, id="tenant_seen", registry=registry)
    async def tenant_seen(event: dict[str, Any], name: str, body: Any, **_: Any) -> None:
        if event.get("type") == "DELETED":
            reconciler.directory.remove_tenant(name)
        else:
            reconciler.directory.add_tenant(body)

    @kopf.on.event(*plans, id="plan_seen", registry=registry)
    async def plan_seen(event: dict[str, Any], name: str, body: Any, **_: Any) -> None:
        if event.get("type") == "DELETED":
            reconciler.directory.remove_plan(name)
        else:
            reconciler.directory.add_plan(body)

    @kopf.on.resume(*tenants, id="reconcile", registry=registry)
    @kopf.on.create(*tenants, id="reconcile", registry=registry)
    @kopf.on.update(*tenants, id="reconcile", registry=registry)
    async def reconcile(name: str, reason: str, retry: int, **_: Any) -> None:
        result = await reconciler.reconcile(name, str(reason))
        if result is None:
            return
        if result.permanent_error is not None:
            raise kopf.PermanentError(result.permanent_error)
        if result.retry_after is not None:
            raise kopf.TemporaryError(_failure_summary(result), delay=backoff(retry, result.retry_after))

    @kopf.on.delete(*tenants, id="finalize", registry=registry)
    async def finalize(name: str, retry: int, **_: Any) -> None:
        result = await reconciler.finalize(name)
        if result is not None and not result.finished:
            raise kopf.TemporaryError(_failure_summary(result), delay=backoff(retry, result.retry_after or 15))


    @kopf.on.event("apps", "v1", "deployments", id="deployment_changed", labels=managed, registry=registry)
    async def deployment_changed(event: dict[str, Any], body: Any, labels: Any, **_: Any) -> None:
        tenant = labels.get(naming.TENANT_LABEL)
        kind = event.get("type")
        if not tenant or kind is None:
            return
        # Events of the operator's own writes change no replica count; skip them.
        if kind != "DELETED" and not reconciler.driver.app_changed(tenant, dict(body)):
            return
        await _reconcile_quietly(reconciler, tenant, "deployment")

    # No resume handler: at start-up every tenant is reconciled by its own resume handler, and kopf
    # reports a Plan edited while the operator was down as an update.
    @kopf.on.create(*plans, id="plan_changed", registry=registry)
    @kopf.on.update(*plans, id="plan_changed", registry=registry)
    @kopf.on.delete(*plans, id="plan_deleted", optional=True, registry=registry)
    async def plan_changed(name: str, reason: str, meta: Any, status: Any, **_: Any) -> None:
        members = reconciler.directory.tenants_on_plan(name)
        await _reconcile_each(reconciler, members, "plan")
        logger.info("plan %s: reconciled %d tenants", name, len(members))
        if reason != "delete":
            # NOTE: the count is refreshed on Plan events only, so it lags while tenants change plans.
            plan_status = {"tenants": len(members), "observedGeneration": meta.get("generation")}
            if dict(status or {}) != plan_status:
                try:
                    await reconciler.client.merge_patch("Plan", name, {"status": plan_status}, subresource="status")
                except KubeError as exc:
                    # Best effort: a failure here must not re-run the tenant reconciles above.
                    logger.warning("plan %s: could not write status: %s", name, exc)

    return registry


async def load_directory(reconciler: TenantReconciler) -> None:
    """List every Tenant and Plan once, so the first reconciles see every tenant's host claims."""
    for body in await reconciler.client.list("Plan"):
        reconciler.directory.add_plan(body)
    for body in await reconciler.client.list("Tenant"):
        reconciler.directory.add_tenant(body)
    reconciler.directory_loaded = True
    logger.info("found %d tenants at start-up", len(reconciler.directory.tenant_names()))


async def resync_forever(reconciler: TenantReconciler, interval: float) -> None:
    """Reconcile every known tenant once per `interval` seconds, re-asserting every object."""
    while True:
        await asyncio.sleep(interval)
        names = reconciler.directory.tenant_names()
        started = asyncio.get_running_loop().time()
        await _reconcile_each(reconciler, names, "resync")
        elapsed = asyncio.get_running_loop().time() - started
        if elapsed > interval:
            logger.warning("drift check of %d tenants took %.1f s, longer than %.1f s", len(names), elapsed, interval)


async def _reconcile_each(reconciler: TenantReconciler, names: list[str], trigger: str) -> None:
    """Reconcile the tenants `names`, PLAN_FANOUT at a time.

    A fixed set of workers takes the names in turn, so 10,000 tenants cost PLAN_FANOUT
    tasks instead of one task each.
    """
    pending = iter(names)

    async def work() -> None:
        for tenant in pending:
            await _reconcile_quietly(reconciler, tenant, trigger)

    await asyncio.gather(*(work() for _ in range(min(PLAN_FANOUT, len(names)))))


async def _reconcile_quietly(reconciler: TenantReconciler, tenant: str, trigger: str) -> None:
    """Reconcile from the drift loop or a watch; a failure is logged and retried on the next trigger."""
    try:
        await reconciler.reconcile(tenant, trigger)
    except Exception:  # noqa: BLE001 - a timer or watch must keep running
        logger.exception("tenant %s: %s reconcile failed", tenant, trigger)


def backoff(retry: int, limit: float) -> float:
    """Return the delay before retry number `retry`: 1, 2, 4, ... seconds, at most `limit`."""
    return min(float(2 ** min(retry, 10)), limit)


def _failure_summary(result: Any) -> str:
    for condition in result.status.conditions or []:
        if condition.type == "Ready":
            return f"{condition.reason}: {condition.message}"
    return "reconcile incomplete"
