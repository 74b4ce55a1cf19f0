"""The local resource store: Tenant and Plan resources in the control database.

The embedded runtime keeps its resources in PostgreSQL tables instead of the
Kubernetes API, with the same behaviour callers rely on there:

- every write is validated with the models behind the CRDs (and
  `check_tenant_update` for updates), and an invalid write changes nothing;
- `metadata.generation` goes up only when the spec changes, so status can say
  which spec it describes (`observedGeneration`);
- field ownership works like server-side apply: each leaf of the spec
  (`plan`, `branding.productName`, `domains`, ...) records the field manager
  that last set it. A write merges only the keys it carries. The `livery-cli`
  manager sends whole manifests, as `kubectl apply` does, so a field it owned
  and left out is removed; fields owned by another manager stay;
- deleting a Tenant only marks it (`metadata.deletionTimestamp`); the
  reconcile loop removes the row once cleanup is done, as a finalizer would;
- every committed change sends `NOTIFY livery_resources, '<Kind>/<name>'`, so a
  listener (the reconcile loop) reacts at once.

The tenant secrets of the local driver live here too.
NOTE: they are stored unencrypted, like Kubernetes Secrets without encryption
at rest, so the control database must be protected like the secrets it holds.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import psycopg
from psycopg import sql
from pydantic import ValidationError
from sqlalchemy import BigInteger, DateTime, Integer, Select, String, Text, bindparam, delete, func, select, text
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ..models.errors import format_validation_error
from ..models.plan import Plan
from ..models.tenant import Tenant, TenantSpec, TenantStatus, check_tenant_update
from .base import CLI_FIELD_MANAGER, AlreadyExists, Conflict, Event, Invalid, NotFound, ResourceStore

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "livery_resources"
RESOURCE_VERSION_SEQUENCE = "livery_resource_version"
SCHEMA_VERSION = 1
# Spec fields whose value is an object: ownership and merging go one level into them.
OBJECT_FIELDS = frozenset({"owner", "branding", "limits"})
# Arbitrary constant that serialises concurrent schema creation by several processes.
SCHEMA_LOCK_KEY = 7_318_442_001
# Repeated identical events are folded into one row with a count, as Kubernetes does.
MAX_EVENTS_PER_TENANT = 200


class Base(DeclarativeBase):
    pass


class TenantRow(Base):
    __tablename__ = "livery_tenants"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    uid: Mapped[str] = mapped_column(String(36))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    managed_fields: Mapped[dict[str, str]] = mapped_column(JSONB)
    generation: Mapped[int] = mapped_column(Integer)
    resource_version: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deletion_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class PlanRow(Base):
    __tablename__ = "livery_plans"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    uid: Mapped[str] = mapped_column(String(36))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    field_manager: Mapped[str] = mapped_column(String(128))
    generation: Mapped[int] = mapped_column(Integer)
    resource_version: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EventRow(Base):
    __tablename__ = "livery_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(63), index=True)
    type: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(128))
    message: Mapped[str] = mapped_column(Text)
    count: Mapped[int] = mapped_column(Integer, default=1)
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SecretRow(Base):
    __tablename__ = "livery_tenant_secrets"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    data: Mapped[dict[str, str]] = mapped_column(JSONB)


def async_url(url: str) -> str:
    """Return `url` with the psycopg 3 driver that SQLAlchemy's async engine needs."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """Return `url` without a SQLAlchemy driver suffix, as psycopg and libpq expect."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def precise_rfc3339(moment: datetime) -> str:
    """Format with microseconds, so that creation order is kept between tenants made in the same second.

    The first claim of a host goes to the tenant created first, and Kubernetes'
    whole seconds would leave two tenants applied together tied.
    """
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def spec_leaves(spec: dict[str, Any]) -> dict[str, Any]:
    """Flatten a spec into ownership paths: `plan`, `branding.productName`, `domains`."""
    leaves: dict[str, Any] = {}
    for key, value in spec.items():
        if key in OBJECT_FIELDS and isinstance(value, dict):
            for child, child_value in value.items():
                leaves[f"{key}.{child}"] = child_value
        else:
            leaves[key] = value
    return leaves


def set_leaf(spec: dict[str, Any], path: str, value: Any) -> None:
    """Set or, with `None`, remove one ownership path in `spec`; empty objects are dropped."""
    if "." not in path:
        if value is None:
            spec.pop(path, None)
        else:
            spec[path] = copy.deepcopy(value)
        return
    parent, child = path.split(".", 1)
    container = spec.get(parent)
    if not isinstance(container, dict):
        if value is None:
            return
        container = spec[parent] = {}
    if value is None:
        container.pop(child, None)
        if not container:
            spec.pop(parent, None)
    else:
        container[child] = copy.deepcopy(value)


def merge_spec(
    spec: dict[str, Any], owners: dict[str, str], patch: dict[str, Any], field_manager: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """Return the spec and field owners after `field_manager` applies `patch`.

    A `None` value removes the field. A whole object set to `None` (for example
    `"branding": None`) removes every leaf under it. The `livery-cli` manager
    applies whole manifests, so its fields missing from `patch` are removed.
    """
    merged = copy.deepcopy(spec)
    new_owners = dict(owners)
    leaves: dict[str, Any] = {}
    for key, value in patch.items():
        if key in OBJECT_FIELDS and value is None:
            for path in list(spec_leaves(merged)):
                if path.startswith(key + "."):
                    leaves[path] = None
        else:
            leaves.update(spec_leaves({key: value}))

    if field_manager == CLI_FIELD_MANAGER:
        for path, owner in owners.items():
            if owner == field_manager and path not in leaves:
                leaves[path] = None

    for path, value in leaves.items():
        set_leaf(merged, path, value)
        if value is None:
            new_owners.pop(path, None)
        else:
            new_owners[path] = field_manager
    return merged, new_owners


class LocalStore(ResourceStore):
    """A `ResourceStore` in PostgreSQL, with LISTEN/NOTIFY change notification.

    Build it with `await LocalStore.open(url)`, which also creates the tables,
    and close it with `await store.close()`.
    """

    def __init__(self, url: str, engine: AsyncEngine) -> None:
        self._url = libpq_url(url)
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    @classmethod
    async def open(cls, url: str, *, pool_size: int = 5) -> LocalStore:
        """Connect to the control database at `url` and create or upgrade the store's tables."""
        engine = create_async_engine(async_url(url), pool_size=pool_size, max_overflow=5, pool_pre_ping=True)
        store = cls(url, engine)
        await store.migrate()
        return store

    async def close(self) -> None:
        await self._engine.dispose()

    async def migrate(self) -> None:
        """Create the tables when missing, serialised by an advisory lock across processes."""
        async with self._engine.begin() as connection:
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            await connection.run_sync(Base.metadata.create_all)
            await connection.execute(text("CREATE SEQUENCE IF NOT EXISTS livery_resource_version"))
            await connection.execute(
                text("CREATE TABLE IF NOT EXISTS livery_store_schema (version integer NOT NULL)")
            )
            version = (await connection.execute(text("SELECT max(version) FROM livery_store_schema"))).scalar()
            if version is None:
                await connection.execute(text("INSERT INTO livery_store_schema VALUES (:v)"), {"v": SCHEMA_VERSION})
            elif version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"the control database has store schema version {version}, newer than this Livery "
                    f"({SCHEMA_VERSION}); upgrade Livery"
                )

    # Tenants

    async def get_tenant(self, name: str) -> Tenant:
        async with self._sessions() as session:
            row = await session.get(TenantRow, name)
            if row is None:
                raise NotFound(f"tenant {name!r} not found")
            return tenant_from_row(row)

    async def list_tenants(self) -> list[Tenant]:
        async with self._sessions() as session:
            rows = (await session.scalars(select(TenantRow).order_by(TenantRow.name))).all()
            return [tenant_from_row(row) for row in rows]

    async def apply_tenant(self, name: str, spec_patch: dict[str, Any], field_manager: str) -> Tenant:
        async with self._sessions() as session, session.begin():
            row = await session.get(TenantRow, name, with_for_update=True)
            old_spec = row.spec if row is not None else {}
            owners = row.managed_fields if row is not None else {}
            if row is not None and row.deletion_requested_at is not None:
                raise Conflict(f"tenant {name!r} is being deleted; wait until it is gone, then create it again")

            spec, new_owners = merge_spec(old_spec, owners, spec_patch, field_manager)
            tenant = validate_tenant(name, spec)
            if row is not None:
                errors = check_tenant_update(TenantSpec.model_validate(row.spec), tenant.spec)
                if errors:
                    raise Invalid(errors)

            if row is None:
                now = utc_now()
                row = TenantRow(
                    name=name,
                    uid=str(uuid.uuid4()),
                    spec=spec,
                    status=None,
                    managed_fields=new_owners,
                    generation=1,
                    resource_version=await next_resource_version(session),
                    created_at=now,
                )
                session.add(row)
                try:
                    await session.flush()
                except IntegrityError:
                    raise Conflict(f"tenant {name!r} was created concurrently; re-read and retry") from None
            elif spec != row.spec or new_owners != row.managed_fields:
                if normalised(row.spec) != normalised(spec):
                    row.generation += 1
                row.spec = spec
                row.managed_fields = new_owners
                row.resource_version = await next_resource_version(session)
            else:
                return tenant_from_row(row)
            await notify(session, "Tenant", name)
            return tenant_from_row(row)

    async def create_tenant(self, name: str, spec: dict[str, Any], field_manager: str) -> Tenant:
        spec, owners = merge_spec({}, {}, spec, field_manager)
        validate_tenant(name, spec)
        row = TenantRow(
            name=name, uid=str(uuid.uuid4()), spec=spec, status=None, managed_fields=owners, generation=1,
            created_at=utc_now(),
        )
        parameters = {
            "name": row.name, "uid": row.uid, "spec": row.spec, "managed_fields": row.managed_fields,
            "created_at": row.created_at, "payload": f"Tenant/{name}",
        }
        async with self._engine.begin() as connection:
            inserted = (await connection.execute(CREATE_TENANT, parameters)).first()
        if inserted is None:
            raise AlreadyExists(f"tenant {name!r} already exists")
        row.resource_version = inserted.resource_version
        return tenant_from_row(row)

    async def delete_tenant(self, name: str) -> None:
        async with self._sessions() as session, session.begin():
            row = await session.get(TenantRow, name, with_for_update=True)
            if row is None:
                raise NotFound(f"tenant {name!r} not found")
            if row.deletion_requested_at is None:
                row.deletion_requested_at = utc_now()
                row.resource_version = await next_resource_version(session)
                await notify(session, "Tenant", name)

    async def update_tenant_status(self, name: str, status: TenantStatus) -> bool:
        """Replace the Tenant's status when it differs; return whether it was written."""
        new_status = status.to_json()
        async with self._sessions() as session, session.begin():
            row = await session.get(TenantRow, name, with_for_update=True)
            if row is None:
                raise NotFound(f"tenant {name!r} not found")
            if row.status == new_status:
                return False
            row.status = new_status
            row.resource_version = await next_resource_version(session)
            return True

    async def remove_tenant(self, name: str) -> None:
        """Delete the Tenant row, its events and its secret once cleanup is done (the finalizer's job)."""
        async with self._sessions() as session, session.begin():
            await session.execute(delete(EventRow).where(EventRow.tenant == name))
            await session.execute(delete(SecretRow).where(SecretRow.tenant == name))
            await session.execute(delete(TenantRow).where(TenantRow.name == name))
            await notify(session, "Tenant", name)

    # Plans

    async def get_plan(self, name: str) -> Plan:
        async with self._sessions() as session:
            row = await session.get(PlanRow, name)
            if row is None:
                raise NotFound(f"plan {name!r} not found")
            return plan_from_row(row)

    async def list_plans(self) -> list[Plan]:
        async with self._sessions() as session:
            rows = (await session.scalars(select(PlanRow).order_by(PlanRow.name))).all()
            return [plan_from_row(row) for row in rows]

    async def apply_plan(self, plan: Plan, field_manager: str) -> Plan:
        spec = plan.spec.to_json()
        async with self._sessions() as session, session.begin():
            row = await session.get(PlanRow, plan.name, with_for_update=True)
            if row is None:
                row = PlanRow(
                    name=plan.name,
                    uid=str(uuid.uuid4()),
                    spec=spec,
                    status=None,
                    field_manager=field_manager,
                    generation=1,
                    resource_version=await next_resource_version(session),
                    created_at=utc_now(),
                )
                session.add(row)
                try:
                    await session.flush()
                except IntegrityError:
                    raise Conflict(f"plan {plan.name!r} was created concurrently; re-read and retry") from None
            elif row.spec != spec:
                row.spec = spec
                row.field_manager = field_manager
                row.generation += 1
                row.resource_version = await next_resource_version(session)
            else:
                return plan_from_row(row)
            await notify(session, "Plan", plan.name)
            return plan_from_row(row)

    # Events

    async def record_event(self, name: str, event_type: str, reason: str, message: str) -> None:
        """Attach an event to the Tenant, folding a repeat of the latest event into its count."""
        async with self._sessions() as session, session.begin():
            latest = await session.scalar(
                select(EventRow).where(EventRow.tenant == name).order_by(EventRow.id.desc()).limit(1)
            )
            if latest is not None and (latest.type, latest.reason, latest.message) == (event_type, reason, message):
                latest.count += 1
                latest.last_at = utc_now()
                return
            session.add(EventRow(tenant=name, type=event_type, reason=reason, message=message, count=1, last_at=utc_now()))
            await session.flush()
            oldest_kept = await session.scalar(
                select(EventRow.id)
                .where(EventRow.tenant == name)
                .order_by(EventRow.id.desc())
                .offset(MAX_EVENTS_PER_TENANT - 1)
                .limit(1)
            )
            if oldest_kept is not None:
                await session.execute(delete(EventRow).where(EventRow.tenant == name, EventRow.id < oldest_kept))

    async def tenant_events(self, name: str) -> list[Event]:
        async with self._sessions() as session:
            rows = (await session.scalars(select(EventRow).where(EventRow.tenant == name).order_by(EventRow.id))).all()
            return [
                Event(type=row.type, reason=row.reason, message=row.message, timestamp=rfc3339(row.last_at), count=row.count)
                for row in rows
            ]

    # Secrets

    async def read_tenant_secret(self, name: str) -> dict[str, str] | None:
        async with self._sessions() as session:
            row = await session.get(SecretRow, name)
            return dict(row.data) if row is not None else None

    async def write_tenant_secret(self, name: str, data: dict[str, str]) -> None:
        """Create or replace the tenant's secret so that it holds exactly `data`."""
        async with self._sessions() as session, session.begin():
            row = await session.get(SecretRow, name, with_for_update=True)
            if row is None:
                session.add(SecretRow(tenant=name, data=dict(data)))
            elif row.data != data:
                row.data = dict(data)

    async def delete_tenant_secret(self, name: str) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(delete(SecretRow).where(SecretRow.tenant == name))

    # Change notification

    async def changes(self, *, reconnect_delay: float = 1.0) -> AsyncIterator[tuple[str, str]]:
        """Yield `(kind, name)` for every committed change, reconnecting after a lost connection.

        Each time LISTEN starts, first on connecting and again after a
        reconnect, it yields `("*", "")`. Changes committed before that moment
        were not notified, so the caller must re-read everything then.
        """
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._url, autocommit=True) as connection:
                    await connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(NOTIFY_CHANNEL)))
                    yield "*", ""
                    async for notice in connection.notifies():
                        kind, _, name = notice.payload.partition("/")
                        yield kind, name
            except psycopg.OperationalError as exc:
                logger.warning("lost the change notification connection (%s); reconnecting", type(exc).__name__)
                await asyncio.sleep(reconnect_delay)


async def next_resource_version(session: AsyncSession) -> int:
    """Return a new value of the store-wide resource version, which only increases."""
    return int(await session.scalar(text("SELECT nextval('livery_resource_version')")))


async def notify(session: AsyncSession, kind: str, name: str) -> None:
    """Queue a change notification; PostgreSQL delivers it when the transaction commits."""
    await session.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": NOTIFY_CHANNEL, "payload": f"{kind}/{name}"})


def validate_tenant(name: str, spec: dict[str, Any]) -> Tenant:
    """Return the Tenant `name` with `spec`, or raise `Invalid` with every problem."""
    try:
        return Tenant.model_validate({"apiVersion": "livery.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": name}, "spec": spec})
    except ValidationError as exc:
        raise Invalid(format_validation_error(exc)) from None


def normalised(spec: dict[str, Any]) -> dict[str, Any]:
    """Return the spec with defaults filled in, so that spelling out a default is not a change."""
    return TenantSpec.model_validate(spec).to_json()


def _create_tenant_statement() -> Select:
    """Build the statement that inserts a Tenant row unless the name exists, in one round trip.

    It takes the next resource version and queues the change notification in
    the same statement; a name that exists inserts nothing and so notifies nothing.
    """
    created = (
        insert(TenantRow)
        .values(
            name=bindparam("name"), uid=bindparam("uid"), spec=bindparam("spec", type_=JSONB), status=None,
            managed_fields=bindparam("managed_fields", type_=JSONB), generation=1,
            resource_version=func.nextval(RESOURCE_VERSION_SEQUENCE), created_at=bindparam("created_at"),
        )
        .on_conflict_do_nothing(index_elements=[TenantRow.name])
        .returning(TenantRow.resource_version)
        .cte("created")
    )
    notify_change = func.pg_notify(NOTIFY_CHANNEL, bindparam("payload"))
    return select(created.c.resource_version, notify_change).select_from(created)


CREATE_TENANT = _create_tenant_statement()


def tenant_from_row(row: TenantRow) -> Tenant:
    metadata: dict[str, Any] = {
        "name": row.name,
        "uid": row.uid,
        "generation": row.generation,
        "resourceVersion": str(row.resource_version),
        "creationTimestamp": precise_rfc3339(row.created_at),
        "managedFields": managed_fields(row.managed_fields),
    }
    if row.deletion_requested_at is not None:
        metadata["deletionTimestamp"] = rfc3339(row.deletion_requested_at)
    data: dict[str, Any] = {"apiVersion": "livery.dev/v1alpha1", "kind": "Tenant", "metadata": metadata, "spec": row.spec}
    if row.status is not None:
        data["status"] = row.status
    return Tenant.model_validate(data)


def managed_fields(owners: dict[str, str]) -> list[dict[str, Any]]:
    """Render field owners as `metadata.managedFields`: one entry per manager with its paths."""
    entries = []
    for manager in sorted(set(owners.values())):
        paths = sorted(path for path, owner in owners.items() if owner == manager)
        entries.append({"manager": manager, "fields": paths})
    return entries


def plan_from_row(row: PlanRow) -> Plan:
    metadata = {
        "name": row.name,
        "uid": row.uid,
        "generation": row.generation,
        "resourceVersion": str(row.resource_version),
        "creationTimestamp": rfc3339(row.created_at),
    }
    data: dict[str, Any] = {"apiVersion": "livery.dev/v1alpha1", "kind": "Plan", "metadata": metadata, "spec": row.spec}
    if row.status is not None:
        data["status"] = row.status
    return Plan.model_validate(data)
