"""The database provisioner: a tenant's database, schema or rows, its role and its tables.

The reconciler calls `ensure_database` on every reconcile and `drop_database`
or `snapshot` when a tenant is deleted, on Kubernetes and in the embedded
runtime alike. Every method is idempotent and safe to run again after a crash
between any two of its statements. The caller keeps the tenant's password and
passes the same one each time.

The three isolation modes:

- database: own database `tenant_<name>` owned by the LOGIN role of the same
  name; CONNECT revoked from PUBLIC.
- schema: own schema and LOGIN role in the database `livery_tenants`; the
  role's `search_path` is pinned to its schema, which it alone can use.
- shared: the database `livery_shared`; tables owned by the NOLOGIN role
  `livery_shared_owner`; a LOGIN role per tenant that owns nothing and is a
  member of the NOLOGIN group `livery_shared_app`, which has only DML grants;
  row-level security is enabled and forced on every table.

NOTE: tenant roles can still connect to databases that grant CONNECT to
PUBLIC (such as `postgres`) and read the system catalogs there, which list
other databases and role names. Revoke CONNECT on those databases from PUBLIC
on servers that host tenants. In shared mode, `pg_class.reltuples` also shows
every tenant the approximate total row count of each shared table.
"""

from __future__ import annotations

import asyncio
import logging
import re
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Literal

import psycopg
from psycopg import sql

from livery import naming
from livery.models.rules import TENANT_NAME_MAX, TENANT_NAME_PATTERN
from livery.tenant_schema import HEAD_REVISION, SHARED_OWNER_ROLE, VERSION_TABLE, apply_migrations
from livery.tenant_schema import migrate

from . import statements
from .errors import DatabaseError
from .snapshot import dump_database
from .urls import describe, parse_admin_url, render, tenant_url

Isolation = Literal["database", "schema", "shared"]
ISOLATIONS = ("database", "schema", "shared")

logger = logging.getLogger(__name__)

# Session-level advisory lock; closing the connection releases it, so a crash never leaves it held.
# Two keys are taken, always in this order: the tenant's (a prefixed tenant name),
# so that calls for one tenant run one at a time, then a shared database's.
LOCK_SQL = "SELECT pg_advisory_lock(hashtextextended('livery.database:' || %s, 0))"
UNLOCK_SQL = "SELECT pg_advisory_unlock(hashtextextended('livery.database:' || %s, 0))"
TENANT_LOCK_PREFIX = "tenant:"
# `apply_migrations`' transaction lock on one schema, with psycopg's placeholder.
MIGRATION_LOCK_SQL = migrate.LOCK_SQL.replace(":schema", "%s")


@dataclass(frozen=True)
class DatabaseInfo:
    """The location of a tenant's data and its app's connection URL. `app_url` contains the password."""

    tenant: str
    isolation: Isolation
    database: str
    role: str
    schema: str | None
    app_url: str = field(repr=False)


class DatabaseProvisioner:
    """Provisions tenants on the PostgreSQL server that `admin_url` names.

    `admin_url` must sign in as a superuser, or as a role with CREATEDB,
    CREATEROLE and BYPASSRLS that is a member of every tenant role it creates.
    """

    def __init__(self, admin_url: str, *, connect_timeout: float = 10.0) -> None:
        self._url = parse_admin_url(admin_url)
        self._connect_timeout = connect_timeout

    def __repr__(self) -> str:
        return f"DatabaseProvisioner({describe(self._url)!r})"

    async def ensure_database(self, tenant: str, isolation: str, password: str) -> DatabaseInfo:
        """Create or repair the tenant's database objects and role, then migrate its tables to head."""
        check_request(tenant, isolation)
        if not password:
            raise DatabaseError("the tenant's database password is empty", temporary=False, reason="InvalidPassword")
        async with self._connect() as admin, advisory_lock(admin, TENANT_LOCK_PREFIX + tenant):
            if isolation == "database":
                info = await self._ensure_database_mode(admin, tenant, password)
            elif isolation == "schema":
                info = await self._ensure_schema_mode(admin, tenant, password)
            else:
                info = await self._ensure_shared_mode(admin, tenant, password)
        logger.info("database ready for tenant %s (%s mode, database %s)", tenant, isolation, info.database)
        return info

    async def drop_database(self, tenant: str, isolation: str) -> None:
        """Remove the tenant's data and role: its database, its schema or its rows. Missing parts are skipped."""
        check_request(tenant, isolation)
        async with self._connect() as admin, advisory_lock(admin, TENANT_LOCK_PREFIX + tenant):
            if isolation == "database":
                await self._drop_database_mode(admin, tenant)
            elif isolation == "schema":
                await self._drop_schema_mode(admin, tenant)
            else:
                await self._drop_shared_mode(admin, tenant)
        logger.info("database dropped for tenant %s (%s mode)", tenant, isolation)

    async def database_exists(self, tenant: str, isolation: str) -> bool:
        """Return whether the tenant's database (database mode), schema (schema mode) or role (shared mode) exists."""
        check_request(tenant, isolation)
        identifier = naming.postgres_identifier(tenant)
        async with self._connect() as connection:
            if isolation == "database":
                return await statements.database_exists(connection, identifier)
            if isolation == "shared":
                return await statements.role_exists(connection, identifier)
            if not await statements.database_exists(connection, naming.SCHEMA_DATABASE):
                return False
        async with self._connect(naming.SCHEMA_DATABASE) as connection:
            return await statements.schema_exists(connection, identifier)

    async def provisioned(self, tenant: str, isolation: str) -> bool:
        """Return whether the tenant's login role, database and (in schema mode) schema all exist.

        A cheaper check than `ensure_database`, for callers that cache its result:
        it reads only catalogs and never checks grants or the migration revision.
        """
        check_request(tenant, isolation)
        identifier = naming.postgres_identifier(tenant)
        database = {"database": identifier, "schema": naming.SCHEMA_DATABASE}.get(isolation, naming.SHARED_DATABASE)
        async with self._connect() as connection:
            if not await statements.role_exists(connection, identifier):
                return False
            if not await statements.database_exists(connection, database):
                return False
        if isolation != "schema":
            return True
        async with self._connect(database) as connection:
            return await statements.schema_exists(connection, identifier)

    async def snapshot(self, tenant: str, isolation: str, destination: Path) -> Path:
        """Write a pg_dump custom-format archive of the tenant's data and return its path.

        `destination` is the archive's path, or an existing folder to put
        `<tenant>-<UTC time>.dump` in. In shared mode the archive contains the
        tables with only this tenant's rows.
        """
        check_request(tenant, isolation)
        identifier = naming.postgres_identifier(tenant)
        async with self._connect() as connection:
            server_version = connection.info.server_version
        database = {"database": identifier, "schema": naming.SCHEMA_DATABASE}.get(isolation, naming.SHARED_DATABASE)
        path = await dump_database(
            self._url.set(database=database),
            server_version=server_version,
            tenant=tenant,
            destination=Path(destination),
            schema=identifier if isolation == "schema" else None,
            shared_role=identifier if isolation == "shared" else None,
        )
        logger.info("snapshot of tenant %s written to %s", tenant, path)
        return path

    # Database mode.

    async def _ensure_database_mode(self, admin: psycopg.AsyncConnection, tenant: str, password: str) -> DatabaseInfo:
        identifier = naming.postgres_identifier(tenant)
        await statements.ensure_login_role(admin, identifier, password)
        await statements.ensure_database(admin, identifier, owner=identifier)
        await statements.restrict_connect(admin, identifier, identifier)
        async with self._connect(identifier) as connection:
            await self._migrate(connection, "database", None, owner_role=identifier)
        return self._info(tenant, "database", identifier, None, password)

    async def _drop_database_mode(self, admin: psycopg.AsyncConnection, tenant: str) -> None:
        identifier = naming.postgres_identifier(tenant)
        if await statements.role_exists(admin, identifier):
            await statements.disable_login(admin, identifier)
        await admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(identifier)))
        await statements.drop_role(admin, identifier)

    # Schema mode.

    async def _ensure_schema_mode(self, admin: psycopg.AsyncConnection, tenant: str, password: str) -> DatabaseInfo:
        identifier = naming.postgres_identifier(tenant)
        database = naming.SCHEMA_DATABASE
        # Only the grants on the shared database and its `public` schema rewrite rows that other
        # tenants' calls rewrite too, so only they wait for the database's lock. The role, its
        # search_path setting and its schema are rows of this tenant alone.
        await statements.ensure_login_role(admin, identifier, password)
        async with advisory_lock(admin, database):
            await statements.ensure_database(admin, database)
        async with self._connect(database) as connection:
            async with advisory_lock(admin, database):
                await statements.restrict_connect(admin, database, identifier)
                await statements.ensure_schema_access(connection, "public", {})
            await statements.pin_search_path(admin, identifier, database, identifier)
            await statements.ensure_schema(connection, identifier, owner=identifier)
            await self._migrate(connection, "schema", identifier, owner_role=identifier)
        return self._info(tenant, "schema", database, identifier, password)

    async def _drop_schema_mode(self, admin: psycopg.AsyncConnection, tenant: str) -> None:
        schema = sql.Identifier(naming.postgres_identifier(tenant))

        async def drop_schema(connection: psycopg.AsyncConnection) -> None:
            await connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema))

        await self._drop_from_shared_database(admin, tenant, naming.SCHEMA_DATABASE, drop_schema)

    # Shared mode.

    async def _ensure_shared_mode(self, admin: psycopg.AsyncConnection, tenant: str, password: str) -> DatabaseInfo:
        identifier = naming.postgres_identifier(tenant)
        database = naming.SHARED_DATABASE
        async with advisory_lock(admin, database):
            await statements.ensure_group_role(admin, SHARED_OWNER_ROLE)
            await statements.ensure_group_role(admin, naming.SHARED_APP_ROLE)
            await statements.ensure_database(admin, database)
            await statements.restrict_connect(admin, database, naming.SHARED_APP_ROLE)
        # The tenant's role and its membership are rows of this tenant alone, so they need no shared lock.
        await statements.ensure_login_role(admin, identifier, password)
        await statements.grant_membership(admin, naming.SHARED_APP_ROLE, identifier)
        async with self._connect(database) as connection, advisory_lock(admin, database):
            await prepare_shared_public_schema(connection)
            # Migrating while the lock is held keeps a second tenant from
            # waiting on the advisory lock inside the migration instead.
            await self._migrate(connection, "shared", None, owner_role=SHARED_OWNER_ROLE)
        return self._info(tenant, "shared", database, None, password)

    async def _drop_shared_mode(self, admin: psycopg.AsyncConnection, tenant: str) -> None:
        async def delete_rows(connection: psycopg.AsyncConnection) -> None:
            await delete_tenant_rows(connection, tenant)

        await self._drop_from_shared_database(admin, tenant, naming.SHARED_DATABASE, delete_rows)

    async def _drop_from_shared_database(
        self,
        admin: psycopg.AsyncConnection,
        tenant: str,
        database: str,
        remove_data: Callable[[psycopg.AsyncConnection], Awaitable[None]],
    ) -> None:
        """Lock the tenant's role out, run `remove_data` in `database`, then drop the role and its grants."""
        identifier = naming.postgres_identifier(tenant)
        async with advisory_lock(admin, database):
            role_exists = await statements.role_exists(admin, identifier)
            if role_exists:
                await statements.disable_login(admin, identifier)

            if await statements.database_exists(admin, database):
                async with self._connect(database) as connection:
                    await remove_data(connection)
                    if role_exists:
                        # Also revokes the role's grants on shared objects such as CONNECT on the database.
                        await connection.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(identifier)))

            if role_exists:
                await statements.drop_role(admin, identifier)

    # Helpers.

    async def _migrate(
        self, connection: psycopg.AsyncConnection, isolation: Isolation, schema: str | None, *, owner_role: str
    ) -> None:
        """Apply the tenant schema migrations unless `connection`'s database is already at head.

        An empty schema gets the creation script on `connection` itself, which saves the
        new connection, SQLAlchemy engine and thread that an Alembic upgrade needs.
        """
        revision = await schema_revision(connection, schema)
        if revision == HEAD_REVISION:
            return
        database = connection.info.dbname
        try:
            if revision is None and await create_tenant_tables(connection, isolation, schema, owner_role):
                return
            url = render(self._url.set(database=database))
            await asyncio.to_thread(apply_migrations, url, isolation, schema, owner_role=owner_role)
        except Exception as exc:
            raise DatabaseError(
                f"migrating the tenant tables in database {database} failed: {type(exc).__name__}: {safe_message(exc)}",
                reason="MigrationFailed",
            ) from exc

    def _info(self, tenant: str, isolation: Isolation, database: str, schema: str | None, password: str) -> DatabaseInfo:
        role = naming.postgres_identifier(tenant)
        app_url = tenant_url(self._url, role, password, database)
        return DatabaseInfo(tenant, isolation, database, role, schema, app_url)

    @asynccontextmanager
    async def _connect(self, database: str | None = None) -> AsyncIterator[psycopg.AsyncConnection]:
        url = self._url if database is None else self._url.set(database=database)
        try:
            connection = await psycopg.AsyncConnection.connect(
                render(url), autocommit=True, connect_timeout=max(1, int(self._connect_timeout))
            )
        except psycopg.OperationalError as exc:
            raise DatabaseError(
                f"cannot connect to the tenant database server {describe(url)}: {safe_message(exc)}",
                reason="DatabaseUnreachable",
            ) from None
        try:
            async with connection:
                yield connection
        except psycopg.OperationalError as exc:
            raise DatabaseError(f"the tenant database server failed: {safe_message(exc)}", reason="DatabaseUnreachable") from exc
        except psycopg.errors.InsufficientPrivilege as exc:
            raise DatabaseError(
                f"the admin role of the tenant database server lacks a privilege: {safe_message(exc)}; "
                "it must be a superuser or have CREATEDB, CREATEROLE and BYPASSRLS",
                reason="DatabasePermissionDenied",
            ) from exc
        except psycopg.Error as exc:
            raise DatabaseError(
                f"a statement on the tenant database server failed: {safe_message(exc)}", reason="DatabaseError"
            ) from exc


@asynccontextmanager
async def advisory_lock(connection: psycopg.AsyncConnection, key: str) -> AsyncIterator[None]:
    """Hold a session-level advisory lock on `key` (a tenant or a shared database) on `connection`.

    GRANT and REVOKE on one database or schema, and ALTER ROLE on one role,
    rewrite the same catalog row. Two provisioners doing so at once fail with
    "tuple concurrently updated", so they take turns. Advisory locks are
    scoped to the connection's database, so this serialises every provisioner
    whose admin URL names the same database. Closing the connection releases
    the lock, so a crash never leaves it held.
    """
    await connection.execute(LOCK_SQL, (key,))
    try:
        yield
    finally:
        if not connection.closed:
            try:
                await connection.execute(UNLOCK_SQL, (key,))
            except psycopg.Error:
                # A broken connection releases its locks when it closes; keep the first error.
                pass


async def schema_revision(connection: psycopg.AsyncConnection, schema: str | None) -> str | None:
    """Return the tenant schema's Alembic revision in the connected database, or None before the first migration."""
    table = sql.Identifier(schema or "public", VERSION_TABLE)
    cursor = await connection.execute("SELECT to_regclass(%s)", (table.as_string(connection),))
    if (await cursor.fetchone())[0] is None:
        return None
    cursor = await connection.execute(sql.SQL("SELECT version_num FROM {}").format(table))
    row = await cursor.fetchone()
    return row[0] if row else None


async def create_tenant_tables(
    connection: psycopg.AsyncConnection, isolation: Isolation, schema: str | None, owner_role: str
) -> bool:
    """Run the creation script of the tenant schema in one transaction, as `apply_migrations` does for an empty schema.

    Return False, changing nothing, when another caller created the tables first. The
    caller then runs `apply_migrations`, which brings them to head.
    """
    async with connection.transaction():
        await connection.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(owner_role)))
        await connection.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema or "public")))
        # The same advisory lock as `apply_migrations`, so the two never migrate one schema at once.
        await connection.execute(MIGRATION_LOCK_SQL, (schema or "",))
        if await schema_revision(connection, schema) is not None:
            return False
        await connection.execute(migrate.creation_script(isolation))
    return True


async def prepare_shared_public_schema(connection: psycopg.AsyncConnection) -> None:
    """Let the owner role create tables in `public` and the group role use them; revoke every other role's access."""
    await statements.ensure_schema_access(
        connection, "public", {SHARED_OWNER_ROLE: ("USAGE", "CREATE"), naming.SHARED_APP_ROLE: ("USAGE",)}
    )


async def delete_tenant_rows(connection: psycopg.AsyncConnection, tenant: str) -> None:
    """Delete every row of `tenant` from the shared tables in one transaction, `users` last.

    The admin connection bypasses row-level security as a superuser or a
    BYPASSRLS role, so the policies' role check does not hide the rows.
    """
    cursor = await connection.execute(
        "SELECT table_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND column_name = 'tenant_id' ORDER BY table_name = 'users', table_name"
    )
    tables = [row[0] for row in await cursor.fetchall()]
    async with connection.transaction():
        for table in tables:
            await connection.execute(
                sql.SQL("DELETE FROM {} WHERE tenant_id = %s").format(sql.Identifier("public", table)), (tenant,)
            )


def check_request(tenant: str, isolation: str) -> None:
    """Raise a permanent DatabaseError unless `tenant` is a valid tenant name and `isolation` a known mode."""
    if isolation not in ISOLATIONS:
        raise DatabaseError(
            f"isolation: must be one of database, schema, shared, got {isolation!r}",
            temporary=False,
            reason="InvalidIsolation",
        )
    if len(tenant) > TENANT_NAME_MAX or re.fullmatch(TENANT_NAME_PATTERN, tenant) is None:
        raise DatabaseError(
            f"tenant: must be a valid tenant name (lowercase letters, digits and '-', at most {TENANT_NAME_MAX} "
            f"characters), got {tenant!r}",
            temporary=False,
            reason="InvalidTenantName",
        )


def safe_message(exc: BaseException) -> str:
    """Return the first line of an error's message with any password in a URL masked."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)
