"""The tenant's billing row, and the one upgrade Checkout Session it may have open.

Two Checkouts opened before either is paid would both pass the "already has a
subscription" check, and paying both would start two subscriptions. So the
billing row records the open session with its plan, URL and expiry, and the
checkout route rejects a second one until the first completes or expires.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ..tables import TenantBilling
from .provider import CheckoutSession

# Stripe's default lifetime of a Checkout Session, used when a response carries no `expires_at`.
DEFAULT_CHECKOUT_LIFETIME = timedelta(hours=24)


async def lock_billing_row(session: AsyncSession, tenant: str) -> TenantBilling:
    """Return the tenant's billing row, created empty when missing, locked until the transaction ends."""
    billing = await session.get(TenantBilling, tenant, with_for_update=True)
    if billing is None:
        await session.execute(insert(TenantBilling).values(tenant=tenant).on_conflict_do_nothing(index_elements=[TenantBilling.tenant]))
        billing = await session.get(TenantBilling, tenant, with_for_update=True, populate_existing=True)
    assert billing is not None
    return billing


def has_open_checkout(billing: TenantBilling, now: datetime) -> bool:
    return (
        billing.checkout_session_id is not None
        and billing.checkout_expires_at is not None
        and billing.checkout_expires_at > now
    )


def remember_checkout(billing: TenantBilling, checkout: CheckoutSession, plan: str, now: datetime) -> None:
    billing.checkout_session_id = checkout.id
    billing.checkout_plan = plan
    billing.checkout_url = checkout.url
    if checkout.expires_at is None:
        billing.checkout_expires_at = now + DEFAULT_CHECKOUT_LIFETIME
    else:
        billing.checkout_expires_at = datetime.fromtimestamp(checkout.expires_at, UTC)


async def forget_checkout(session: AsyncSession, checkout_session_id: str | None) -> bool:
    """Clear the open Checkout of the billing row that records `checkout_session_id`; return whether one did."""
    if not checkout_session_id:
        return False
    result = await session.execute(
        update(TenantBilling)
        .where(TenantBilling.checkout_session_id == checkout_session_id)
        .values(checkout_session_id=None, checkout_plan=None, checkout_url=None, checkout_expires_at=None)
    )
    return result.rowcount > 0
