"""Rewrite the shared-mode policies as one equality on tenant_id.

The first policies tested the role in a second condition, which the planner
treated as a per-row filter with a default selectivity of 0.5%. It then
expected a handful of rows per tenant and sorted a whole tenant's rows instead
of reading an index in order. The new predicate folds the role test into the
value compared with tenant_id.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from livery.tenant_schema.ops import replace_policy

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("users", "invitations", "password_reset_tokens", "login_link_uses", "api_keys", "products", "files")


def upgrade() -> None:
    for table in TABLES:
        replace_policy(table)


def downgrade() -> None:
    # The earlier predicate admitted the same rows, so the current one stays.
    pass
