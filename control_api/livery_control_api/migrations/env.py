"""Alembic environment of the control database.

`database.migrate` runs it with a sync psycopg connection under a PostgreSQL
advisory lock, so replicas that start together migrate one at a time.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

from livery_control_api.tables import Base

# Any constant works as long as no other program uses it on the control database.
MIGRATION_LOCK_ID = 0x6C69766572790001
# Other programs keep their own tables in the control database, so this one has its own version table.
VERSION_TABLE = "control_api_alembic_version"

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def _run(connection) -> None:
    connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
    try:
        context.configure(
            connection=connection, target_metadata=target_metadata, compare_type=True, version_table=VERSION_TABLE
        )
        with context.begin_transaction():
            context.run_migrations()
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
        connection.commit()


run_migrations_online()
