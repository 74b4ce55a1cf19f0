"""Record used refresh tokens, so each one is exchanged at most once

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 21:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('used_refresh_tokens',
    sa.Column('jti', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=36), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('jti')
    )
    op.create_index(op.f('ix_used_refresh_tokens_expires_at'), 'used_refresh_tokens', ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_used_refresh_tokens_expires_at'), table_name='used_refresh_tokens')
    op.drop_table('used_refresh_tokens')
