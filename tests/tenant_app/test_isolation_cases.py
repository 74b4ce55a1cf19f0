"""Field cases about isolation, checked through the app's own database role and pool."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_app_role_owns_nothing_and_bypasses_nothing(tenant_pair, postgres_url) -> None:
    acme, _ = tenant_pair
    if acme.isolation != "shared":
        pytest.skip("the app role owns its own tables in database and schema mode by design")

    with psycopg.connect(postgres_url) as admin:
        with admin.cursor() as cursor:
            cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", (acme.info.role,))
            super_user, bypass = cursor.fetchone()
    async with acme.app.state.tenant_database.engine.connect() as connection:
        owned = (await connection.execute(
            text("SELECT count(*) FROM pg_tables WHERE tableowner = current_user")
        )).scalar_one()
        forced = (await connection.execute(
            text("SELECT bool_and(relforcerowsecurity AND relrowsecurity) FROM pg_class "
                 "WHERE relname IN ('users', 'products', 'files', 'api_keys') AND relkind = 'r'")
        )).scalar_one()

    assert super_user is False
    assert bypass is False
    assert owned == 0
    assert forced is True


async def test_no_tenant_set_sees_no_rows(tenant_pair) -> None:
    acme, _ = tenant_pair
    if acme.isolation != "shared":
        pytest.skip("only shared mode filters rows by the transaction's tenant")
    response = await acme.client.post("/api/v1/products", json={"name": "Visible", "price": "1", "currency": "EUR"},
                                      headers=acme.api_headers())
    assert response.status_code == 201

    async with acme.app.state.tenant_database.engine.connect() as connection:
        count = (await connection.execute(text("SELECT count(*) FROM products"))).scalar_one()

    assert count == 0


async def test_insert_for_other_tenant_fails(tenant_pair) -> None:
    acme, globex = tenant_pair
    if acme.isolation != "shared":
        pytest.skip("only shared mode keeps several tenants' rows in one table")

    with pytest.raises(DBAPIError, match="row-level security"):
        async with acme.app.state.tenant_database.session() as session:
            await session.execute(
                text("INSERT INTO products (tenant_id, name, price, currency) VALUES (:t, 'x', 1, 'EUR')"),
                {"t": globex.name},
            )


async def test_pooled_connection_keeps_no_tenant_context(tenant_pair) -> None:
    acme, _ = tenant_pair
    response = await acme.client.get("/api/v1/products", headers=acme.api_headers())
    assert response.status_code == 200

    async with acme.app.state.tenant_database.engine.connect() as connection:
        tenant = (await connection.execute(text("SELECT current_setting('livery.tenant', true)"))).scalar_one()
        search_path = (await connection.execute(text("SHOW search_path"))).scalar_one()

    assert tenant in (None, "")
    if acme.isolation == "schema":
        assert acme.info.schema in search_path, "the role's pinned search_path stays"
