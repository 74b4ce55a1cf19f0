"""Create the tenant app's tables: users, invitations, tokens, API keys, products and files.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from livery.tenant_schema.constants import CURRENT_TENANT_SQL, PRODUCT_SEARCH_DOCUMENT_SQL, ROLES
from livery.tenant_schema.ops import grant_version_table, isolate_table

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ROLE_CHECK = "role IN (" + ", ".join(f"'{role}'" for role in ROLES) + ")"


def id_column() -> sa.Column:
    return sa.Column("id", postgresql.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), nullable=False)


def tenant_id_column() -> sa.Column:
    return sa.Column("tenant_id", sa.Text(), server_default=sa.text(CURRENT_TENANT_SQL), nullable=False)


def created_at_column(name: str = "created_at") -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False)


def timestamp_column(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def tenant_foreign_key(table: str, column: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", column],
        ["users.tenant_id", "users.id"],
        name=f"fk_{table}_tenant_id_{column}",
        ondelete=ondelete,
    )


def upgrade() -> None:
    op.create_table(
        "users",
        id_column(),
        tenant_id_column(),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), server_default="", nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("role", sa.String(16), server_default="member", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        created_at_column(),
        timestamp_column("last_login_at"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_users_tenant_id_id"),
        sa.UniqueConstraint("tenant_id", "email", name="uq_users_tenant_id_email"),
        sa.CheckConstraint(ROLE_CHECK, name="ck_users_role"),
        sa.CheckConstraint("email = lower(email)", name="ck_users_email_lowercase"),
    )
    isolate_table("users")

    op.create_table(
        "invitations",
        id_column(),
        tenant_id_column(),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("invited_by", postgresql.UUID(as_uuid=True), nullable=True),
        created_at_column(),
        timestamp_column("expires_at", nullable=False),
        timestamp_column("accepted_at"),
        sa.PrimaryKeyConstraint("id", name="pk_invitations"),
        sa.UniqueConstraint("tenant_id", "token_hash", name="uq_invitations_tenant_id_token_hash"),
        sa.CheckConstraint(ROLE_CHECK, name="ck_invitations_role"),
        sa.CheckConstraint("email = lower(email)", name="ck_invitations_email_lowercase"),
        tenant_foreign_key("invitations", "invited_by", "SET NULL (invited_by)"),
    )
    op.create_index("ix_invitations_tenant_id_email", "invitations", ["tenant_id", "email"])
    isolate_table("invitations")

    op.create_table(
        "password_reset_tokens",
        id_column(),
        tenant_id_column(),
        sa.Column("user_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        created_at_column(),
        timestamp_column("expires_at", nullable=False),
        timestamp_column("used_at"),
        sa.PrimaryKeyConstraint("id", name="pk_password_reset_tokens"),
        sa.UniqueConstraint("tenant_id", "token_hash", name="uq_password_reset_tokens_tenant_id_token_hash"),
        tenant_foreign_key("password_reset_tokens", "user_id", "CASCADE"),
    )
    op.create_index(
        "ix_password_reset_tokens_tenant_id_user_id", "password_reset_tokens", ["tenant_id", "user_id"]
    )
    isolate_table("password_reset_tokens")

    op.create_table(
        "login_link_uses",
        tenant_id_column(),
        sa.Column("jti", sa.String(128), nullable=False),
        created_at_column("used_at"),
        timestamp_column("expires_at", nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "jti", name="pk_login_link_uses"),
    )
    op.create_index("ix_login_link_uses_tenant_id_expires_at", "login_link_uses", ["tenant_id", "expires_at"])
    isolate_table("login_link_uses")

    op.create_table(
        "api_keys",
        id_column(),
        tenant_id_column(),
        sa.Column("user_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        created_at_column(),
        timestamp_column("expires_at"),
        timestamp_column("last_used_at"),
        timestamp_column("revoked_at"),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("tenant_id", "key_hash", name="uq_api_keys_tenant_id_key_hash"),
        tenant_foreign_key("api_keys", "user_id", "CASCADE"),
    )
    op.create_index("ix_api_keys_tenant_id_user_id", "api_keys", ["tenant_id", "user_id"])
    isolate_table("api_keys")

    op.create_table(
        "products",
        id_column(),
        tenant_id_column(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("price", sa.Numeric(12, 2), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("image_key", sa.Text(), nullable=True),
        created_at_column(),
        created_at_column("updated_at"),
        sa.Column("search", postgresql.TSVECTOR(), sa.Computed(PRODUCT_SEARCH_DOCUMENT_SQL, persisted=True)),
        sa.PrimaryKeyConstraint("id", name="pk_products"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_products_tenant_id_id"),
        sa.CheckConstraint("price >= 0", name="ck_products_price_not_negative"),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_products_currency_iso_4217"),
    )
    op.create_index("ix_products_tenant_id_created_at_id", "products", ["tenant_id", "created_at", "id"])
    op.create_index("ix_products_tenant_id_name", "products", ["tenant_id", "name"])
    op.create_index("ix_products_search", "products", ["search"], postgresql_using="gin")
    isolate_table("products")

    op.create_table(
        "files",
        id_column(),
        tenant_id_column(),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("uploaded_by", postgresql.UUID(as_uuid=True), nullable=True),
        created_at_column(),
        sa.PrimaryKeyConstraint("id", name="pk_files"),
        sa.UniqueConstraint("tenant_id", "key", name="uq_files_tenant_id_key"),
        sa.CheckConstraint("size_bytes >= 0", name="ck_files_size_not_negative"),
        tenant_foreign_key("files", "uploaded_by", "SET NULL (uploaded_by)"),
    )
    op.create_index("ix_files_tenant_id_created_at_id", "files", ["tenant_id", "created_at", "id"])
    isolate_table("files")

    grant_version_table()


def downgrade() -> None:
    for table in ("files", "products", "api_keys", "login_link_uses", "password_reset_tokens", "invitations", "users"):
        op.drop_table(table)
