"""Fixtures shared by every test folder: a real PostgreSQL server and Redis.

The suite uses the server named by `LIVERY_TEST_DATABASE_URL` (CI sets it to the
machine's PostgreSQL) and otherwise starts one embedded server from `pgserver`
for the whole session, so `make test` also works on a laptop.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from k8s_emulator import kube, kube_clean  # noqa: F401  (fixtures: Kubernetes API emulator)

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Return a superuser URL of a real PostgreSQL server."""
    configured = os.environ.get("LIVERY_TEST_DATABASE_URL")
    if configured:
        if os.environ.get("LIVERY_TEST_DROP_LEFTOVERS") == "1":
            drop_leftovers(configured)
        yield configured
        return

    import pgserver

    # Not under pytest's base temp folder: pytest resets it to mode 0700 when a session
    # starts, and as root pgserver runs PostgreSQL as another user who must traverse it.
    pgdata = Path(tempfile.mkdtemp(prefix="livery-test-pgdata-"))
    server = pgserver.get_server(pgdata, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)


def drop_leftovers(server_url: str) -> None:
    """Drop the databases and roles that an interrupted earlier run left on a reused test server.

    Tenant databases and roles have fixed names (`tenant_acme`, `livery_shared`), so
    a run killed half-way would otherwise hand its state to the next run. `.ci/run`
    turns this on with LIVERY_TEST_DROP_LEFTOVERS=1; it must stay off while two test
    runs share one server, since each would drop the other's databases.
    """
    failures: list[str] = []
    with psycopg.connect(server_url, autocommit=True) as connection:
        databases = connection.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'tenant\\_%' OR datname LIKE 'livery\\_%'"
        ).fetchall()
        for (database,) in databases:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))

        roles = connection.execute(
            "SELECT rolname FROM pg_roles WHERE (rolname LIKE 'tenant\\_%' OR rolname LIKE 'livery\\_%') "
            "AND rolname <> current_user AND NOT rolsuper"
        ).fetchall()
        for (role,) in roles:
            try:
                connection.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                connection.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
            except psycopg.Error as exc:
                failures.append(f"{role} ({str(exc).splitlines()[0]})")
    if failures:
        warnings.warn(f"could not drop {len(failures)} leftover roles, e.g. {failures[0]}", stacklevel=1)


@pytest.fixture
def scratch_database(postgres_url: str) -> Iterator[str]:
    """Create an empty database for one test and drop it afterwards; return its URL."""
    name = f"livery_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = database_url(postgres_url, name)
    yield url
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def database_url(server_url: str, database: str) -> str:
    """Return `server_url` pointing at another database on the same server."""
    return make_url(server_url).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def redis_url() -> str | None:
    """Return the Redis URL from `LIVERY_REDIS_URL`, or None when the suite runs without Redis."""
    return os.environ.get("LIVERY_REDIS_URL")


CHROMIUM = Path("/usr/bin/chromium")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip `browser` tests where Debian's Chromium is missing, except in CI, which must have it."""
    if CHROMIUM.exists() or os.environ.get("CI") == "true":
        return
    skip = pytest.mark.skip(reason=f"needs {CHROMIUM} (apt-get install -y chromium); .ci/run installs it")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)
