"""Fixtures shared by every test folder: a real PostgreSQL server and Redis.

The suite uses the server named by `LIVERY_TEST_DATABASE_URL` (CI sets it to the
machine's PostgreSQL) and otherwise starts one embedded server from `pgserver`
for the whole session, so `make test` also works on a laptop.
"""

from __future__ import annotations

import os
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
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Return a superuser URL of a real PostgreSQL server."""
    configured = os.environ.get("LIVERY_TEST_DATABASE_URL")
    if configured:
        yield configured
        return

    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="stop")
    yield server.get_uri()


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
