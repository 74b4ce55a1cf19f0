"""The local reconcile loop: the embedded runtime's replacement for kopf.

It runs `livery.reconcile.reconcile_tenant` (or `finalize_tenant` for a Tenant
marked for deletion) with the local driver whenever something may have
changed:

- a NOTIFY from the local store (a Tenant or Plan was written);
- a tenant app became ready or stopped (the driver's callback);
- a retry or recheck delay returned by the previous run ran out;
- every `resync_seconds`, for every tenant, to repair drift.

Each tenant is reconciled by at most one worker at a time; a change that
arrives while it runs queues one more run, never two.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from livery.drivers.local import LocalDriver
from livery.models.plan import Plan
from livery.models.tenant import Tenant
from livery.reconcile import ReconcileResult, ReconcileSettings, finalize_tenant, reconcile_tenant
from livery.reconcile.hosts import HostClaim, assign_hosts, tenant_host_claims
from livery.store.base import NotFound
from livery.store.local import LocalStore

logger = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 4
DEFAULT_RESYNC_SECONDS = 30.0
# Delay before retrying a tenant whose reconcile raised an unexpected error.
ERROR_RETRY_SECONDS = 5.0
LISTEN_TIMEOUT_SECONDS = 30.0


def claimed_hosts(
    tenants: list[Tenant], base_domain: str, custom_domain_plans: set[str] | None = None
) -> dict[str, str]:
    """Map every host to the tenant that wins it, by the rules of `livery.reconcile.hosts`.

    With `custom_domain_plans`, the names of the plans with the customDomains feature, a
    tenant on another plan claims only its primary host.
    """
    claims: dict[str, list[HostClaim]] = {}
    for tenant in tenants:
        allowed = custom_domain_plans is None or tenant.spec.plan in custom_domain_plans
        for host, claim in tenant_host_claims(tenant, base_domain, custom_domains=allowed).items():
            claims.setdefault(host, []).append(claim)
    return assign_hosts(claims)


class ReconcileLoop:
    """Schedules and runs reconciles of the tenants in a `LocalStore`."""

    def __init__(
        self,
        store: LocalStore,
        driver: LocalDriver,
        provisioner: Any,
        settings: ReconcileSettings,
        *,
        storage: Any = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        resync_seconds: float = DEFAULT_RESYNC_SECONDS,
    ) -> None:
        self.store = store
        self.driver = driver
        self.provisioner = provisioner
        self.settings = settings
        self.storage = storage
        self.concurrency = concurrency
        self.resync_seconds = resync_seconds
        self._due: dict[str, float] = {}
        self._running: set[str] = set()
        self._wake = asyncio.Event()
        self._listening = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def enqueue(self, name: str, delay: float = 0.0) -> None:
        """Schedule a reconcile of `name` in `delay` seconds, or sooner if one is already due sooner."""
        due = time.monotonic() + delay
        if name not in self._due or due < self._due[name]:
            self._due[name] = due
            self._wake.set()

    async def enqueue_all(self) -> None:
        for tenant in await self.store.list_tenants():
            self.enqueue(tenant.name)

    async def start(self) -> None:
        """Start listening and the workers, and queue every tenant, so a restarted runtime resumes all of them.

        It returns once LISTEN runs, so no change written after it returns can be missed.
        """
        self._tasks = [asyncio.create_task(self._listen(), name="reconcile-listen")]
        self._tasks.append(asyncio.create_task(self._resync(), name="reconcile-resync"))
        for index in range(self.concurrency):
            self._tasks.append(asyncio.create_task(self._work(), name=f"reconcile-worker-{index}"))
        try:
            await asyncio.wait_for(self._listening.wait(), LISTEN_TIMEOUT_SECONDS)
        except asyncio.TimeoutError:
            await self.stop()
            raise RuntimeError(
                f"could not LISTEN for changes on the control database within {LISTEN_TIMEOUT_SECONDS:g} s"
            ) from None

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def idle(self) -> bool:
        """Return whether no reconcile is running or due now."""
        now = time.monotonic()
        return not self._running and all(due > now for due in self._due.values())

    async def _listen(self) -> None:
        while True:
            try:
                async for kind, name in self.store.changes():
                    await self._handle_change(kind, name)
            except Exception:
                # Without this task no change would be seen until the next periodic re-check.
                logger.exception("handling change notifications failed; listening again in %g s", ERROR_RETRY_SECONDS)
                await asyncio.sleep(ERROR_RETRY_SECONDS)

    async def _handle_change(self, kind: str, name: str) -> None:
        if kind == "Tenant":
            self.enqueue(name)
        elif kind == "Plan":
            await self._enqueue_plan_tenants(name)
        else:
            # LISTEN (re)started: changes before it were not notified.
            await self.enqueue_all()
            self._listening.set()

    async def _enqueue_plan_tenants(self, plan: str) -> None:
        for tenant in await self.store.list_tenants():
            if tenant.spec.plan == plan:
                self.enqueue(tenant.name)

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.resync_seconds)
            try:
                await self.enqueue_all()
            except Exception:
                logger.exception("periodic re-check could not list tenants")

    def _next_due(self) -> tuple[str | None, float]:
        """Return the tenant due first that no worker is running, and its due time."""
        candidates = [(due, name) for name, due in self._due.items() if name not in self._running]
        if not candidates:
            return None, float("inf")
        due, name = min(candidates)
        return name, due

    async def _work(self) -> None:
        while True:
            # Clear before looking, so an enqueue that lands after the look still wakes this worker.
            self._wake.clear()
            name, due = self._next_due()
            wait = due - time.monotonic()
            if name is None or wait > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), None if name is None else wait)
                continue
            del self._due[name]
            self._running.add(name)
            try:
                delay = await self.reconcile(name)
            except Exception:
                logger.exception("tenant %s: reconcile failed; retrying in %g s", name, ERROR_RETRY_SECONDS)
                delay = ERROR_RETRY_SECONDS
            finally:
                self._running.discard(name)
                # Another worker may be waiting for this tenant to finish.
                self._wake.set()
            if delay is not None:
                self.enqueue(name, delay)

    async def reconcile(self, name: str) -> float | None:
        """Reconcile one tenant now; return the delay before the next run, or None."""
        try:
            tenant = await self.store.get_tenant(name)
        except NotFound:
            return None
        tenants = await self.store.list_tenants()
        custom_domain_plans = {plan.name for plan in await self.store.list_plans() if plan.spec.features.custom_domains}
        claims = claimed_hosts(tenants, self.settings.base_domain, custom_domain_plans)
        self.driver.routes.set_claims(claims)
        plan = await self._plan(tenant.spec.plan)

        if tenant.metadata.deletion_timestamp is not None:
            result = await finalize_tenant(
                tenant, plan, driver=self.driver, provisioner=self.provisioner, storage=self.storage
            )
            if result.finished:
                await self.store.remove_tenant(name)
                self.driver.routes.set_claims(
                    claimed_hosts(
                        [other for other in tenants if other.name != name], self.settings.base_domain, custom_domain_plans
                    )
                )
                logger.info("tenant %s: removed", name)
                return None
        else:
            result = await reconcile_tenant(
                tenant,
                plan,
                driver=self.driver,
                provisioner=self.provisioner,
                settings=self.settings,
                claimed_hosts=claims,
                storage=self.storage,
            )
        await self.store.update_tenant_status(name, result.status)
        return next_delay(result)

    async def _plan(self, name: str) -> Plan | None:
        try:
            return await self.store.get_plan(name)
        except NotFound:
            return None


def next_delay(result: ReconcileResult) -> float | None:
    delays = [delay for delay in (result.retry_after, result.recheck_after) if delay is not None]
    return min(delays) if delays else None
