"""Idempotent PostgreSQL statements that the provisioner composes, one concern per function.

Each function takes an autocommit connection to the server (or to the named
database), checks before it creates, and treats a concurrent creator's
duplicate error as success, so any two callers and any crash in between
converge on the same state. Identifiers are always composed with
`psycopg.sql.Identifier`.
"""

from __future__ import annotations

import psycopg
from psycopg import errors, sql

# Errors that a concurrent creator of the same object causes: the check found
# nothing, but the object exists by the time this statement runs. Catalog
# unique indexes raise `unique_violation` instead of `duplicate_*` in some races.
ALREADY_EXISTS = (errors.DuplicateObject, errors.DuplicateDatabase, errors.DuplicateSchema, errors.UniqueViolation)


async def role_exists(connection: psycopg.AsyncConnection, role: str) -> bool:
    cursor = await connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
    return await cursor.fetchone() is not None


async def database_exists(connection: psycopg.AsyncConnection, database: str) -> bool:
    cursor = await connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
    return await cursor.fetchone() is not None


async def schema_exists(connection: psycopg.AsyncConnection, schema: str) -> bool:
    cursor = await connection.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
    return await cursor.fetchone() is not None


async def ensure_group_role(connection: psycopg.AsyncConnection, role: str) -> None:
    """Create a NOLOGIN role that owns objects or carries grants; nobody signs in as it."""
    if not await role_exists(connection, role):
        try:
            await connection.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        except ALREADY_EXISTS:
            pass
    await connection.execute(
        sql.SQL("ALTER ROLE {} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS").format(
            sql.Identifier(role)
        )
    )


async def ensure_login_role(connection: psycopg.AsyncConnection, role: str, password: str) -> None:
    """Create the tenant's LOGIN role, or bring an existing one back to these attributes and `password`.

    The password reaches the server only as a SCRAM-SHA-256 verifier computed
    here, so it never appears in the server's statement log.
    """
    if not await role_exists(connection, role):
        try:
            await connection.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        except ALREADY_EXISTS:
            pass
    verifier = connection.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()
    await connection.execute(
        sql.SQL(
            "ALTER ROLE {} LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS "
            "CONNECTION LIMIT -1 PASSWORD {}"
        ).format(sql.Identifier(role), sql.Literal(verifier))
    )


async def disable_login(connection: psycopg.AsyncConnection, role: str) -> None:
    """Stop `role` from signing in and end its open sessions."""
    await connection.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(role)))
    await connection.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s AND pid <> pg_backend_pid()",
        (role,),
    )


async def ensure_database(connection: psycopg.AsyncConnection, database: str, owner: str | None = None) -> None:
    """Create `database` (owned by `owner` when given). CREATE DATABASE cannot run in a transaction,
    so the check and the create are separate statements and a concurrent creator is tolerated."""
    if not await database_exists(connection, database):
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database))
        if owner is not None:
            statement = sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(owner))
        try:
            await connection.execute(statement)
        except ALREADY_EXISTS:
            pass
    if owner is not None:
        await connection.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(database), sql.Identifier(owner))
        )


async def restrict_connect(connection: psycopg.AsyncConnection, database: str, *roles: str) -> None:
    """Revoke CONNECT and TEMPORARY on `database` from PUBLIC and grant CONNECT to `roles` only."""
    await connection.execute(
        sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database))
    )
    for role in roles:
        await connection.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), sql.Identifier(role))
        )


async def ensure_schema(connection: psycopg.AsyncConnection, schema: str, owner: str) -> None:
    """Create `schema` owned by `owner` in the connected database."""
    if not await schema_exists(connection, schema):
        try:
            await connection.execute(
                sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(sql.Identifier(schema), sql.Identifier(owner))
            )
        except ALREADY_EXISTS:
            pass
    await connection.execute(
        sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(sql.Identifier(schema), sql.Identifier(owner))
    )
    await connection.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(sql.Identifier(schema)))


async def pin_search_path(connection: psycopg.AsyncConnection, role: str, database: str, schema: str) -> None:
    """Make `schema` the only schema `role` resolves names in when it connects to `database`."""
    await connection.execute(
        sql.SQL("ALTER ROLE {} IN DATABASE {} SET search_path TO {}").format(
            sql.Identifier(role), sql.Identifier(database), sql.Identifier(schema)
        )
    )


async def grant_membership(connection: psycopg.AsyncConnection, group: str, member: str) -> None:
    await connection.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(member)))


async def drop_role(connection: psycopg.AsyncConnection, role: str) -> None:
    """Drop `role`. Its objects and grants in every database must already be gone."""
    await connection.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
