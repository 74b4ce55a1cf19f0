"""Fixtures for the database tests: a provisioner on the session's PostgreSQL and tenants that clean up after themselves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import psycopg
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

from database_support import unique_tenant_name
from livery.database import DatabaseInfo, DatabaseProvisioner

ProvisionTenant = Callable[..., Awaitable[DatabaseInfo]]


@pytest.fixture(scope="session")
def provisioner(postgres_url: str) -> DatabaseProvisioner:
    return DatabaseProvisioner(postgres_url)


@pytest_asyncio.fixture(loop_scope="session")
async def provision_tenant(provisioner: DatabaseProvisioner) -> AsyncIterator[ProvisionTenant]:
    """Provision tenants on demand (a fresh name unless one is given) and drop each one after the test."""
    created: list[tuple[str, str]] = []

    async def provision(isolation: str, name: str | None = None, password: str = "tenant-password") -> DatabaseInfo:
        name = name or unique_tenant_name()
        created.append((name, isolation))
        return await provisioner.ensure_database(name, isolation, password)

    yield provision
    for name, isolation in reversed(created):
        await provisioner.drop_database(name, isolation)


@pytest.fixture
def admin(postgres_url: str):
    """Return a function that opens an autocommit superuser connection to a database of the test server."""
    def connect(database: str = "postgres") -> psycopg.Connection:
        url = make_url(postgres_url).set(database=database).render_as_string(hide_password=False)
        return psycopg.connect(url, autocommit=True)

    return connect
