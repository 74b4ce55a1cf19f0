"""Idempotent PostgreSQL statements that the provisioner composes, one concern per function.

Each function takes an autocommit connection to the server (or to the named
database). It reads the catalog first and writes only what differs, so a
repeat reconcile changes no catalog row. A concurrent creator's duplicate
error counts as success, so any two callers and any crash in between
converge on the same state. Identifiers are always composed with
`psycopg.sql.Identifier`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping

import psycopg
from psycopg import errors, sql

# Errors that a concurrent creator of the same object causes: the check found
# nothing, but the object exists by the time this statement runs. Catalog
# unique indexes raise `unique_violation` instead of `duplicate_*` in some races.
ALREADY_EXISTS = (errors.DuplicateObject, errors.DuplicateDatabase, errors.DuplicateSchema, errors.UniqueViolation)

# The grantee name that `acl_entries` reports for PUBLIC.
PUBLIC = ""

ROLE_ATTRIBUTES_SQL = (
    "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolinherit, rolconnlimit "
    "FROM pg_roles WHERE rolname = %s"
)
# Attribute values in the order of ROLE_ATTRIBUTES_SQL; None means "either".
GROUP_ROLE_ATTRIBUTES = (False, False, False, False, False, False, None, None)
LOGIN_ROLE_ATTRIBUTES = (True, False, False, False, False, False, True, -1)

ACL_SQL = {
    "database": (
        "SELECT CASE WHEN a.grantee = 0 THEN '' ELSE pg_get_userbyid(a.grantee) END, a.privilege_type "
        "FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a WHERE d.datname = %s"
    ),
    "schema": (
        "SELECT CASE WHEN a.grantee = 0 THEN '' ELSE pg_get_userbyid(a.grantee) END, a.privilege_type "
        "FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a WHERE n.nspname = %s"
    ),
}
SCHEMA_PRIVILEGES = frozenset({"USAGE", "CREATE"})


async def fetch_value(connection: psycopg.AsyncConnection, query: str, parameters: tuple) -> object | None:
    """Return the first column of the first row of `query`, or None when it returns no row."""
    cursor = await connection.execute(query, parameters)
    row = await cursor.fetchone()
    return None if row is None else row[0]


async def role_exists(connection: psycopg.AsyncConnection, role: str) -> bool:
    return await fetch_value(connection, "SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)) is not None


async def database_exists(connection: psycopg.AsyncConnection, database: str) -> bool:
    return await fetch_value(connection, "SELECT 1 FROM pg_database WHERE datname = %s", (database,)) is not None


async def schema_exists(connection: psycopg.AsyncConnection, schema: str) -> bool:
    return await fetch_value(connection, "SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)) is not None


async def acl_entries(connection: psycopg.AsyncConnection, kind: str, name: str) -> set[tuple[str, str]]:
    """Return the (grantee, privilege) pairs granted on a database or schema; PUBLIC is ''."""
    cursor = await connection.execute(ACL_SQL[kind], (name,))
    return {(grantee, privilege) for grantee, privilege in await cursor.fetchall()}


async def create_role(connection: psycopg.AsyncConnection, role: str) -> bool:
    """Create `role` as NOLOGIN unless it exists; return whether it existed before."""
    if await role_exists(connection, role):
        return True
    try:
        await connection.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    except ALREADY_EXISTS:
        return True
    return False


async def role_attributes_match(connection: psycopg.AsyncConnection, role: str, expected: tuple) -> bool:
    cursor = await connection.execute(ROLE_ATTRIBUTES_SQL, (role,))
    actual = await cursor.fetchone()
    if actual is None:
        return False
    return all(want is None or have == want for have, want in zip(actual, expected))


async def ensure_group_role(connection: psycopg.AsyncConnection, role: str) -> None:
    """Create a NOLOGIN role that owns objects or carries grants. No one signs in as it."""
    await create_role(connection, role)
    if not await role_attributes_match(connection, role, GROUP_ROLE_ATTRIBUTES):
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
    existed = await create_role(connection, role)
    if existed and await role_attributes_match(connection, role, LOGIN_ROLE_ATTRIBUTES):
        if await stored_password_matches(connection, role, password):
            return
    # The SCRAM key derivation costs milliseconds of CPU, so it runs off the event loop.
    verifier = (
        await asyncio.to_thread(connection.pgconn.encrypt_password, password.encode(), role.encode(), b"scram-sha-256")
    ).decode()
    await connection.execute(
        sql.SQL(
            "ALTER ROLE {} LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS "
            "CONNECTION LIMIT -1 PASSWORD {}"
        ).format(sql.Identifier(role), sql.Literal(verifier))
    )


async def stored_password_matches(connection: psycopg.AsyncConnection, role: str, password: str) -> bool:
    """Return whether the role's stored SCRAM verifier matches `password`; False when it cannot be read."""
    try:
        verifier = await fetch_value(connection, "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,))
    except errors.InsufficientPrivilege:
        # Only superusers can read pg_authid; other admins rewrite the password every time.
        return False
    return isinstance(verifier, str) and await asyncio.to_thread(scram_verifier_matches, verifier, password)


def scram_verifier_matches(verifier: str, password: str) -> bool:
    """Check a `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` verifier (RFC 5802, RFC 7677)."""
    try:
        method, parameters, keys = verifier.split("$")
        iterations, salt = parameters.split(":")
        stored_key = base64.b64decode(keys.split(":")[0])
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    except ValueError:
        return False
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return method == "SCRAM-SHA-256" and hmac.compare_digest(hashlib.sha256(client_key).digest(), stored_key)


async def disable_login(connection: psycopg.AsyncConnection, role: str) -> None:
    """Stop `role` from signing in and end its open sessions."""
    await connection.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(role)))
    await connection.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s AND pid <> pg_backend_pid()",
        (role,),
    )


async def ensure_database(connection: psycopg.AsyncConnection, database: str, owner: str | None = None) -> None:
    """Create `database` (owned by `owner` when given).

    CREATE DATABASE cannot run in a transaction, so the check and the create are
    separate statements and a concurrent creator's duplicate error is ignored.
    """
    query = "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s"
    current_owner = await fetch_value(connection, query, (database,))
    if current_owner is None:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database))
        if owner is not None:
            statement = sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(owner))
        try:
            await connection.execute(statement)
        except ALREADY_EXISTS:
            current_owner = await fetch_value(connection, query, (database,))
        else:
            current_owner = owner
    if owner is not None and current_owner != owner:
        await connection.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(database), sql.Identifier(owner))
        )


async def restrict_connect(connection: psycopg.AsyncConnection, database: str, *roles: str) -> None:
    """Revoke CONNECT and TEMPORARY on `database` from PUBLIC and grant CONNECT to `roles`."""
    entries = await acl_entries(connection, "database", database)
    if (PUBLIC, "CONNECT") in entries or (PUBLIC, "TEMPORARY") in entries:
        await connection.execute(
            sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database))
        )
    for role in roles:
        if (role, "CONNECT") not in entries:
            await connection.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), sql.Identifier(role))
            )


async def ensure_schema(connection: psycopg.AsyncConnection, schema: str, owner: str) -> None:
    """Create `schema` owned by `owner` in the connected database, with no privileges for PUBLIC."""
    query = "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s"
    current_owner = await fetch_value(connection, query, (schema,))
    if current_owner is None:
        try:
            await connection.execute(
                sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(sql.Identifier(schema), sql.Identifier(owner))
            )
        except ALREADY_EXISTS:
            current_owner = await fetch_value(connection, query, (schema,))
        else:
            current_owner = owner
    if current_owner != owner:
        await connection.execute(
            sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(sql.Identifier(schema), sql.Identifier(owner))
        )
    await ensure_schema_access(connection, schema, {})


async def ensure_schema_access(
    connection: psycopg.AsyncConnection, schema: str, grants: Mapping[str, Iterable[str]]
) -> None:
    """Revoke every privilege on `schema` from PUBLIC and grant each role its privileges (USAGE, CREATE)."""
    entries = await acl_entries(connection, "schema", schema)
    if any(grantee == PUBLIC for grantee, _ in entries):
        await connection.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(sql.Identifier(schema)))
    for role, privileges in grants.items():
        missing = [privilege for privilege in privileges if (role, privilege) not in entries]
        if not missing:
            continue
        if not SCHEMA_PRIVILEGES.issuperset(missing):
            raise ValueError(f"schema privileges must be among {sorted(SCHEMA_PRIVILEGES)}, got {missing}")
        await connection.execute(
            sql.SQL("GRANT {} ON SCHEMA {} TO {}").format(
                sql.SQL(", ").join(sql.SQL(privilege) for privilege in missing),
                sql.Identifier(schema),
                sql.Identifier(role),
            )
        )


async def pin_search_path(connection: psycopg.AsyncConnection, role: str, database: str, schema: str) -> None:
    """Make `schema` the only schema `role` resolves names in when it connects to `database`."""
    settings = await fetch_value(
        connection,
        "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
        "JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = %s AND d.datname = %s",
        (role, database),
    )
    if settings and f"search_path={schema}" in settings:
        return
    await connection.execute(
        sql.SQL("ALTER ROLE {} IN DATABASE {} SET search_path TO {}").format(
            sql.Identifier(role), sql.Identifier(database), sql.Identifier(schema)
        )
    )


async def grant_membership(connection: psycopg.AsyncConnection, group: str, member: str) -> None:
    """Make `member` a member of `group`, inheriting its privileges."""
    is_member = await fetch_value(
        connection,
        "SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles r ON r.oid = m.member "
        "WHERE g.rolname = %s AND r.rolname = %s",
        (group, member),
    )
    if is_member is None:
        await connection.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(member)))


async def drop_role(connection: psycopg.AsyncConnection, role: str) -> None:
    """Drop `role`. Its objects and grants in every database must already be gone."""
    await connection.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
