"""Names and SQL fragments that the migrations, the provisioner and the tenant app share."""

from __future__ import annotations

# The transaction-local setting that names the tenant of the current transaction.
TENANT_SETTING = "livery.tenant"

# The tenant of the current transaction, or NULL when none is set. After a
# transaction that set it ends, PostgreSQL keeps the setting defined with the
# value '' for the rest of the session, so '' must count as "no tenant" too.
CURRENT_TENANT_SQL = f"NULLIF(current_setting('{TENANT_SETTING}', true), '')"

# The NOLOGIN role that owns the tables of the shared database. No tenant
# role is a member of it, so no tenant role owns a table.
SHARED_OWNER_ROLE = "livery_shared_owner"

# Alembic's version table: in the tenant's schema in schema mode, in `public` otherwise.
VERSION_TABLE = "alembic_version"

ROLES = ("owner", "admin", "member")

# Text search configuration of the products' `search` column. Queries must use
# the same one, or the GIN index is not used.
PRODUCT_SEARCH_CONFIG = "english"
PRODUCT_SEARCH_DOCUMENT_SQL = (
    f"to_tsvector('{PRODUCT_SEARCH_CONFIG}'::regconfig, coalesce(name, '') || ' ' || coalesce(description, ''))"
)
