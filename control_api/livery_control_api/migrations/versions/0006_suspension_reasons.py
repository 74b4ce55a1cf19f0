"""Record admin suspensions apart from billing ones; index usage reports by arrival

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 23:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NOTE: the reason of a suspension set before this revision is not known here. The grace
    # period check counts a tenant that is already suspended as suspended by an admin, but a
    # tenant that an admin suspended on top of a billing suspension is resumed by a payment.
    op.add_column(
        'tenant_billing',
        sa.Column('suspended_by_admin', sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.drop_index('ix_usage_records_tenant_metric_timestamp', table_name='usage_records')
    op.create_index(
        'ix_usage_records_tenant_metric_received_at', 'usage_records', ['tenant', 'metric', 'received_at'], unique=False
    )


def downgrade() -> None:
    op.drop_index('ix_usage_records_tenant_metric_received_at', table_name='usage_records')
    op.create_index(
        'ix_usage_records_tenant_metric_timestamp', 'usage_records', ['tenant', 'metric', 'timestamp'], unique=False
    )
    op.drop_column('tenant_billing', 'suspended_by_admin')
