"""The database provisioner against a real PostgreSQL: each isolation mode, idempotence, crashes and drops."""

from __future__ import annotations

import asyncio
import logging

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from livery.database import DatabaseError, DatabaseProvisioner
from livery.database.statements import scram_verifier_matches
from livery.tenant_schema import HEAD_REVISION
from livery.tenant_schema import migrate

from database_support import ISOLATIONS, unique_tenant_name

pytestmark = pytest.mark.asyncio(loop_scope="session")

TENANT_TABLES = {"users", "invitations", "password_reset_tokens", "login_link_uses", "api_keys", "products", "files"}


def role_row(admin, role: str) -> tuple | None:
    with admin() as connection:
        return connection.execute(
            "SELECT rolcanlogin, rolsuper, rolbypassrls, rolcreatedb, rolcreaterole, rolpassword "
            "FROM pg_authid WHERE rolname = %s",
            (role,),
        ).fetchone()


def tables_in(admin, database: str, schema: str) -> set[str]:
    with admin(database) as connection:
        rows = connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
        ).fetchall()
    return {row[0] for row in rows}


def revision_in(admin, database: str, schema: str) -> str:
    with admin(database) as connection:
        query = sql.SQL("SELECT version_num FROM {}.alembic_version").format(sql.Identifier(schema))
        return connection.execute(query).fetchone()[0]


def schema_of(info) -> str:
    return info.schema or "public"


@pytest.mark.parametrize("isolation", ISOLATIONS)
async def test_ensure_database_creates_tables_at_head(provision_tenant, admin, isolation):
    info = await provision_tenant(isolation)

    assert TENANT_TABLES <= tables_in(admin, info.database, schema_of(info))
    assert revision_in(admin, info.database, schema_of(info)) == HEAD_REVISION


@pytest.mark.parametrize("isolation", ISOLATIONS)
async def test_tenant_role_is_plain_login_role(provision_tenant, admin, isolation):
    info = await provision_tenant(isolation, password="first-password")

    can_login, superuser, bypass_rls, create_db, create_role, verifier = role_row(admin, info.role)
    assert can_login is True
    assert (superuser, bypass_rls, create_db, create_role) == (False, False, False, False)
    assert scram_verifier_matches(verifier, "first-password")


@pytest.mark.parametrize("isolation", ISOLATIONS)
async def test_acme_corp_gets_quoted_identifiers(provision_tenant, admin, isolation):
    info = await provision_tenant(isolation, name="acme-corp")

    assert info.role == "tenant_acme_corp"
    assert role_row(admin, "tenant_acme_corp") is not None
    if isolation == "database":
        assert info.database == "tenant_acme_corp"
    if isolation == "schema":
        assert info.schema == "tenant_acme_corp"
    assert TENANT_TABLES <= tables_in(admin, info.database, schema_of(info))


@pytest.mark.parametrize("isolation", ISOLATIONS)
async def test_ensure_database_twice_converges(provision_tenant, admin, isolation):
    name = unique_tenant_name()
    first = await provision_tenant(isolation, name=name, password="same-password")

    second = await provision_tenant(isolation, name=name, password="same-password")

    assert second == first
    assert scram_verifier_matches(role_row(admin, first.role)[5], "same-password")
    with admin() as connection:
        roles = connection.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (first.role,)).fetchone()[0]
    assert roles == 1


@pytest.mark.parametrize("isolation", ISOLATIONS)
async def test_app_url_signs_in_as_tenant_role(provision_tenant, isolation):
    info = await provision_tenant(isolation)

    with psycopg.connect(info.app_url) as connection:
        user, database = connection.execute("SELECT current_user, current_database()").fetchone()

    assert (user, database) == (info.role, info.database)


async def test_app_url_hidden_from_repr(provision_tenant):
    info = await provision_tenant("shared", password="hidden-password")

    assert "hidden-password" not in repr(info)
    assert "hidden-password" in info.app_url


class SimulatedCrash(Exception):
    """Raised in place of the n-th statement, as if the process died there."""


@pytest.mark.parametrize("isolation", ISOLATIONS)
async def test_ensure_database_converges_after_crash_at_each_statement(
    provisioner: DatabaseProvisioner, provision_tenant, admin, monkeypatch, isolation
):
    name = unique_tenant_name("crash")
    real_execute = psycopg.AsyncConnection.execute
    budget = {"left": 0}

    async def execute_until_crash(self, *args, **kwargs):
        if budget["left"] <= 0:
            raise SimulatedCrash()
        budget["left"] -= 1
        return await real_execute(self, *args, **kwargs)

    monkeypatch.setattr(psycopg.AsyncConnection, "execute", execute_until_crash)
    crashes = 0
    for statements_before_crash in range(0, 80):
        budget["left"] = statements_before_crash
        try:
            await provisioner.ensure_database(name, isolation, "crash-password")
        except SimulatedCrash:
            crashes += 1
            continue
        break
    monkeypatch.setattr(psycopg.AsyncConnection, "execute", real_execute)

    info = await provision_tenant(isolation, name=name, password="crash-password")

    assert crashes >= 5
    assert TENANT_TABLES <= tables_in(admin, info.database, schema_of(info))
    assert scram_verifier_matches(role_row(admin, info.role)[5], "crash-password")


async def test_ensure_database_rejects_invalid_tenant_name(provisioner: DatabaseProvisioner):
    with pytest.raises(DatabaseError) as raised:
        await provisioner.ensure_database("Acme; DROP", "database", "password")

    assert raised.value.temporary is False
    assert raised.value.reason == "InvalidTenantName"
    assert "'Acme; DROP'" in str(raised.value)


async def test_ensure_database_rejects_unknown_isolation(provisioner: DatabaseProvisioner):
    with pytest.raises(DatabaseError) as raised:
        await provisioner.ensure_database("acme", "cluster", "password")

    assert raised.value.reason == "InvalidIsolation"
    assert "'cluster'" in str(raised.value)


async def test_unreachable_server_is_temporary_error_without_password():
    provisioner = DatabaseProvisioner("postgresql://admin:very-secret@127.0.0.1:1/postgres", connect_timeout=1)

    with pytest.raises(DatabaseError) as raised:
        await provisioner.ensure_database("acme", "database", "tenant-secret")

    assert raised.value.temporary is True
    assert raised.value.reason == "DatabaseUnreachable"
    assert "very-secret" not in str(raised.value)
    assert "tenant-secret" not in str(raised.value)


async def test_database_mode_revokes_connect_from_public(provision_tenant, admin):
    info = await provision_tenant("database")

    with admin() as connection:
        public_can_connect = connection.execute(
            "SELECT has_database_privilege('public', %s, 'CONNECT')", (info.database,)
        ).fetchone()[0]
    assert public_can_connect is False


async def test_tenant_role_cannot_connect_to_other_tenant_database(provision_tenant):
    acme = await provision_tenant("database")
    globex = await provision_tenant("database")
    foreign_url = make_url(acme.app_url).set(database=globex.database).render_as_string(hide_password=False)

    with pytest.raises(psycopg.OperationalError) as raised:
        psycopg.connect(foreign_url).close()

    assert "permission denied for database" in str(raised.value)


@pytest.mark.parametrize("isolation", ["database", "schema"])
async def test_tenant_role_cannot_connect_to_shared_databases(provision_tenant, isolation):
    info = await provision_tenant(isolation)
    await provision_tenant("shared")
    shared_url = make_url(info.app_url).set(database="livery_shared").render_as_string(hide_password=False)

    with pytest.raises(psycopg.OperationalError) as raised:
        psycopg.connect(shared_url).close()

    assert "permission denied for database" in str(raised.value)


async def test_schema_role_cannot_read_other_tenant_schema(provision_tenant):
    acme = await provision_tenant("schema")
    globex = await provision_tenant("schema")

    with psycopg.connect(acme.app_url) as connection:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as raised:
            connection.execute(sql.SQL("SELECT * FROM {}.users").format(sql.Identifier(globex.schema)))

    assert "permission denied for schema" in str(raised.value)


async def test_schema_role_search_path_is_pinned(provision_tenant):
    info = await provision_tenant("schema")

    with psycopg.connect(info.app_url) as connection:
        search_path = connection.execute("SHOW search_path").fetchone()[0]

    assert search_path == info.schema


@pytest.mark.parametrize("isolation", ISOLATIONS)
async def test_drop_database_removes_role_and_data(provisioner: DatabaseProvisioner, admin, isolation):
    name = unique_tenant_name("drop")
    info = await provisioner.ensure_database(name, isolation, "drop-password")

    await provisioner.drop_database(name, isolation)

    assert role_row(admin, info.role) is None
    assert await provisioner.database_exists(name, isolation) is False
    if isolation == "schema":
        with admin(info.database) as connection:
            assert connection.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (info.schema,)).fetchone() is None


@pytest.mark.parametrize("isolation", ISOLATIONS)
async def test_drop_database_twice_is_harmless(provisioner: DatabaseProvisioner, isolation):
    name = unique_tenant_name("drop")
    await provisioner.ensure_database(name, isolation, "drop-password")
    await provisioner.drop_database(name, isolation)

    await provisioner.drop_database(name, isolation)

    assert await provisioner.database_exists(name, isolation) is False


async def test_drop_database_ends_open_sessions(provisioner: DatabaseProvisioner):
    name = unique_tenant_name("busy")
    info = await provisioner.ensure_database(name, "database", "busy-password")
    open_connection = psycopg.connect(info.app_url)

    try:
        await provisioner.drop_database(name, "database")
    finally:
        open_connection.close()

    assert await provisioner.database_exists(name, "database") is False


async def test_shared_drop_deletes_only_that_tenants_rows(provisioner: DatabaseProvisioner, provision_tenant, admin):
    keep = await provision_tenant("shared")
    name = unique_tenant_name("gone")
    dropped = await provisioner.ensure_database(name, "shared", "gone-password")
    for info in (keep, dropped):
        with psycopg.connect(info.app_url) as connection, connection.transaction():
            connection.execute("SELECT set_config('livery.tenant', %s, true)", (info.tenant,))
            connection.execute("INSERT INTO users (email) VALUES ('owner@example.com')")

    await provisioner.drop_database(name, "shared")

    with admin("livery_shared") as connection:
        tenants = connection.execute(
            "SELECT tenant_id FROM users WHERE tenant_id IN (%s, %s)", (keep.tenant, dropped.tenant)
        ).fetchall()
    assert tenants == [(keep.tenant,)]


@pytest.mark.parametrize("isolation", ISOLATIONS)
async def test_concurrent_tenants_provision_without_conflict(provision_tenant, isolation):
    infos = await asyncio.gather(*(provision_tenant(isolation) for _ in range(4)))

    assert len({info.role for info in infos}) == 4


@pytest.mark.parametrize("isolation", ISOLATIONS)
async def test_same_tenant_provisioned_concurrently_converges(provision_tenant, admin, isolation):
    name = unique_tenant_name("race")

    first, second = await asyncio.gather(
        provision_tenant(isolation, name=name, password="race-password"),
        provision_tenant(isolation, name=name, password="race-password"),
    )

    assert first == second
    assert TENANT_TABLES <= tables_in(admin, first.database, schema_of(first))


async def test_new_password_replaces_old(provision_tenant, admin):
    name = unique_tenant_name()
    await provision_tenant("database", name=name, password="first-password")

    info = await provision_tenant("database", name=name, password="second-password")

    verifier = role_row(admin, info.role)[5]
    assert scram_verifier_matches(verifier, "second-password")
    assert not scram_verifier_matches(verifier, "first-password")


# Shared-mode migrations run once per database, before the first shared tenant, so
# the same transactional rollback is covered by the two per-tenant modes.
@pytest.mark.parametrize("isolation", ["database", "schema"])
async def test_failed_migration_leaves_no_tables(provision_tenant, admin, monkeypatch, isolation):
    name = unique_tenant_name("broken")
    real_creation_script = migrate.creation_script

    def script_that_fails_at_the_end(mode: str) -> str:
        return real_creation_script(mode) + "\nSELECT 1 / 0;\n"

    monkeypatch.setattr(migrate, "creation_script", script_that_fails_at_the_end)
    with pytest.raises(DatabaseError) as raised:
        await provision_tenant(isolation, name=name, password="pw")
    failed_tables = tables_in(admin, *database_and_schema(name, isolation))
    monkeypatch.setattr(migrate, "creation_script", real_creation_script)

    info = await provision_tenant(isolation, name=name, password="pw")

    assert raised.value.reason == "MigrationFailed"
    assert "division by zero" in str(raised.value)
    assert failed_tables == set()
    assert TENANT_TABLES <= tables_in(admin, info.database, schema_of(info))


def database_and_schema(name: str, isolation: str) -> tuple[str, str]:
    identifier = "tenant_" + name.replace("-", "_")
    if isolation == "database":
        return identifier, "public"
    return "livery_tenants", identifier


def catalog_versions(admin, info) -> dict[str, str]:
    """Return the xmin (the writing transaction) of each catalog row that provisioning manages."""
    with admin() as connection:
        role = connection.execute("SELECT xmin::text FROM pg_authid WHERE rolname = %s", (info.role,)).fetchone()[0]
        database = connection.execute("SELECT xmin::text FROM pg_database WHERE datname = %s", (info.database,)).fetchone()[0]
    with admin(info.database) as connection:
        schema = connection.execute(
            "SELECT xmin::text FROM pg_namespace WHERE nspname = %s", (info.schema or "public",)
        ).fetchone()[0]
    return {"role": role, "database": database, "schema": schema}


@pytest.mark.parametrize("isolation", ISOLATIONS)
async def test_repeat_ensure_writes_no_catalog_row(provision_tenant, admin, isolation):
    name = unique_tenant_name()
    first = await provision_tenant(isolation, name=name, password="steady-password")
    before = catalog_versions(admin, first)

    await provision_tenant(isolation, name=name, password="steady-password")

    assert catalog_versions(admin, first) == before


async def test_unprivileged_admin_gets_permission_error(provision_tenant):
    plain = await provision_tenant("database", password="plain-password")
    provisioner = DatabaseProvisioner(make_url(plain.app_url).set(database="postgres").render_as_string(hide_password=False))

    with pytest.raises(DatabaseError) as raised:
        await provisioner.ensure_database(unique_tenant_name(), "database", "other-password")

    assert raised.value.reason == "DatabasePermissionDenied"
    assert "plain-password" not in str(raised.value)
    assert "other-password" not in str(raised.value)


async def test_app_url_encodes_password_characters(provision_tenant, admin):
    password = "p@ss:w/rd%?#&="

    info = await provision_tenant("shared", password=password)

    assert psycopg.conninfo.conninfo_to_dict(info.app_url)["password"] == password
    assert scram_verifier_matches(role_row(admin, info.role)[5], password)


@pytest.mark.parametrize("isolation", ISOLATIONS)
async def test_provisioning_logs_no_password(provisioner: DatabaseProvisioner, caplog, isolation):
    name = unique_tenant_name("logs")
    caplog.set_level(logging.DEBUG)

    await provisioner.ensure_database(name, isolation, "log-secret-password")
    await provisioner.drop_database(name, isolation)

    assert any(name in record.getMessage() for record in caplog.records)
    assert not any("log-secret-password" in record.getMessage() for record in caplog.records)
