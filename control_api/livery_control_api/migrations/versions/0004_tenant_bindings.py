"""Record the uid of the Tenant each tenant name's team belongs to

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'tenant_bindings',
        sa.Column('tenant', sa.String(length=40), primary_key=True),
        sa.Column('uid', sa.String(length=64), nullable=False),
        sa.Column('bound_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('tenant_bindings')
