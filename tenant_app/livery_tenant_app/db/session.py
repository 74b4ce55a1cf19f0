"""One pooled engine per process and one transaction per request, with the tenant set inside it.

Every session that `TenantDatabase.session` opens runs in a single transaction
whose first statement sets the tenant context with `set_config(..., true)`,
the function form of `SET LOCAL`:

- `livery.tenant` in every mode. Row-level security in shared mode and the
  `tenant_id` column defaults in all modes read it.
- `search_path` in schema mode, even though the role's own `search_path` is
  pinned to its schema, so a connection that reaches the pool by another path
  still resolves names in the right schema.
- `role` when the context names one, for a pool that serves several tenants
  through a role that is a member of each tenant's role.

The settings end with the transaction, so a pooled connection never carries
one request's tenant into the next. Nothing here sets anything at session
level.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from livery.tenant_schema import TENANT_SETTING, VERSION_TABLE

Isolation = Literal["database", "schema", "shared"]


@dataclass(frozen=True)
class TenantContext:
    """The tenant a transaction works for: its name, its schema (schema mode) and the role to act as, if any."""

    tenant: str
    schema: str | None = None
    role: str | None = None


class TenantDatabase:
    """The process's engine and session factory for one isolation mode.

    `url` is the tenant app role's URL (`LIVERY_DATABASE_URL`); `postgresql://`
    and `postgresql+psycopg://` both work. The pool keeps `pool_size`
    connections open and opens up to `max_overflow` more under load. A request
    waits at most `pool_timeout` seconds for a connection. With
    `statement_timeout_ms`, PostgreSQL cancels any statement of a session that
    runs longer, so one tenant's slow query cannot hold a shared server.
    """

    def __init__(
        self,
        url: str,
        *,
        isolation: Isolation,
        tenant: str,
        schema: str | None = None,
        pool_size: int = 5,
        max_overflow: int = 5,
        pool_timeout: float = 10.0,
        statement_timeout_ms: int | None = None,
        echo: bool = False,
    ) -> None:
        if isolation not in ("database", "schema", "shared"):
            raise ValueError(f"isolation must be database, schema or shared, got {isolation!r}")
        if isolation == "schema" and not schema:
            raise ValueError("schema is required in schema mode (LIVERY_DB_SCHEMA)")
        if statement_timeout_ms is not None and statement_timeout_ms <= 0:
            raise ValueError(f"statement_timeout_ms must be positive, got {statement_timeout_ms}")
        self.statement_timeout_ms = statement_timeout_ms
        self.isolation: Isolation = isolation
        self.default_context = TenantContext(tenant=tenant, schema=schema if isolation == "schema" else None)
        self.engine: AsyncEngine = create_async_engine(
            make_url(url).set(drivername="postgresql+psycopg"),
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout,
            pool_recycle=1800,
            echo=echo,
        )
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=True)

    @classmethod
    def from_settings(cls, settings: Any, **options: Any) -> TenantDatabase:
        """Build from the tenant app's settings: `database_url`, `isolation`, `tenant`, `db_schema`, `database_pool_size`."""
        return cls(
            settings.database_url.get_secret_value(),
            isolation=settings.isolation,
            tenant=settings.tenant,
            schema=settings.db_schema,
            pool_size=settings.database_pool_size,
            **options,
        )

    @asynccontextmanager
    async def session(self, context: TenantContext | None = None) -> AsyncIterator[AsyncSession]:
        """Open a session in one transaction with the tenant context set; commit on success, roll back on error."""
        context = context or self.default_context
        statement, parameters = self.context_statement(context)
        async with self.sessionmaker() as session, session.begin():
            await session.execute(statement, parameters)
            yield session

    def context_statement(self, context: TenantContext) -> tuple[Any, dict[str, str]]:
        """Return the one statement that sets `context` for the current transaction, and its parameters."""
        settings = [f"set_config('{TENANT_SETTING}', :tenant, true)"]
        parameters = {"tenant": context.tenant}
        if context.role is not None:
            # The role goes first, so a failing switch stops the statement before anything else is set.
            settings.insert(0, "set_config('role', :role, true)")
            parameters["role"] = context.role
        if self.statement_timeout_ms is not None:
            settings.append("set_config('statement_timeout', :statement_timeout, true)")
            parameters["statement_timeout"] = str(self.statement_timeout_ms)
        if self.isolation == "schema":
            if not context.schema:
                raise ValueError(f"schema mode needs the schema of tenant {context.tenant!r}")
            settings.append("set_config('search_path', :search_path, true)")
            parameters["search_path"] = sql.Identifier(context.schema).as_string()
        return text("SELECT " + ", ".join(settings)), parameters

    async def schema_revision(self) -> str | None:
        """Return the tenant schema's Alembic revision in the database, or None when it has none yet."""
        async with self.session() as session:
            try:
                result = await session.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
            except ProgrammingError:
                return None
            return result.scalar_one_or_none()

    async def dispose(self) -> None:
        """Close every pooled connection; call it when the app shuts down."""
        await self.engine.dispose()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: a session for this request, from `request.app.state.tenant_database`.

    The transaction commits when the endpoint returns and rolls back when it
    raises, before the response is sent (the dependency is declared with
    `scope="function"`), so a failed commit becomes an error response.
    """
    database: TenantDatabase = request.app.state.tenant_database
    async with database.session() as session:
        yield session


TenantSession = Annotated[AsyncSession, Depends(get_session, scope="function")]
