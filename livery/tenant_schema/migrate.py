"""Apply the tenant schema's Alembic migrations under a PostgreSQL advisory lock."""

from __future__ import annotations

import io
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import sqlalchemy
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.pool import NullPool

from .constants import VERSION_TABLE

Isolation = Literal["database", "schema", "shared"]

SCRIPT_LOCATION = Path(__file__).resolve().parent

# Serialises concurrent `apply_migrations` calls on one database and schema.
# Advisory locks are scoped to the current database, so the key only has to
# tell the schemas of one database apart.
LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended('livery.tenant_schema:' || :schema, 0))"


# Alembic's `op` and `context` are module-level proxies to the running
# migration, so two migrations in threads of one process would run each
# other's operations. Runs in one process take turns; the advisory lock above
# serialises processes.
_ALEMBIC_LOCK = threading.Lock()


class MigrationError(Exception):
    """The tenant schema could not be migrated."""


@lru_cache(maxsize=1)
def _script_directory() -> ScriptDirectory:
    return ScriptDirectory(str(SCRIPT_LOCATION))


HEAD_REVISION: str = _script_directory().get_current_head() or ""


def sqlalchemy_url(url: str) -> sqlalchemy.URL:
    """Return `url` with SQLAlchemy's psycopg 3 driver, whether it names a driver or not."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    raise MigrationError(f"database URL scheme {parsed.drivername!r} is not PostgreSQL; use postgresql://")


def apply_migrations(
    owner_url: str,
    isolation: Isolation,
    schema: str | None,
    *,
    owner_role: str | None = None,
    target: str = "head",
) -> None:
    """Upgrade the tenant schema to `target` (default `HEAD_REVISION`), creating the tables on first use.

    `owner_url` connects to the tenant's database. When `owner_role` is given,
    the migrations run as that role (`SET LOCAL ROLE`), so it owns what they
    create. The provisioner connects as its admin user and passes the tenant's
    role (or the shared owner role). In schema mode, `schema` is the tenant's
    schema, which contains the tables and the version table.

    All migrations run in one transaction that first takes an advisory lock, so
    concurrent callers wait for each other and the second one finds the schema
    already at head. A failure rolls everything back. An empty schema gets the
    SQL that Alembic's offline mode renders for all migrations, cached per
    isolation mode, so creating tenants needs no Alembic run and several
    threads can create tenants at once.
    """
    if isolation not in ("database", "schema", "shared"):
        raise MigrationError(f"isolation must be database, schema or shared, got {isolation!r}")
    if (isolation == "schema") != (schema is not None):
        raise MigrationError("schema must be given in schema mode and only in schema mode")

    engine = sqlalchemy.create_engine(sqlalchemy_url(owner_url), poolclass=NullPool)
    try:
        with engine.connect() as connection, connection.begin():
            _prepare_transaction(connection, schema, owner_role)
            current = _current_revision(connection)
            if current is None and target in ("head", HEAD_REVISION):
                connection.exec_driver_sql(creation_script(isolation))
            elif current != (HEAD_REVISION if target == "head" else target):
                with _ALEMBIC_LOCK:
                    _upgrade(connection, isolation, schema, target)
    finally:
        engine.dispose()


def _prepare_transaction(connection: Connection, schema: str | None, owner_role: str | None) -> None:
    raw = connection.connection.driver_connection
    if owner_role is not None:
        statement = sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(owner_role))
        connection.exec_driver_sql(statement.as_string(raw))
    # An explicit search_path keeps a schema named like the role ("$user") from
    # catching the tables in database and shared mode.
    statement = sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema or "public"))
    connection.exec_driver_sql(statement.as_string(raw))
    connection.execute(sqlalchemy.text(LOCK_SQL), {"schema": schema or ""})


def _current_revision(connection: Connection) -> str | None:
    """Return the revision in the version table of the first schema on the search path, or None."""
    exists = connection.execute(sqlalchemy.text("SELECT to_regclass(:table)"), {"table": VERSION_TABLE}).scalar()
    if exists is None:
        return None
    return connection.execute(sqlalchemy.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def _config(isolation: Isolation) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.attributes["isolation"] = isolation
    return config


@lru_cache(maxsize=3)
def creation_script(isolation: Isolation) -> str:
    """Return the SQL that creates the tenant schema from nothing to head, as Alembic's offline mode renders it.

    Names are unqualified: the caller's `search_path` puts the tables and the
    version table in the tenant's schema in schema mode, and in `public` otherwise.
    """
    output = io.StringIO()
    with _ALEMBIC_LOCK:
        _run_alembic(
            isolation,
            "head",
            as_sql=True,
            url="postgresql+psycopg://",
            output_buffer=output,
            transactional_ddl=False,
            literal_binds=True,
        )
    return output.getvalue()


def _upgrade(connection: Connection, isolation: Isolation, schema: str | None, target: str) -> None:
    _run_alembic(isolation, target, connection=connection, version_table_schema=schema, transactional_ddl=True)


def _run_alembic(isolation: Isolation, target: str, *, as_sql: bool = False, **options: Any) -> None:
    """Run the migrations up to `target` with Alembic; `options` go to `EnvironmentContext.configure`."""
    script = _script_directory()

    def upgrade(revision, context):  # noqa: ANN001 - Alembic's callback signature
        return script._upgrade_revs(target, revision)

    with EnvironmentContext(_config(isolation), script, fn=upgrade, as_sql=as_sql, destination_rev=target) as environment:
        environment.configure(version_table=VERSION_TABLE, **options)
        with environment.begin_transaction():
            environment.run_migrations()
