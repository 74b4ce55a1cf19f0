"""The tenant schema migrations: applied once under concurrency, and matching the ORM models."""

from __future__ import annotations

import threading

import psycopg
import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from livery.tenant_schema import HEAD_REVISION, MigrationError, apply_migrations
from livery.tenant_schema.migrate import sqlalchemy_url
from livery_tenant_app.db import Base


def test_head_revision_names_latest_migration():
    assert HEAD_REVISION == "0003"


def test_concurrent_apply_migrations_run_once(scratch_database):
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def migrate() -> None:
        start.wait()
        try:
            apply_migrations(scratch_database, "database", None)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    with psycopg.connect(scratch_database) as connection:
        versions = connection.execute("SELECT version_num FROM alembic_version").fetchall()
        users_tables = connection.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'users'").fetchone()[0]
    assert versions == [(HEAD_REVISION,)]
    assert users_tables == 1


def test_apply_migrations_twice_changes_nothing(scratch_database):
    apply_migrations(scratch_database, "database", None)
    with psycopg.connect(scratch_database) as connection:
        before = connection.execute("SELECT count(*) FROM pg_class").fetchone()[0]

    apply_migrations(scratch_database, "database", None)

    with psycopg.connect(scratch_database) as connection:
        after = connection.execute("SELECT count(*) FROM pg_class").fetchone()[0]
    assert after == before


def test_apply_migrations_requires_schema_in_schema_mode(scratch_database):
    with pytest.raises(MigrationError) as raised:
        apply_migrations(scratch_database, "schema", None)

    assert "schema must be given" in str(raised.value)


def test_orm_models_match_migrations(scratch_database):
    apply_migrations(scratch_database, "database", None)

    assert orm_differences(scratch_database) == []


def test_upgrade_from_older_revision_matches_fresh_schema(scratch_database):
    apply_migrations(scratch_database, "database", None, target="0001")
    with psycopg.connect(scratch_database) as connection:
        older = connection.execute("SELECT version_num FROM alembic_version").fetchone()[0]

    apply_migrations(scratch_database, "database", None)

    assert older == "0001"
    assert orm_differences(scratch_database) == []


def orm_differences(url: str) -> list:
    engine = sqlalchemy.create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    return [d for d in differences if not (isinstance(d, tuple) and d[0] == "remove_table" and d[1].name == "alembic_version")]
