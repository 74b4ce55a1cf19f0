"""SQLAlchemy ORM models of the tenant app's tables.

The tables are created by the Alembic migrations in `livery.tenant_schema`,
which this module mirrors; `tests/database` checks that the two agree. Every
table has the same columns in all three isolation modes. Each row carries
`tenant_id`, filled by the database from the transaction's `livery.tenant`
setting, so application code never sets it. In shared mode row-level
security restricts every query to that tenant.

Primary keys are random UUIDs, so a tenant cannot learn how many rows other
tenants of a shared database have. References between tables include
`tenant_id`, so a row can only point at a row of the same tenant.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKeyConstraint,
    Index,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, deferred, mapped_column

from livery.tenant_schema import (
    CURRENT_TENANT_SQL,
    PRODUCT_SEARCH_CONFIG,
    PRODUCT_SEARCH_DOCUMENT_SQL,
    ROLES,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}

ROLE_CHECK = "role IN (" + ", ".join(f"'{role}'" for role in ROLES) + ")"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def tenant_id_column() -> Mapped[str]:
    """Return the `tenant_id` column: filled from `livery.tenant`, never by the application."""
    return mapped_column(Text, nullable=False, server_default=text(CURRENT_TENANT_SQL))


def created_at_column() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))


def id_column() -> Mapped[uuid.UUID]:
    return mapped_column(
        UUID(as_uuid=True), primary_key=True, default=uuid.uuid4, server_default=text("gen_random_uuid()")
    )


class User(Base):
    """A person who can sign in to the tenant's app. `password_hash` is an argon2 hash, or None
    for an owner who has only signed in through a login link so far."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "email"),
        CheckConstraint(ROLE_CHECK, name="role"),
        CheckConstraint("email = lower(email)", name="email_lowercase"),
        Index(None, "tenant_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = id_column()
    tenant_id: Mapped[str] = tenant_id_column()
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False, server_default="")
    password_hash: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16), nullable=False, server_default="member")
    is_active: Mapped[bool] = mapped_column(nullable=False, server_default=text("true"))
    created_at: Mapped[datetime] = created_at_column()
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Invitation(Base):
    """An invitation to join the tenant with a role. Only the SHA-256 hash of its token is stored."""

    __tablename__ = "invitations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "token_hash"),
        CheckConstraint(ROLE_CHECK, name="role"),
        CheckConstraint("email = lower(email)", name="email_lowercase"),
        ForeignKeyConstraint(
            ["tenant_id", "invited_by"], ["users.tenant_id", "users.id"], ondelete="SET NULL (invited_by)"
        ),
        Index(None, "tenant_id", "email"),
    )

    id: Mapped[uuid.UUID] = id_column()
    tenant_id: Mapped[str] = tenant_id_column()
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    invited_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = created_at_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PasswordResetToken(Base):
    """A one-time password reset token for a user. Only the SHA-256 hash of the token is stored."""

    __tablename__ = "password_reset_tokens"
    __table_args__ = (
        UniqueConstraint("tenant_id", "token_hash"),
        ForeignKeyConstraint(["tenant_id", "user_id"], ["users.tenant_id", "users.id"], ondelete="CASCADE"),
        Index(None, "tenant_id", "user_id"),
    )

    id: Mapped[uuid.UUID] = id_column()
    tenant_id: Mapped[str] = tenant_id_column()
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LoginLinkUse(Base):
    """The `jti` of a login link that was used, so each link signs in once.

    Insert it in the transaction that signs the owner in: the primary key makes
    a second use of the same link fail with an integrity error. Rows past
    `expires_at` can be deleted, because the link itself has expired by then.
    """

    __tablename__ = "login_link_uses"
    __table_args__ = (Index(None, "tenant_id", "expires_at"),)

    tenant_id: Mapped[str] = mapped_column(
        Text, primary_key=True, server_default=text(CURRENT_TENANT_SQL)
    )
    jti: Mapped[str] = mapped_column(String(128), primary_key=True)
    used_at: Mapped[datetime] = created_at_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class ApiKey(Base):
    """An API key for programs. The key is shown once; only its SHA-256 hash is stored, and
    `prefix` (the key's first characters) lets users tell their keys apart."""

    __tablename__ = "api_keys"
    __table_args__ = (
        UniqueConstraint("tenant_id", "key_hash"),
        UniqueConstraint("tenant_id", "prefix"),
        ForeignKeyConstraint(["tenant_id", "user_id"], ["users.tenant_id", "users.id"], ondelete="CASCADE"),
        Index(None, "tenant_id", "user_id"),
    )

    id: Mapped[uuid.UUID] = id_column()
    tenant_id: Mapped[str] = tenant_id_column()
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Product(Base):
    """A catalogue entry. `search` is a generated `tsvector` over name and description with a
    GIN index; query it with `PRODUCT_SEARCH_CONFIG`, for example
    `Product.search.bool_op("@@")(func.websearch_to_tsquery(PRODUCT_SEARCH_CONFIG, terms))`."""

    __tablename__ = "products"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso_4217"),
        Index(None, "tenant_id", "created_at", "id"),
        Index(None, "tenant_id", "name"),
        Index("ix_products_search", "search", postgresql_using="gin"),
    )

    id: Mapped[uuid.UUID] = id_column()
    tenant_id: Mapped[str] = tenant_id_column()
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    image_key: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=text("now()"), onupdate=text("now()")
    )
    search: Mapped[str] = deferred(
        mapped_column(TSVECTOR, Computed(PRODUCT_SEARCH_DOCUMENT_SQL, persisted=True))
    )


class StoredFile(Base):
    """Metadata of a file kept in file storage under the tenant's prefix; `key` is the full key."""

    __tablename__ = "files"
    __table_args__ = (
        UniqueConstraint("tenant_id", "key"),
        CheckConstraint("size_bytes >= 0", name="size_not_negative"),
        ForeignKeyConstraint(
            ["tenant_id", "uploaded_by"], ["users.tenant_id", "users.id"], ondelete="SET NULL (uploaded_by)"
        ),
        Index(None, "tenant_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = id_column()
    tenant_id: Mapped[str] = tenant_id_column()
    key: Mapped[str] = mapped_column(Text, nullable=False)
    filename: Mapped[str] = mapped_column(String(255), nullable=False)
    content_type: Mapped[str] = mapped_column(String(255), nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    uploaded_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = created_at_column()


__all__ = [
    "ApiKey",
    "Base",
    "Invitation",
    "LoginLinkUse",
    "PasswordResetToken",
    "Product",
    "StoredFile",
    "User",
    "PRODUCT_SEARCH_CONFIG",
]
