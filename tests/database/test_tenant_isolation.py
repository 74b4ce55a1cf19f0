"""Isolation between tenants through the tenant app's session layer, against a real PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.engine import make_url

from livery.tenant_schema import PRODUCT_SEARCH_CONFIG
from livery_tenant_app.db import ApiKey, LoginLinkUse, Product, TenantContext, TenantDatabase, User

pytestmark = pytest.mark.asyncio(loop_scope="session")

SHARED_TABLES = ("users", "invitations", "password_reset_tokens", "login_link_uses", "api_keys", "products", "files")


def tenant_database(info, **options) -> TenantDatabase:
    return TenantDatabase(info.app_url, isolation=info.isolation, tenant=info.tenant, schema=info.schema, **options)


async def add_user(database: TenantDatabase, email: str, context: TenantContext | None = None) -> None:
    async with database.session(context) as session:
        session.add(User(email=email, role="member"))


async def user_emails(database: TenantDatabase, context: TenantContext | None = None) -> list[str]:
    async with database.session(context) as session:
        return list((await session.scalars(select(User.email).order_by(User.email))).all())


@pytest.fixture
async def shared_pair(provision_tenant):
    acme = await provision_tenant("shared")
    globex = await provision_tenant("shared")
    return acme, globex


async def test_shared_tables_force_row_level_security(shared_pair, admin):
    with admin("livery_shared") as connection:
        rows = connection.execute(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
            "WHERE relname = ANY(%s) AND relnamespace = 'public'::regnamespace",
            (list(SHARED_TABLES),),
        ).fetchall()

    assert {row[0] for row in rows} == set(SHARED_TABLES)
    for name, enabled, forced in rows:
        assert (name, enabled, forced) == (name, True, True)


async def test_shared_tenant_role_owns_nothing(shared_pair, admin):
    acme, _ = shared_pair

    with admin("livery_shared") as connection:
        owned = connection.execute(
            "SELECT count(*) FROM pg_class WHERE relowner = %s::regrole", (acme.role,)
        ).fetchone()[0]
        owned_schemas = connection.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspowner = %s::regrole", (acme.role,)
        ).fetchone()[0]
        table_owner = connection.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'users'").fetchone()[0]

    assert (owned, owned_schemas) == (0, 0)
    assert table_owner == "livery_shared_owner"


async def test_shared_tenant_sees_only_its_rows(shared_pair):
    acme, globex = shared_pair
    acme_db, globex_db = tenant_database(acme), tenant_database(globex)
    try:
        await add_user(acme_db, "alice@acme.test")
        await add_user(globex_db, "bob@globex.test")

        acme_emails = await user_emails(acme_db)
        globex_emails = await user_emails(globex_db)
    finally:
        await acme_db.dispose()
        await globex_db.dispose()

    assert acme_emails == ["alice@acme.test"]
    assert globex_emails == ["bob@globex.test"]


async def test_shared_insert_for_other_tenant_fails(shared_pair):
    acme, globex = shared_pair
    acme_db = tenant_database(acme)
    try:
        with pytest.raises(DBAPIError) as raised:
            async with acme_db.session() as session:
                session.add(User(email="mallory@acme.test", tenant_id=globex.tenant))
    finally:
        await acme_db.dispose()

    assert "row-level security" in str(raised.value.orig)


async def test_shared_role_naming_other_tenant_sees_nothing(shared_pair):
    acme, globex = shared_pair
    acme_db, globex_db = tenant_database(acme), tenant_database(globex)
    try:
        await add_user(globex_db, "bob@globex.test")

        emails = await user_emails(acme_db, TenantContext(tenant=globex.tenant))
    finally:
        await acme_db.dispose()
        await globex_db.dispose()

    assert emails == []


async def test_shared_without_tenant_returns_nothing(shared_pair):
    acme, _ = shared_pair
    acme_db = tenant_database(acme)
    try:
        await add_user(acme_db, "alice@acme.test")
        with psycopg.connect(acme.app_url) as connection:
            count = connection.execute("SELECT count(*) FROM users").fetchone()[0]
    finally:
        await acme_db.dispose()

    assert count == 0


async def test_shared_insert_without_tenant_fails(shared_pair):
    acme, _ = shared_pair

    with psycopg.connect(acme.app_url) as connection:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as raised:
            connection.execute("INSERT INTO users (email) VALUES ('nobody@example.com')")

    assert "row-level security" in str(raised.value)


async def test_shared_insert_after_tenant_transaction_ends_fails(shared_pair):
    acme, _ = shared_pair

    with psycopg.connect(acme.app_url) as connection:
        with connection.transaction():
            connection.execute("SELECT set_config('livery.tenant', %s, true)", (acme.tenant,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as raised:
            connection.execute("INSERT INTO users (email) VALUES ('late@example.com')")

    assert "row-level security" in str(raised.value)


async def test_shared_tenant_cannot_alter_or_disable_security(shared_pair):
    acme, _ = shared_pair

    with psycopg.connect(acme.app_url, autocommit=True) as connection:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute("ALTER TABLE users DISABLE ROW LEVEL SECURITY")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute("SET ROLE livery_shared_owner")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute("TRUNCATE users CASCADE")
        connection.execute("SET row_security = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as raised:
            connection.execute("SELECT count(*) FROM users")

    assert "row-level security" in str(raised.value)


async def gateway_role(admin, *tenant_roles: str, database: str) -> str:
    """Create a LOGIN role that may act as each tenant role (NOINHERIT: only through SET ROLE)."""
    role = "gateway_" + "_".join(name.rsplit("_", 1)[-1] for name in tenant_roles)
    with admin() as connection:
        connection.execute(sql.SQL("CREATE ROLE {} LOGIN NOINHERIT").format(sql.Identifier(role)))
        connection.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), sql.Identifier(role)))
        for tenant_role in tenant_roles:
            connection.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(tenant_role), sql.Identifier(role)))
    return role


def drop_gateway_role(admin, role: str, database: str) -> None:
    with admin(database) as connection:
        connection.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
    with admin() as connection:
        connection.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.mark.parametrize("isolation", ["schema", "shared"])
async def test_one_pooled_connection_never_carries_tenant_over(provision_tenant, admin, postgres_url, isolation):
    acme = await provision_tenant(isolation)
    globex = await provision_tenant(isolation)
    gateway = await gateway_role(admin, acme.role, globex.role, database=acme.database)
    url = make_url(postgres_url).set(username=gateway, password=None, database=acme.database)
    pool = TenantDatabase(
        url.render_as_string(hide_password=False),
        isolation=isolation,
        tenant=acme.tenant,
        schema=acme.schema,
        pool_size=1,
        max_overflow=0,
    )
    acme_context = TenantContext(tenant=acme.tenant, schema=acme.schema, role=acme.role)
    globex_context = TenantContext(tenant=globex.tenant, schema=globex.schema, role=globex.role)
    try:
        await add_user(pool, "alice@acme.test", acme_context)
        async with pool.session(acme_context) as session:
            acme_backend = await session.scalar(text("SELECT pg_backend_pid()"))

        async with pool.session(globex_context) as session:
            globex_backend = await session.scalar(text("SELECT pg_backend_pid()"))
            globex_emails = list((await session.scalars(select(User.email))).all())
        async with pool.engine.connect() as connection:
            leftover = (await connection.execute(
                text("SELECT current_user, current_setting('livery.tenant', true), current_setting('search_path')")
            )).one()
    finally:
        await pool.dispose()
        drop_gateway_role(admin, gateway, acme.database)

    assert acme_backend == globex_backend
    assert globex_emails == []
    assert leftover[0] == gateway
    assert leftover[1] in (None, "")
    assert acme.role not in leftover[2]


async def test_schema_pool_sets_search_path_per_transaction(provision_tenant, postgres_url):
    acme = await provision_tenant("schema")
    globex = await provision_tenant("schema")
    superuser_url = make_url(postgres_url).set(database=acme.database).render_as_string(hide_password=False)
    pool = TenantDatabase(superuser_url, isolation="schema", tenant=acme.tenant, schema=acme.schema, pool_size=1, max_overflow=0)
    try:
        await add_user(pool, "alice@acme.test", TenantContext(acme.tenant, acme.schema))

        globex_emails = await user_emails(pool, TenantContext(globex.tenant, globex.schema))
        acme_emails = await user_emails(pool, TenantContext(acme.tenant, acme.schema))
    finally:
        await pool.dispose()

    assert globex_emails == []
    assert acme_emails == ["alice@acme.test"]


@pytest.mark.parametrize("isolation", ["database", "schema", "shared"])
async def test_session_fills_tenant_id(provision_tenant, isolation):
    info = await provision_tenant(isolation)
    database = tenant_database(info)
    try:
        await add_user(database, "alice@example.com")
        async with database.session() as session:
            tenant_id = await session.scalar(select(User.tenant_id))
    finally:
        await database.dispose()

    assert tenant_id == info.tenant


async def test_session_rolls_back_on_error(provision_tenant):
    info = await provision_tenant("shared")
    database = tenant_database(info)
    try:
        with pytest.raises(RuntimeError):
            async with database.session() as session:
                session.add(User(email="ghost@example.com"))
                await session.flush()
                raise RuntimeError("endpoint failed")
        emails = await user_emails(database)
    finally:
        await database.dispose()

    assert emails == []


async def test_duplicate_email_in_tenant_rejected(provision_tenant):
    info = await provision_tenant("shared")
    database = tenant_database(info)
    try:
        await add_user(database, "alice@example.com")
        with pytest.raises(IntegrityError):
            await add_user(database, "alice@example.com")
    finally:
        await database.dispose()


async def test_same_email_allowed_in_two_shared_tenants(shared_pair):
    acme, globex = shared_pair
    acme_db, globex_db = tenant_database(acme), tenant_database(globex)
    try:
        await add_user(acme_db, "same@example.com")
        await add_user(globex_db, "same@example.com")

        emails = await user_emails(globex_db)
    finally:
        await acme_db.dispose()
        await globex_db.dispose()

    assert emails == ["same@example.com"]


@pytest.mark.parametrize("isolation", ["database", "schema", "shared"])
async def test_product_search_uses_generated_vector(provision_tenant, isolation):
    info = await provision_tenant(isolation)
    database = tenant_database(info)
    try:
        async with database.session() as session:
            session.add(Product(name="Running shoes", description="Light and fast", price="89.90", currency="EUR"))
            session.add(Product(name="Rain jacket", description="Waterproof", price="120.00", currency="EUR"))
        async with database.session() as session:
            query = func.websearch_to_tsquery(PRODUCT_SEARCH_CONFIG, "shoe")
            names = list((await session.scalars(select(Product.name).where(Product.search.bool_op("@@")(query)))).all())
    finally:
        await database.dispose()

    assert names == ["Running shoes"]


@pytest.mark.parametrize("isolation", ["database", "schema", "shared"])
async def test_schema_revision_is_head(provision_tenant, isolation):
    from livery.tenant_schema import HEAD_REVISION

    info = await provision_tenant(isolation)
    database = tenant_database(info)
    try:
        revision = await database.schema_revision()
    finally:
        await database.dispose()

    assert revision == HEAD_REVISION


async def test_login_link_jti_accepted_once(provision_tenant):
    info = await provision_tenant("shared")
    database = tenant_database(info)
    expires = datetime.now(timezone.utc) + timedelta(minutes=5)
    try:
        async with database.session() as session:
            session.add(LoginLinkUse(jti="link-1", expires_at=expires))
        with pytest.raises(IntegrityError):
            async with database.session() as session:
                session.add(LoginLinkUse(jti="link-1", expires_at=expires))
    finally:
        await database.dispose()


async def test_reference_to_other_tenant_user_rejected(shared_pair):
    acme, globex = shared_pair
    acme_db, globex_db = tenant_database(acme), tenant_database(globex)
    try:
        async with globex_db.session() as session:
            bob = User(email="bob@globex.test")
            session.add(bob)
        with pytest.raises(IntegrityError) as raised:
            async with acme_db.session() as session:
                session.add(ApiKey(user_id=bob.id, name="stolen", prefix="abcdef123456", key_hash="0" * 64))
    finally:
        await acme_db.dispose()
        await globex_db.dispose()

    assert "fk_api_keys_tenant_id_user_id" in str(raised.value.orig)


async def test_shared_policy_uses_tenant_index(shared_pair):
    acme, _ = shared_pair

    with psycopg.connect(acme.app_url) as connection, connection.transaction():
        connection.execute("SELECT set_config('livery.tenant', %s, true)", (acme.tenant,))
        connection.execute("SET LOCAL enable_seqscan = off")
        plan = connection.execute(
            "EXPLAIN (FORMAT JSON) SELECT id, name FROM products ORDER BY created_at DESC, id DESC LIMIT 20"
        ).fetchone()[0]

    # With no statistics the planner may pick any index that leads with tenant_id.
    # What matters is that the policy's tenant test is an index condition, not a filter.
    scans = [node for node in plan_nodes(plan[0]["Plan"]) if "Index Name" in node]
    assert scans, plan
    assert "tenant_id" in scans[0].get("Index Cond", ""), scans[0]
    assert "Filter" not in scans[0], scans[0]


def plan_nodes(node: dict):
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


async def test_shared_statistics_hidden_from_tenant(shared_pair, admin):
    acme, globex = shared_pair
    globex_db = tenant_database(globex)
    try:
        for number in range(20):
            await add_user(globex_db, f"user{number}@globex.test")
    finally:
        await globex_db.dispose()
    with admin("livery_shared") as connection:
        connection.execute("ANALYZE users")
        visible_to_admin = connection.execute("SELECT count(*) FROM pg_stats WHERE tablename = 'users'").fetchone()[0]

    with psycopg.connect(acme.app_url) as connection:
        visible = connection.execute("SELECT count(*) FROM pg_stats WHERE tablename = 'users'").fetchone()[0]

    assert visible_to_admin > 0
    assert visible == 0


async def test_statement_timeout_cancels_slow_query(provision_tenant):
    info = await provision_tenant("shared")
    database = tenant_database(info, statement_timeout_ms=100)
    try:
        with pytest.raises(DBAPIError) as raised:
            async with database.session() as session:
                await session.execute(text("SELECT pg_sleep(2)"))
    finally:
        await database.dispose()

    assert isinstance(raised.value.orig, psycopg.errors.QueryCanceled)


async def test_shared_update_to_other_tenant_fails(shared_pair):
    acme, globex = shared_pair
    acme_db = tenant_database(acme)
    try:
        await add_user(acme_db, "alice@acme.test")
        with pytest.raises(DBAPIError) as raised:
            async with acme_db.session() as session:
                await session.execute(update(User).values(tenant_id=globex.tenant))
        emails = await user_emails(acme_db)
    finally:
        await acme_db.dispose()

    assert "row-level security" in str(raised.value.orig)
    assert emails == ["alice@acme.test"]
