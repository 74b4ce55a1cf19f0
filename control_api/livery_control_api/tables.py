"""SQLAlchemy models of the control database.

The control database holds what the Tenant resources do not: customer
accounts and their roles, API keys, invitations, signups waiting for payment,
billing state, processed Stripe events, the usage ledger and the audit log.
The Alembic migrations in `migrations/` create these tables.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, String, Text, false, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def _uuid() -> str:
    return str(uuid.uuid4())


class Account(Base):
    """A customer who signs in to the console. Emails are stored lowercased."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    email_verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Raised to invalidate every refresh token issued before (password change, sign-out everywhere).
    token_version: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class UsedRefreshToken(Base):
    """The id (`jti`) of a refresh token that was exchanged once; exchanging it again is rejected."""

    __tablename__ = "used_refresh_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(36))
    # Rows past the token's own expiry can go: the token is rejected as expired anyway.
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class Membership(Base):
    """The role of an account in a tenant: owner, admin or member."""

    __tablename__ = "memberships"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(40), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_memberships_tenant", "tenant"),)


class ApiKey(Base):
    """A key for programs, scoped to one tenant. Only the SHA-256 of the secret part is stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    tenant: Mapped[str] = mapped_column(String(40), index=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Invitation(Base):
    """An invitation of an email address to a tenant with a role, accepted once before it expires."""

    __tablename__ = "invitations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    tenant: Mapped[str] = mapped_column(String(40), index=True)
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by: Mapped[str | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class EmailVerificationToken(Base):
    __tablename__ = "email_verification_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PasswordResetToken(Base):
    """A single-use password reset token sent by email. Only the SHA-256 of the token is stored."""

    __tablename__ = "password_reset_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Signup(Base):
    """One signup per tenant name; a repeat with the same email returns the same result."""

    __tablename__ = "signups"

    tenant: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    display_name: Mapped[str] = mapped_column(String(100))
    plan: Mapped[str] = mapped_column(String(63))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    # pending_payment until Stripe reports the Checkout Session completed, then complete.
    state: Mapped[str] = mapped_column(String(32))
    checkout_session_id: Mapped[str | None] = mapped_column(String(255))
    checkout_url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TenantBilling(Base):
    """Billing state of one tenant, as last applied from Stripe."""

    __tablename__ = "tenant_billing"

    tenant: Mapped[str] = mapped_column(String(40), primary_key=True)
    customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    subscription_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    subscription_status: Mapped[str | None] = mapped_column(String(32))
    price_id: Mapped[str | None] = mapped_column(String(255))
    current_period_end: Mapped[int | None] = mapped_column(BigInteger)
    grace_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Why `spec.suspended` is set, and both may hold. A payment clears only the billing reason,
    # and the tenant runs again when neither is left. An admin's resume clears both.
    suspended_by_billing: Mapped[bool] = mapped_column(Boolean, default=False)
    suspended_by_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    over_quota: Mapped[str | None] = mapped_column(Text)
    # The Checkout Session a plan upgrade opened, until it completes or expires. While it is
    # open, a second Checkout is rejected, because paying both would start two subscriptions.
    checkout_session_id: Mapped[str | None] = mapped_column(String(255))
    checkout_plan: Mapped[str | None] = mapped_column(String(63))
    checkout_url: Mapped[str | None] = mapped_column(Text)
    checkout_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), onupdate=func.now())


class StripeEvent(Base):
    """A Stripe event id, inserted in the same transaction as the event's effects."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    created: Mapped[int] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ObjectWatermark(Base):
    """The `created` time of the newest event applied to a Stripe object."""

    __tablename__ = "object_watermarks"

    object_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    object_type: Mapped[str] = mapped_column(String(64))
    watermark: Mapped[int] = mapped_column(BigInteger)
    event_id: Mapped[str] = mapped_column(String(255))


class UsageRecord(Base):
    """One usage report from a tenant app, stored once per report id."""

    __tablename__ = "usage_records"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(40))
    metric: Mapped[str] = mapped_column(String(32))
    value: Mapped[int] = mapped_column(BigInteger)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    meter_event_sent: Mapped[bool] = mapped_column(Boolean, default=False)

    # The plan checks read the report received last, see `quota.latest_usage`.
    __table_args__ = (Index("ix_usage_records_tenant_metric_received_at", "tenant", "metric", "received_at"),)


class AuditEntry(Base):
    """An admin action or a billing state change."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    tenant: Mapped[str | None] = mapped_column(String(40), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


class TenantBinding(Base):
    """The uid of the Tenant that a tenant name's memberships, keys and invitations belong to.

    A Tenant deleted and created again under the same name (with kubectl, say)
    has a new uid, so the team of the old one is recognised and removed.
    """

    __tablename__ = "tenant_bindings"

    tenant: Mapped[str] = mapped_column(String(40), primary_key=True)
    uid: Mapped[str] = mapped_column(String(64))
    bound_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PendingDomain(Base):
    """A tenant's claim on a custom domain, waiting for its DNS TXT record.

    Several tenants may claim one domain, each with its own token: the first
    to verify gets it, and claims expire unverified after `domains.PENDING_DAYS`.
    """

    __tablename__ = "pending_domains"

    domain: Mapped[str] = mapped_column(String(253), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)
    token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
