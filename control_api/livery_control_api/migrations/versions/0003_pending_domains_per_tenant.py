"""Let several tenants hold a pending claim on one domain; the first to verify wins

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 21:55:00
"""

from __future__ import annotations

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint('pending_domains_tenant_domain_key', 'pending_domains', type_='unique')
    op.drop_constraint('pending_domains_pkey', 'pending_domains', type_='primary')
    op.create_primary_key('pending_domains_pkey', 'pending_domains', ['domain', 'tenant'])


def downgrade() -> None:
    # Keeps the oldest pending claim of each domain, as the single-claim table requires.
    op.execute(
        "DELETE FROM pending_domains p USING pending_domains q "
        "WHERE p.domain = q.domain AND (p.created_at, p.tenant) > (q.created_at, q.tenant)"
    )
    op.drop_constraint('pending_domains_pkey', 'pending_domains', type_='primary')
    op.create_primary_key('pending_domains_pkey', 'pending_domains', ['domain'])
    op.create_unique_constraint('pending_domains_tenant_domain_key', 'pending_domains', ['tenant', 'domain'])
