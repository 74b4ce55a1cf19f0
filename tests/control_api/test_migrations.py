"""The Alembic migrations of the control database match the SQLAlchemy models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from livery_control_api.database import driver_url, migrate
from livery_control_api.tables import Base

VERSION_TABLE = "control_api_alembic_version"


def test_migrations_match_models(scratch_database):
    migrate(scratch_database)
    migrate(scratch_database)  # a second run finds nothing to do

    engine = create_engine(driver_url(scratch_database))
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_name": lambda name, kind, parent: name != VERSION_TABLE}
        )
        differences = compare_metadata(context, Base.metadata)
    engine.dispose()

    assert differences == []
