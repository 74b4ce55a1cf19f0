"""Repairs under kopf: what is removed or changed by hand comes back within the drift interval.

Uses the module-scoped operator of test_operator_e2e (a new one for this module),
whose provisioner caches `ensure_database` for the default 600 s.
"""

from __future__ import annotations

import psycopg
import pytest
from operator_support import unique_name, wait_for
from psycopg import sql
from test_operator_e2e import create_ready_tenant, operator, provisioner_probe  # noqa: F401 - fixtures

from livery import naming

DROP_BY_HAND = {
    "database": ("enterprise", "DROP DATABASE {} WITH (FORCE)", None),
    "schema": ("pro", "DROP SCHEMA {} CASCADE", naming.SCHEMA_DATABASE),
}


def database_url(postgres_url: str, database: str | None) -> str:
    if database is None:
        return postgres_url
    return psycopg.conninfo.make_conninfo(postgres_url, dbname=database)


@pytest.mark.parametrize("isolation", ["database", "schema"])
def test_dropped_database_is_restored(isolation, kube, operator, provisioner_probe, postgres_url):
    plan, statement, database = DROP_BY_HAND[isolation]
    name = unique_name(f"dropped-{isolation[:3]}")
    create_ready_tenant(kube, name, plan)
    assert provisioner_probe(name, isolation)

    with psycopg.connect(database_url(postgres_url, database), autocommit=True) as connection:
        connection.execute(sql.SQL(statement).format(sql.Identifier(naming.postgres_identifier(name))))
    assert not provisioner_probe(name, isolation)

    wait_for(lambda: provisioner_probe(name, isolation), timeout=30, message=f"{isolation} restored")
