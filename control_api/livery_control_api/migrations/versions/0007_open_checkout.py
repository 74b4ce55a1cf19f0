"""Remember the open upgrade Checkout Session of each tenant

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

COLUMNS = ('checkout_session_id', 'checkout_plan', 'checkout_url', 'checkout_expires_at')


def upgrade() -> None:
    # NOTE: a Checkout opened before this revision is not recorded, so it does not block a second one.
    op.add_column('tenant_billing', sa.Column('checkout_session_id', sa.String(length=255), nullable=True))
    op.add_column('tenant_billing', sa.Column('checkout_plan', sa.String(length=63), nullable=True))
    op.add_column('tenant_billing', sa.Column('checkout_url', sa.Text(), nullable=True))
    op.add_column('tenant_billing', sa.Column('checkout_expires_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for column in reversed(COLUMNS):
        op.drop_column('tenant_billing', column)
