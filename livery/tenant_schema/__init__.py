"""The tenant app's database schema: Alembic migrations that work in every isolation mode.

The database provisioner calls `apply_migrations` for each tenant (once per
database in shared mode). The tenant app's `/readyz` compares the revision in
the database with `HEAD_REVISION`. The tables and their columns are the same in
all three modes. Every row carries `tenant_id`, filled from the transaction's
`livery.tenant` setting. In shared mode the migrations also force row-level
security on every table and grant DML on it to the group role of tenant roles.

To change the schema, add a module to `versions/` whose `down_revision` is the
current head, mirror the change in `livery_tenant_app.db.models` (a test
compares the two), give every new table a `tenant_id` column with
`CURRENT_TENANT_SQL` as its default and an index that leads with it, and call
`ops.isolate_table` on it. Migrations run only through `apply_migrations`,
because they need the isolation mode; there is no `env.py` for the Alembic
command line.
"""

from __future__ import annotations

from .constants import (
    CURRENT_TENANT_SQL,
    PRODUCT_SEARCH_CONFIG,
    PRODUCT_SEARCH_DOCUMENT_SQL,
    ROLES,
    SHARED_OWNER_ROLE,
    TENANT_SETTING,
    VERSION_TABLE,
)
from .migrate import HEAD_REVISION, MigrationError, apply_migrations

__all__ = [
    "CURRENT_TENANT_SQL",
    "HEAD_REVISION",
    "MigrationError",
    "PRODUCT_SEARCH_CONFIG",
    "PRODUCT_SEARCH_DOCUMENT_SQL",
    "ROLES",
    "SHARED_OWNER_ROLE",
    "TENANT_SETTING",
    "VERSION_TABLE",
    "apply_migrations",
]
