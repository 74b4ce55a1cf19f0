"""Isolation between tenants at the database level, for roles the reconciler provisions.

Each test provisions tenants through the real provisioner, connects with the
URL the reconciler stores in the tenant's secret, and tries to reach the other
tenant's data.
"""

from __future__ import annotations

import secrets

import psycopg
import pytest
from operator_support import unique_name
from psycopg import sql

INSERT_USER = "INSERT INTO users (id, email) VALUES (gen_random_uuid(), %s)"
SET_TENANT = "SELECT set_config('livery.tenant', %s, true)"


@pytest.fixture
async def shared_pair(provisioner):
    """Provision two shared-mode tenants; yield (name, app URL) of each, then drop both."""
    names = [unique_name("rls"), unique_name("rls")]
    infos = [await provisioner.ensure_database(name, "shared", secrets.token_urlsafe(16)) for name in names]
    yield [(name, info.app_url) for name, info in zip(names, infos)]
    for name in names:
        await provisioner.drop_database(name, "shared")


def insert_user(url: str, tenant: str, email: str) -> None:
    with psycopg.connect(url) as connection, connection.transaction():
        connection.execute(SET_TENANT, (tenant,))
        connection.execute(INSERT_USER, (email,))


def test_shared_role_owns_no_table(shared_pair):
    (_, url), _ = shared_pair
    with psycopg.connect(url) as connection:
        owned = connection.execute(
            "SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
        ).fetchone()[0]
        forced = connection.execute(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'users'::regclass"
        ).fetchone()

    assert owned == 0
    assert forced == (True, True)


def test_shared_queries_without_tenant_return_nothing(shared_pair):
    (name, url), _ = shared_pair
    insert_user(url, name, "someone@a.test")

    with psycopg.connect(url) as connection:
        count = connection.execute("SELECT count(*) FROM users").fetchone()[0]

    assert count == 0


def test_shared_insert_for_other_tenant_fails(shared_pair):
    (_, url), (other, _) = shared_pair

    with pytest.raises(psycopg.errors.InsufficientPrivilege) as rejected:
        insert_user(url, other, "intruder@b.test")

    assert "row-level security" in str(rejected.value)


def test_shared_role_cannot_read_other_tenant_rows(shared_pair):
    (_, url), (other, other_url) = shared_pair
    insert_user(other_url, other, "private@b.test")

    with psycopg.connect(url) as connection, connection.transaction():
        connection.execute(SET_TENANT, (other,))
        count = connection.execute("SELECT count(*) FROM users").fetchone()[0]

    assert count == 0


def test_tenant_setting_ends_with_transaction(shared_pair):
    (name, url), _ = shared_pair

    # One connection serves two requests in turn, as a pool of one would.
    with psycopg.connect(url) as connection:
        with connection.transaction():
            connection.execute(SET_TENANT, (name,))
            connection.execute(INSERT_USER, ("first@a.test",))
            seen_inside = connection.execute("SELECT count(*) FROM users").fetchone()[0]
        seen_after = connection.execute("SELECT count(*) FROM users").fetchone()[0]

    assert seen_inside == 1
    assert seen_after == 0


async def test_schema_role_cannot_read_other_schema(provisioner):
    names = [unique_name("sch"), unique_name("sch")]
    infos = [await provisioner.ensure_database(name, "schema", secrets.token_urlsafe(16)) for name in names]
    try:
        with psycopg.connect(infos[0].app_url) as connection:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(sql.SQL("SELECT count(*) FROM {}.users").format(sql.Identifier(infos[1].schema)))
    finally:
        for name in names:
            await provisioner.drop_database(name, "schema")


async def test_database_role_cannot_connect_to_other_database(provisioner):
    names = [unique_name("dbm"), unique_name("dbm")]
    infos = [await provisioner.ensure_database(name, "database", secrets.token_urlsafe(16)) for name in names]
    try:
        other = psycopg.conninfo.make_conninfo(infos[0].app_url, dbname=infos[1].database)
        with pytest.raises(psycopg.OperationalError) as refused:
            psycopg.connect(other, connect_timeout=5).close()
        assert "permission denied" in str(refused.value)
    finally:
        for name in names:
            await provisioner.drop_database(name, "database")
