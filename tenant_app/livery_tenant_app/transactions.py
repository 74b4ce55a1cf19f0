"""The tenant app's database engine and its one-transaction-per-request sessions.

Every transaction starts by setting the tenant with `set_config(..., true)`,
which lasts only until the transaction ends, so a pooled connection never
carries one request's tenant (or `search_path`) into the next. In shared mode
row-level security reads `livery.tenant`; in schema mode `search_path` points
at the tenant's schema; in database mode `livery.tenant` fills `tenant_id`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from livery.tenant_schema import TENANT_SETTING

SET_TENANT_SQL = text(f"SELECT set_config('{TENANT_SETTING}', :tenant, true)")
SET_TENANT_AND_PATH_SQL = text(
    f"SELECT set_config('{TENANT_SETTING}', :tenant, true), set_config('search_path', :search_path, true)"
)


def async_database_url(url: str) -> str:
    """Return `url` with the psycopg 3 async driver, whatever driver it named."""
    return make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


class TenantDatabase:
    """Pooled connections to the tenant's database, handing out tenant-bound transactions."""

    def __init__(self, url: str, tenant: str, schema: str | None = None, pool_size: int = 5) -> None:
        self.tenant = tenant
        self.schema = schema
        self.engine: AsyncEngine = create_async_engine(
            async_database_url(url),
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=False,
            pool_recycle=1800,
            # Statements differ per request only in parameters; psycopg prepares them server-side.
            connect_args={"prepare_threshold": 5},
        )
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=True)
        # search_path takes a list of identifiers, quoted as PostgreSQL quotes identifiers.
        self._search_path = sql.Identifier(schema).as_string(None) if schema else None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """Yield a session in one transaction bound to the tenant; commit on success, roll back on error."""
        async with self._sessions() as session:
            async with session.begin():
                await self.bind_tenant(session)
                yield session

    async def bind_tenant(self, session: AsyncSession) -> None:
        if self._search_path is not None:
            await session.execute(SET_TENANT_AND_PATH_SQL, {"tenant": self.tenant, "search_path": self._search_path})
        else:
            await session.execute(SET_TENANT_SQL, {"tenant": self.tenant})

    async def dispose(self) -> None:
        await self.engine.dispose()
