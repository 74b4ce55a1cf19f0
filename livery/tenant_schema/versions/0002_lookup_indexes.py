"""Index API keys by their public id (prefix) and users by creation order, per tenant.

The tenant app finds an API key by its prefix on every API request and lists
users oldest first. Both indexes lead with `tenant_id`, so row-level security's
tenant filter in shared mode uses them too.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_unique_constraint("uq_api_keys_tenant_id_prefix", "api_keys", ["tenant_id", "prefix"])
    op.create_index("ix_users_tenant_id_created_at_id", "users", ["tenant_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_users_tenant_id_created_at_id", table_name="users")
    op.drop_constraint("uq_api_keys_tenant_id_prefix", "api_keys", type_="unique")
