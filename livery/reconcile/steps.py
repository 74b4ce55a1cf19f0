"""The reconcile steps, one function each, named for what it ensures.

Each step is idempotent and either returns what the next step needs or raises
`ReconcileError`. No step depends on which driver runs it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from .. import naming
from ..drivers.base import SECRET_DATABASE_URL, AppSpec, AppState, Driver, DriverError, RouteSpec
from ..models.config import TenantConfig
from ..models.plan import ISOLATION_MODES, Features, Limits, Plan
from ..models.tenant import Branding, DatabaseStatus, Tenant
from .context import Provisioner, ReconcileSettings
from .errors import (
    ADOPT_RETAINED_DATA_ANNOTATION,
    IsolationChangeRejected,
    PlanNotFound,
    ReconcileError,
    RetainedDataExists,
)
from .secrets import SECRET_DATABASE_PASSWORD, SECRET_ISOLATION, completed_secret, redact, secret_values

logger = logging.getLogger("livery.reconcile")


@dataclass(frozen=True)
class ResolvedPlan:
    """The effective limits, isolation and features a plan gives one tenant."""

    plan: Plan
    limits: Limits
    isolation: str
    features: Features


@dataclass(frozen=True)
class DatabaseResult:
    """Names of the tenant's database objects and the isolation they are in."""

    status: DatabaseStatus
    isolation: str
    schema: str | None
    # SHA-256 hex digest of the tenant secret's data as stored; never the data itself.
    secret_checksum: str = ""


def resolve_plan(tenant: Tenant, plan: Plan | None) -> ResolvedPlan:
    """Merge the plan's limits with the tenant's overrides, or raise `PlanNotFound`."""
    if plan is None or plan.name != tenant.spec.plan:
        raise PlanNotFound(tenant.spec.plan)
    return ResolvedPlan(
        plan=plan,
        limits=naming.effective_limits(plan, tenant),
        isolation=naming.effective_isolation(plan, tenant),
        features=plan.spec.features,
    )


async def ensure_secret(
    tenant: Tenant, isolation: str, driver: Driver, provisioner: Provisioner | None = None
) -> dict[str, str]:
    """Make sure the tenant's credentials exist, storing new ones before anything uses them.

    With `provisioner`, a tenant that has neither a secret nor a recorded isolation is
    new, and `check_retained_data` runs before its first secret is stored.
    """
    existing = await _driver_call(driver.read_secret(tenant.name), "SecretFailed", "DatabaseReady")
    # A lost secret (its namespace deleted by hand) must not change the isolation in force,
    # so the status's record of it wins over the requested mode.
    recorded = tenant.status.isolation if tenant.status is not None else None
    in_force = recorded or isolation
    if not existing and not recorded and provisioner is not None:
        # Adopted retained data stays in the mode it is in. A different requested mode is then
        # rejected like any other change of mode, so no empty database is provisioned beside it.
        in_force = await check_retained_data(tenant, provisioner) or in_force
    data = completed_secret(existing, in_force)
    if recorded:
        # An edited mode in the secret must not move the data: the status records where it is.
        data[SECRET_ISOLATION] = recorded
    # Written even when unchanged: the driver compares what is stored, and so repairs the
    # Secrets (and their copies, such as the control API's) when they were edited or deleted.
    await _driver_call(driver.ensure_secret(tenant.name, data), "SecretFailed", "DatabaseReady")
    return data


async def check_retained_data(tenant: Tenant, provisioner: Provisioner) -> str | None:
    """Raise `RetainedDataExists` when database objects of the tenant's name exist, unless an admin opted in.

    A deleted Tenant with deletionPolicy Retain keeps its database, schema or rows and
    its role. A new Tenant of the same name would otherwise set a new password on that
    role and hand the old data to its new owner. With the opt-in, return the mode the
    retained data is in, or None when there is none.
    """
    adopt = (tenant.metadata.annotations or {}).get(ADOPT_RETAINED_DATA_ANNOTATION) == "true"
    try:
        # The three checks are independent reads, so they run concurrently.
        found = await asyncio.gather(*(provisioner.database_exists(tenant.name, mode) for mode in ISOLATION_MODES))
        modes = [mode for mode, exists in zip(ISOLATION_MODES, found) if exists]
    except Exception as exc:  # noqa: BLE001 - every provisioner failure becomes a condition
        raise ReconcileError(
            f"checking for retained data failed: {exc}", reason=_database_reason(exc), condition="DatabaseReady"
        ) from exc
    if not modes:
        return None
    # The role exists in every mode, so shared mode is also found beside a schema or a database:
    # the first mode found, the most specific, is the one the data is in.
    if adopt:
        return modes[0]
    raise RetainedDataExists(modes[:1])


def isolation_in_force(secret: dict[str, str], requested: str) -> str:
    """Return the isolation the tenant's data is provisioned in; reject a different request."""
    in_force = secret.get(SECRET_ISOLATION, requested)
    if in_force != requested:
        raise IsolationChangeRejected(in_force, requested)
    return in_force


async def ensure_database(
    tenant: Tenant, isolation: str, secret: dict[str, str], provisioner: Provisioner, driver: Driver
) -> DatabaseResult:
    """Provision the tenant's database objects and store the app's database URL in its secret."""
    password = secret[SECRET_DATABASE_PASSWORD]
    try:
        info = await provisioner.ensure_database(tenant.name, isolation, password)
    except Exception as exc:  # noqa: BLE001 - every provisioner failure becomes a condition
        message = redact(f"database provisioning failed: {exc}", secret_values(secret))
        raise ReconcileError(
            message,
            reason=_database_reason(exc),
            condition="DatabaseReady",
            temporary=getattr(exc, "temporary", True),
        ) from exc

    app_url = str(getattr(info, "app_url"))
    if secret.get(SECRET_DATABASE_URL) != app_url:
        secret[SECRET_DATABASE_URL] = app_url
        await _driver_call(driver.ensure_secret(tenant.name, secret), "SecretFailed", "DatabaseReady")

    schema = getattr(info, "schema", None)
    status = DatabaseStatus(
        name=getattr(info, "database", None) or getattr(info, "database_name", None),
        schema=schema,
        role=getattr(info, "role", None),
        secret_name=naming.APP_SECRET_NAME,
    )
    return DatabaseResult(status=status, isolation=isolation, schema=schema, secret_checksum=config_checksum(secret))


def build_config(
    tenant: Tenant, resolved: ResolvedPlan, isolation: str, hosts: list[str], settings: ReconcileSettings
) -> TenantConfig:
    """Return the tenant config the app reads from `LIVERY_TENANT_CONFIG`."""
    return TenantConfig(
        tenant=tenant.name,
        display_name=tenant.spec.display_name,
        plan=resolved.plan.name,
        isolation=isolation,
        branding=tenant.spec.branding or Branding(),
        features=resolved.features,
        limits=resolved.limits,
        hosts=hosts,
        url=settings.tenant_url(hosts[0]),
        owner=tenant.spec.owner,
        suspended=tenant.spec.suspended,
        generation=tenant.metadata.generation or 0,
    )


def config_checksum(config: dict[str, Any]) -> str:
    """Return the SHA-256 of a JSON document's canonical form; a change of the config or secret rolls the app out."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()


async def ensure_config(config: TenantConfig, driver: Driver) -> str:
    """Write the tenant config and return its checksum."""
    document = config.to_json()
    await _driver_call(driver.ensure_config(config.tenant, document), "ConfigFailed", "AppReady")
    return config_checksum(document)


def app_environment(
    tenant: Tenant, database: DatabaseResult, settings: ReconcileSettings
) -> dict[str, str]:
    """Return the app's non-secret environment; secrets reach it from the tenant's secret."""
    environment = {"LIVERY_TENANT": tenant.name, "LIVERY_ISOLATION": database.isolation}
    if database.schema:
        environment["LIVERY_DB_SCHEMA"] = database.schema
    if settings.s3_bucket:
        environment["LIVERY_S3_BUCKET"] = settings.s3_bucket
    if settings.s3_endpoint_url:
        environment["LIVERY_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    if settings.control_api_url:
        environment["LIVERY_CONTROL_API_URL"] = settings.control_api_url
    environment.update(settings.extra_environment)
    return environment


async def ensure_app(
    tenant: Tenant,
    resolved: ResolvedPlan,
    database: DatabaseResult,
    checksum: str,
    settings: ReconcileSettings,
    driver: Driver,
) -> AppState:
    """Run the app with the plan's replicas and resources, or zero replicas when suspended."""
    limits = resolved.limits
    spec = AppSpec(
        tenant=tenant.name,
        replicas=0 if tenant.spec.suspended else int(limits.replicas or 1),
        cpu=str(limits.cpu),
        memory=str(limits.memory),
        environment=app_environment(tenant, database, settings),
        config_checksum=checksum,
        labels=naming.labels(tenant.name, "app"),
        secret_checksum=database.secret_checksum,
    )
    return await _driver_call(driver.ensure_app(spec), "AppFailed", "AppReady")


async def ensure_routing(tenant: Tenant, served: list[str], driver: Driver) -> None:
    """Serve every host the tenant owns from its app, or the suspension page when suspended."""
    route = RouteSpec(
        tenant=tenant.name,
        hosts=served,
        suspended=tenant.spec.suspended,
        labels=naming.labels(tenant.name, "routing"),
    )
    await _driver_call(driver.ensure_routing(route), "RoutingFailed", "RoutingReady")


async def _driver_call(awaitable: Any, reason: str, condition: str) -> Any:
    """Await a driver call and turn a `DriverError` into a `ReconcileError` for `condition`."""
    try:
        return await awaitable
    except DriverError as exc:
        raise ReconcileError(
            str(exc),
            reason=exc.reason if exc.reason != "DriverError" else reason,
            condition=condition,
            temporary=exc.temporary,
        ) from exc


def _database_reason(exc: Exception) -> str:
    """Name a provisioner failure with its own reason, or `DatabaseUnreachable` for connection errors."""
    import psycopg

    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason
    if isinstance(exc, (psycopg.OperationalError, OSError, TimeoutError)):
        return "DatabaseUnreachable"
    return "DatabaseFailed"
