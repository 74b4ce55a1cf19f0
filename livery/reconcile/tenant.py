"""Reconcile one Tenant: run the steps in order and turn their outcomes into a status."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from .. import naming
from ..drivers.base import Driver
from ..models.plan import Plan
from ..models.config import TenantConfig
from ..models.tenant import Condition, Tenant, TenantStatus
from . import steps
from .conditions import changed, make_condition, ordered
from .context import Collaborators, Provisioner, ReconcileSettings, SnapshotStorage, StepObserver
from .errors import IsolationChangeRejected, ReconcileError
from .hosts import HostSplit, split_hosts

logger = logging.getLogger("livery.reconcile")


@dataclass
class ReconcileResult:
    """The new status and what the caller does next.

    `retry_after` is set when a step failed temporarily; `recheck_after` when all
    steps succeeded but the app's replicas are not available yet. Both are seconds.
    """

    status: TenantStatus
    retry_after: float | None = None
    recheck_after: float | None = None
    finished: bool = False
    permanent_error: str | None = None


@dataclass
class _Outcome:
    """Conditions and status fields collected while the steps run."""

    tenant: Tenant
    previous: TenantStatus
    conditions: dict[str, Condition] = field(default_factory=dict)
    retry_after: float | None = None
    recheck_after: float | None = None
    failed: bool = False
    permanent_error: str | None = None

    def set(self, kind: str, status: bool | None, reason: str, message: str) -> None:
        self.conditions[kind] = make_condition(
            kind, status, reason, message, self.tenant.metadata.generation, self.previous.condition(kind)
        )

    def fail(self, error: ReconcileError) -> None:
        self.set(error.condition, False, error.reason, error.message)
        if error.temporary:
            self.retry_after = _earliest(self.retry_after, error.delay)
        else:
            self.failed = True
            self.permanent_error = error.message

    def wait(self, delay: float) -> None:
        self.recheck_after = _earliest(self.recheck_after, delay)


def _earliest(current: float | None, delay: float) -> float:
    return delay if current is None else min(current, delay)


async def reconcile_tenant(
    tenant: Tenant,
    plan: Plan | None,
    *,
    driver: Driver,
    provisioner: Provisioner,
    settings: ReconcileSettings,
    claimed_hosts: dict[str, str] | None = None,
    storage: SnapshotStorage | None = None,
    observer: StepObserver | None = None,
) -> ReconcileResult:
    """Bring the tenant's database, app and routing in line with its spec and return its status.

    `claimed_hosts` maps each host to the tenant that holds it (see
    `livery.reconcile.hosts.assign_hosts`); hosts held by another tenant and custom
    domains under the base domain are not served. The caller persists the returned
    status and runs again after `retry_after` seconds.
    """
    parts = Collaborators(driver=driver, provisioner=provisioner, storage=storage, tenant=tenant.name)
    if observer is not None:
        parts.observer = observer
    outcome = _Outcome(tenant=tenant, previous=tenant.status or TenantStatus())
    status = (tenant.status or TenantStatus()).model_copy(deep=True)
    status.observed_generation = tenant.metadata.generation

    try:
        with parts.timed("resolve_plan"):
            resolved = steps.resolve_plan(tenant, plan)
    except ReconcileError as error:
        outcome.fail(error)
        outcome.failed = True
        return await _finish(outcome, status, "Failed", parts.driver)
    status.limits = resolved.limits

    credentials = await _run_secret_step(tenant, resolved, outcome, parts)
    if credentials is None:
        return await _finish(outcome, status, None, parts.driver)

    hosts = naming.tenant_hosts(tenant, settings.base_domain)
    split = split_hosts(
        tenant, settings.base_domain, claimed_hosts or {}, custom_domains=resolved.features.custom_domains
    )
    served = split.served or hosts
    config = steps.build_config(tenant, resolved, credentials.isolation, served, settings)
    # The config does not depend on the database, so it is written while the database is provisioned.
    database, checksum = await asyncio.gather(
        _run_database_step(tenant, credentials, outcome, parts), _run_config_step(config, outcome, parts)
    )
    if database is None:
        return await _finish(outcome, status, None, parts.driver)
    status.isolation = database.isolation
    status.database = database.status
    status.hosts = split.served
    status.url = settings.tenant_url(hosts[0]) if hosts[0] in split.served else None

    # The Ingress names the app's Service, not its pods, so routing does not wait for the app.
    await asyncio.gather(
        _run_app_step(tenant, resolved, database, checksum, settings, outcome, parts),
        _run_routing_step(tenant, split, settings.base_domain, outcome, parts),
    )
    return await _finish(outcome, status, None, parts.driver)


@dataclass
class _Credentials:
    """The tenant's secret and the isolation its data is in, with a rejected change of it."""

    secret: dict[str, str]
    isolation: str
    rejection: IsolationChangeRejected | None = None


async def _run_secret_step(
    tenant: Tenant, resolved: steps.ResolvedPlan, outcome: _Outcome, parts: Collaborators
) -> _Credentials | None:
    """Ensure the secret and settle the isolation in force; return None when nothing can go on."""
    try:
        with parts.timed("ensure_secret"):
            secret = await steps.ensure_secret(tenant, resolved.isolation, parts.driver, parts.provisioner)
    except ReconcileError as error:
        outcome.fail(error)
        return None

    try:
        steps.isolation_in_force(secret, resolved.isolation)
    except IsolationChangeRejected as error:
        # Keep serving the data where it is. A plan's isolation is the default for new tenants,
        # so only a mode the tenant requests in spec.isolation is an error, and its condition
        # explains how to undo the request.
        isolation = secret[steps.SECRET_ISOLATION]
        return _Credentials(secret, isolation, error if tenant.spec.isolation is not None else None)
    return _Credentials(secret, resolved.isolation)


async def _run_database_step(
    tenant: Tenant, credentials: _Credentials, outcome: _Outcome, parts: Collaborators
) -> steps.DatabaseResult | None:
    """Ensure the database; return None when the app cannot run yet."""
    isolation = credentials.isolation
    try:
        with parts.timed("ensure_database"):
            database = await steps.ensure_database(tenant, isolation, credentials.secret, parts.provisioner, parts.driver)
    except ReconcileError as error:
        outcome.fail(error)
        return None

    if credentials.rejection is not None:
        outcome.fail(credentials.rejection)
    else:
        outcome.set("DatabaseReady", True, "Provisioned", f"{isolation} isolation is provisioned")
    return database


async def _run_config_step(config: TenantConfig, outcome: _Outcome, parts: Collaborators) -> str | None:
    """Write the tenant config; return its checksum, or None when the write failed."""
    try:
        with parts.timed("ensure_config"):
            return await steps.ensure_config(config, parts.driver)
    except ReconcileError as error:
        outcome.fail(error)
        return None


async def _run_app_step(
    tenant: Tenant,
    resolved: steps.ResolvedPlan,
    database: steps.DatabaseResult,
    checksum: str | None,
    settings: ReconcileSettings,
    outcome: _Outcome,
    parts: Collaborators,
) -> None:
    """Run the app; AppReady follows the available replicas. Without a written config it waits."""
    if checksum is None:
        return
    try:
        with parts.timed("ensure_app"):
            state = await steps.ensure_app(tenant, resolved, database, checksum, settings, parts.driver)
    except ReconcileError as error:
        outcome.fail(error)
        return

    if tenant.spec.suspended:
        outcome.set("AppReady", False, "Suspended", "the tenant is suspended, so the app runs no replicas")
    elif state.ready:
        outcome.set("AppReady", True, "ReplicasAvailable", f"{state.available_replicas} of {state.desired_replicas} replicas available")
    else:
        message = state.message or f"{state.available_replicas} of {state.desired_replicas} replicas available"
        outcome.set("AppReady", False, "ReplicasUnavailable", message)
        outcome.wait(settings.app_ready_poll_seconds)


async def _run_routing_step(
    tenant: Tenant, split: HostSplit, base_domain: str, outcome: _Outcome, parts: Collaborators
) -> None:
    """Route every host this tenant holds; report custom domains it may not have or that another tenant holds."""
    served = split.served
    try:
        with parts.timed("ensure_routing"):
            await steps.ensure_routing(tenant, served, parts.driver)
    except ReconcileError as error:
        outcome.fail(error)
        return

    if split.not_allowed:
        listed = ", ".join(split.not_allowed)
        outcome.set(
            "RoutingReady",
            False,
            "DomainNotAllowed",
            f"not serving {listed}: a custom domain cannot be {base_domain} or under it, because those hosts "
            "are the platform's and other tenants' primary hosts; remove it from spec.domains",
        )
    elif split.not_in_plan:
        listed = ", ".join(split.not_in_plan)
        outcome.set(
            "RoutingReady",
            False,
            "CustomDomainsNotInPlan",
            f"not serving {listed}: plan {tenant.spec.plan!r} does not include custom domains; "
            "change to a plan with customDomains or remove them from spec.domains",
        )
    elif split.conflicts:
        # The holder stays out of the message: the status is shown to the tenant's owner, who
        # must not learn which other tenant serves a host. Admins find it in status.hosts.
        listed = ", ".join(split.conflicts)
        outcome.set(
            "RoutingReady",
            False,
            "HostConflict",
            f"not serving {listed}: another tenant already serves or claimed it first; remove it from spec.domains",
        )
    elif tenant.spec.suspended:
        outcome.set("RoutingReady", True, "Suspended", "hosts route to the suspension page: " + ", ".join(served))
    else:
        outcome.set("RoutingReady", True, "Routed", "serving " + ", ".join(served))


async def _finish(outcome: _Outcome, status: TenantStatus, phase: str | None, driver: Driver) -> ReconcileResult:
    """Set Ready and the phase, send an event per changed condition and build the result."""
    tenant = outcome.tenant
    # Conditions of steps that did not run this time keep their previous value.
    for kind in ("DatabaseReady", "AppReady", "RoutingReady"):
        if kind in outcome.conditions:
            continue
        previous = outcome.previous.condition(kind)
        if previous is not None:
            outcome.conditions[kind] = previous
        else:
            outcome.set(kind, None, "NotChecked", "not checked yet because an earlier step has not succeeded")

    if "Ready" not in outcome.conditions:
        outcome.conditions["Ready"] = _ready_condition(outcome, tenant)

    if phase is None:
        phase = _phase(outcome, tenant)
    status.phase = phase
    status.conditions = ordered(outcome.conditions)

    events: list[tuple[str, str, str]] = []
    for condition in status.conditions:
        before = outcome.previous.condition(condition.type)
        if changed(before, condition):
            event_type = "Normal" if condition.status == "True" or condition.reason == "Suspended" else "Warning"
            logger.info("tenant %s: %s %s (%s): %s", tenant.name, condition.type, condition.status, condition.reason, condition.message)
            events.append((event_type, condition.reason, f"{condition.type}: {condition.message}"))
        else:
            logger.debug("tenant %s: %s unchanged (%s)", tenant.name, condition.type, condition.reason)
    if events:
        await _record_events(driver, tenant.name, events)

    return ReconcileResult(
        status=status,
        retry_after=outcome.retry_after,
        recheck_after=outcome.recheck_after,
        permanent_error=outcome.permanent_error,
    )


def _ready_condition(outcome: _Outcome, tenant: Tenant) -> Condition:
    """Return Ready: True when the three other conditions are, else the first one that is not."""
    for kind in ("DatabaseReady", "AppReady", "RoutingReady"):
        condition = outcome.conditions[kind]
        if condition.status != "True":
            return make_condition("Ready", False, condition.reason, condition.message, tenant.metadata.generation, outcome.previous.condition("Ready"))
    return make_condition("Ready", True, "Ready", "the tenant is served", tenant.metadata.generation, outcome.previous.condition("Ready"))


def _phase(outcome: _Outcome, tenant: Tenant) -> str:
    if outcome.failed:
        return "Failed"
    database_ready = outcome.conditions["DatabaseReady"].status == "True"
    if tenant.spec.suspended and database_ready:
        return "Suspended"
    if outcome.conditions["Ready"].status == "True":
        return "Ready"
    return "Provisioning"


async def _record_event(driver: Driver, tenant: str, event_type: str, reason: str, message: str) -> None:
    """Send an event; a failure to send is logged and never fails the reconcile."""
    await _record_events(driver, tenant, [(event_type, reason, message)])


async def _record_events(driver: Driver, tenant: str, events: list[tuple[str, str, str]]) -> None:
    """Send the events; a failure to send is logged and never fails the reconcile."""
    try:
        errors = await driver.record_events(tenant, events)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - events are best effort
        errors = [exc] * len(events)
    for (_, reason, _), error in zip(events, errors):
        if error is not None:
            logger.warning("tenant %s: could not record event %s: %s", tenant, reason, error)
