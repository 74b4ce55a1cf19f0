"""Finalize a deleted Tenant: apply its deletion policy to the data, then remove its parts.

The database step runs first, so the stored isolation is still readable, and the
caller removes its finalizer only when `ReconcileResult.finished` is true. A
failure keeps the finalizer and is reported in the status and an event.
"""

from __future__ import annotations

import logging
import pathlib
import tempfile
from datetime import UTC, datetime

from .. import naming
from ..drivers.base import Driver, DriverError
from ..models.plan import ISOLATION_MODES, Plan
from ..models.tenant import Tenant, TenantStatus
from .conditions import make_condition, ordered
from .context import Collaborators, Provisioner, SnapshotStorage, StepObserver
from .errors import ReconcileError
from .secrets import SECRET_ISOLATION, redact, secret_values
from .tenant import ReconcileResult, _record_event

logger = logging.getLogger("livery.reconcile")

DELETE_RETRY_DELAY = 15.0


def snapshot_key(tenant: str, isolation: str, moment: datetime | None = None) -> str:
    """Return the storage key of a deletion snapshot: `tenants/<name>/snapshots/<time>-<mode>.dump`."""
    stamp = (moment or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{naming.storage_prefix(tenant)}snapshots/{stamp}-{isolation}.dump"


async def isolations_to_clean(
    tenant: Tenant, plan: Plan | None, secret: dict[str, str] | None, provisioner: Provisioner
) -> list[str]:
    """Return the isolation modes that may hold this Tenant's data.

    `status.isolation` records the mode this Tenant's data was provisioned in and
    wins, because the secret can be edited or lost. Next comes the secret, which
    is stored before any database object is made. A Tenant with neither never
    provisioned anything: objects under its name belong to an earlier Tenant
    whose deletion policy retained them, so nothing is cleaned. A secret without
    the mode (written by an older Livery) leaves the spec, the plan, and then
    the provisioner's own check of which mode's objects exist.
    """
    recorded = tenant.status.isolation if tenant.status is not None else None
    if recorded:
        return [recorded]
    if not secret:
        return []
    if secret.get(SECRET_ISOLATION):
        return [secret[SECRET_ISOLATION]]
    if tenant.spec.isolation:
        return [tenant.spec.isolation]
    if plan is not None:
        return [naming.effective_isolation(plan, tenant)]
    return await detect_isolation(tenant.name, provisioner)


async def detect_isolation(tenant: str, provisioner: Provisioner) -> list[str]:
    """Return the one mode the tenant's database objects exist in, or [] when there are none."""
    for isolation in ISOLATION_MODES:
        if await provisioner.database_exists(tenant, isolation):
            return [isolation]
    return []


async def finalize_tenant(
    tenant: Tenant,
    plan: Plan | None,
    *,
    driver: Driver,
    provisioner: Provisioner,
    storage: SnapshotStorage | None = None,
    observer: StepObserver | None = None,
) -> ReconcileResult:
    """Apply `spec.deletionPolicy` to the tenant's data, then remove its app, routing and secret."""
    parts = Collaborators(driver=driver, provisioner=provisioner, storage=storage, tenant=tenant.name)
    if observer is not None:
        parts.observer = observer
    previous = tenant.status or TenantStatus()
    status = previous.model_copy(deep=True)
    status.phase = "Deleting"
    policy = tenant.spec.deletion_policy
    secret: dict[str, str] | None = None

    try:
        with parts.timed("finalize_database"):
            secret = await _read_secret(driver, tenant.name)
            isolations = await isolations_to_clean(tenant, plan, secret, provisioner)
            await _apply_deletion_policy(tenant, policy, isolations, parts)
        with parts.timed("remove_tenant"):
            await _remove_parts(driver, tenant.name)
    except ReconcileError as error:
        message = redact(error.message, secret_values(secret))
        condition = make_condition(
            "Ready", False, error.reason, message, tenant.metadata.generation, previous.condition("Ready")
        )
        status.conditions = _replace(previous, condition)
        logger.warning("tenant %s: deletion failed (%s): %s", tenant.name, error.reason, message)
        await _record_event(driver, tenant.name, "Warning", error.reason, message)
        return ReconcileResult(status=status, retry_after=DELETE_RETRY_DELAY)

    done = {"Retain": "kept the database", "Delete": "dropped the database", "Snapshot": "saved a snapshot and dropped the database"}[policy]
    logger.info("tenant %s: deleted; %s (deletionPolicy %s)", tenant.name, done, policy)
    await _record_event(driver, tenant.name, "Normal", "Deleted", f"deletionPolicy {policy}: {done}")
    return ReconcileResult(status=status, finished=True)


async def _read_secret(driver: Driver, tenant: str) -> dict[str, str] | None:
    try:
        return await driver.read_secret(tenant)
    except DriverError as exc:
        raise ReconcileError(f"reading the tenant secret failed: {exc}", reason="SecretUnreadable") from exc


async def _apply_deletion_policy(tenant: Tenant, policy: str, isolations: list[str], parts: Collaborators) -> None:
    if policy == "Retain":
        return
    for isolation in isolations:
        if policy == "Snapshot":
            await _save_snapshot(tenant.name, isolation, parts)
        try:
            await parts.provisioner.drop_database(tenant.name, isolation)
        except Exception as exc:  # noqa: BLE001 - any failure keeps the finalizer
            raise ReconcileError(
                f"dropping the {isolation} database objects failed: {exc}; the Tenant is kept until this succeeds",
                reason="DropFailed",
                condition="DatabaseReady",
            ) from exc


async def _save_snapshot(tenant: str, isolation: str, parts: Collaborators) -> None:
    """Dump the tenant's data to file storage; nothing to dump is not an error."""
    if parts.storage is None:
        raise ReconcileError(
            "deletionPolicy Snapshot needs file storage, but none is configured; set LIVERY_S3_BUCKET "
            "or change deletionPolicy",
            reason="SnapshotFailed",
            condition="DatabaseReady",
        )
    try:
        if not await parts.provisioner.database_exists(tenant, isolation):
            logger.info("tenant %s: no %s database objects to snapshot", tenant, isolation)
            return
        with tempfile.TemporaryDirectory(prefix="livery-snapshot-") as folder:
            archive = await parts.provisioner.snapshot(tenant, isolation, pathlib.Path(folder) / "snapshot.dump")
            key = snapshot_key(tenant, isolation)
            parts.storage.put_file(key, pathlib.Path(archive))
    except ReconcileError:
        raise
    except Exception as exc:  # noqa: BLE001 - the drop must not run without a snapshot
        raise ReconcileError(
            f"snapshot of the {isolation} database failed: {exc}; the database is kept",
            reason="SnapshotFailed",
            condition="DatabaseReady",
        ) from exc
    logger.info("tenant %s: snapshot saved to %s", tenant, key)


async def _remove_parts(driver: Driver, tenant: str) -> None:
    try:
        await driver.remove_tenant(tenant)
    except DriverError as exc:
        raise ReconcileError(f"removing the app failed: {exc}", reason="RemoveFailed") from exc


def _replace(previous: TenantStatus, condition) -> list:
    conditions = {item.type: item for item in previous.conditions or []}
    conditions[condition.type] = condition
    return ordered(conditions)
