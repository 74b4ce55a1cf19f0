"""Apply Stripe webhook events to tenants: exactly once, in order, never from stale data.

Each event runs in one database transaction that starts by inserting the
event id with `ON CONFLICT DO NOTHING`. A duplicate delivered while the first
is still running waits on the unique index until the first commits, then
inserts nothing and is acknowledged without effect; if the first fails, its
row is rolled back and the retry applies the event.

A watermark per Stripe object holds the `created` time of the newest event
applied to it. An older event is acknowledged and ignored. An event exactly
as old as the watermark is ambiguous (Stripe timestamps have one-second
resolution), so the current object is fetched from Stripe and applied instead
of the payload.

Writes to the Tenant resource happen before the transaction commits and are
idempotent (they set a plan or a flag), so a crash between the write and
the commit only makes Stripe's retry write the same values again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from livery.models.plan import Plan
from livery.store.base import CONTROL_API_FIELD_MANAGER, NotFound as StoreNotFound

from ..audit import record_audit
from ..context import AppContext
from ..dependencies import utcnow
from ..quota import latest_usage, limits_for, usage_excess, write_plan
from ..signup import complete_paid_signup
from ..tables import Membership, ObjectWatermark, Signup, StripeEvent, TenantBilling
from .open_checkout import forget_checkout, lock_billing_row
from .retire import is_retired

logger = logging.getLogger("livery.control_api.webhooks")

ACTOR = "stripe"
ACTIVE_STATUSES = frozenset({"active", "trialing"})
DELINQUENT_STATUSES = frozenset({"past_due", "unpaid"})
ENDED_STATUSES = frozenset({"canceled", "incomplete_expired"})
HANDLED_TYPES = frozenset({
    "checkout.session.completed", "checkout.session.async_payment_succeeded", "checkout.session.expired",
    "invoice.paid", "invoice.payment_failed",
})


@dataclass(frozen=True)
class WebhookOutcome:
    event_id: str
    type: str
    outcome: str  # applied, duplicate, stale, unmapped, ignored


async def process_event(context: AppContext, event: dict[str, Any]) -> WebhookOutcome:
    """Apply one verified event exactly once and return what happened."""
    event_id, event_type = event["id"], event["type"]
    created = int(event.get("created") or 0)
    handled = event_type in HANDLED_TYPES or event_type.startswith("customer.subscription.")
    async with context.sessions() as session, session.begin():
        inserted = await session.scalar(
            insert(StripeEvent)
            .values(id=event_id, type=event_type, created=created, outcome="processing" if handled else "ignored")
            .on_conflict_do_nothing(index_elements=[StripeEvent.id])
            .returning(StripeEvent.id)
        )
        if inserted is None:
            outcome = "duplicate"
        elif not handled:
            outcome = "ignored"
        else:
            outcome = await _apply(context, session, event)
            await session.execute(update(StripeEvent).where(StripeEvent.id == event_id).values(outcome=outcome))
    context.metrics.webhook_events.labels(event_type, outcome).inc()
    if outcome == "unmapped":
        logger.warning("Stripe event %s (%s) maps to no tenant; acknowledged without effect", event_id, event_type)
    else:
        logger.info("Stripe event %s (%s): %s", event_id, event_type, outcome)
    return WebhookOutcome(event_id, event_type, outcome)


async def _apply(context: AppContext, session: AsyncSession, event: dict[str, Any]) -> str:
    event_type = event["type"]
    obj = (event.get("data") or {}).get("object") or {}
    if event_type in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
        return await _checkout_completed(context, session, event, obj)
    if event_type == "checkout.session.expired":
        return await _checkout_expired(session, obj)
    if event_type.startswith("customer.subscription."):
        return await _subscription_changed(context, session, event, obj)
    if event_type in ("invoice.paid", "invoice.payment_failed"):
        return await _invoice_settled(context, session, event, obj)
    return "ignored"


async def _advance_watermark(session: AsyncSession, key: str, object_type: str, event: dict[str, Any]) -> str:
    """Move the object's watermark to the event's time; return "newer", "same" or "older"."""
    created = int(event.get("created") or 0)
    row = await session.get(ObjectWatermark, key, with_for_update=True)
    if row is None:
        # Two first events for one object race on this insert; the loser waits, then reads the row.
        await session.execute(
            insert(ObjectWatermark)
            .values(object_id=key, object_type=object_type, watermark=created, event_id=event["id"])
            .on_conflict_do_nothing(index_elements=[ObjectWatermark.object_id])
        )
        row = await session.get(ObjectWatermark, key, with_for_update=True, populate_existing=True)
        if row is not None and row.event_id == event["id"]:
            return "newer"
    assert row is not None
    if created < row.watermark:
        return "older"
    verdict = "same" if created == row.watermark else "newer"
    row.watermark = created
    row.event_id = event["id"]
    return verdict


async def _watermark_verdict(session: AsyncSession, key: str, event: dict[str, Any]) -> str | None:
    """Return "newer", "same" or "older" for the event against the object's watermark, or None when it has none.

    Unlike `_advance_watermark`, it leaves the watermark where it is.
    """
    row = await session.get(ObjectWatermark, key)
    if row is None:
        return None
    created = int(event.get("created") or 0)
    if created < row.watermark:
        return "older"
    return "same" if created == row.watermark else "newer"


async def _checkout_completed(
    context: AppContext, session: AsyncSession, event: dict[str, Any], checkout: dict[str, Any]
) -> str:
    """Apply a paid subscription Checkout: complete its signup, or start or upgrade the tenant's subscription.

    A Checkout is checked against its subscription's watermark without moving it,
    so the subscription's own events of the same second still apply. A Checkout
    older than that watermark is stale, and one as old is resolved by fetching
    the subscription from Stripe. A Checkout that names another subscription than
    the tenant's recorded one takes its place only when that subscription is the
    newer one (see `_replaces_recorded_subscription`).
    """
    if checkout.get("mode") != "subscription":
        return "ignored"
    if checkout.get("payment_status") == "unpaid":
        # Delayed payment methods: the tenant is written on async_payment_succeeded.
        return "ignored"
    # A paid session can no longer be paid, so it stops blocking a new Checkout.
    await forget_checkout(session, checkout.get("id"))
    tenant = checkout.get("client_reference_id") or (checkout.get("metadata") or {}).get("tenant")
    if not tenant:
        return "unmapped"
    customer_id = _id_of(checkout.get("customer"))
    subscription_id = _id_of(checkout.get("subscription"))
    if not subscription_id:
        # Stripe sets the subscription of every completed subscription-mode Checkout.
        logger.warning("Checkout Session %s of tenant %s names no subscription", checkout.get("id"), tenant)
        return "ignored"
    if await is_retired(session, subscription_id):
        return "stale"
    verdict = await _watermark_verdict(session, subscription_id, event)
    if verdict == "older":
        return "stale"

    signup = await session.get(Signup, tenant)
    if signup is not None and signup.state != "complete":
        if verdict == "same":
            # _apply_subscription completes the signup only if the subscription is active.
            subscription = await context.billing.retrieve_subscription(subscription_id)
            outcome = await _apply_subscription(context, session, tenant, subscription, deleted=False)
        else:
            await complete_paid_signup(context, session, tenant, customer_id, subscription_id)
            outcome = "applied"
        if outcome == "applied":
            record_audit(session, ACTOR, "billing.checkout_completed", tenant, subscription=subscription_id)
        return outcome

    # A Checkout for an upgrade of an existing tenant, or a repeat of its signup's Checkout.
    if not await _tenant_exists(context, tenant):
        return "unmapped"
    billing = await lock_billing_row(session, tenant)
    recorded_id = billing.subscription_id
    fetched: dict[str, Any] | None = None
    if recorded_id is not None and recorded_id != subscription_id:
        replaces, fetched = await _replaces_recorded_subscription(context, session, billing, subscription_id, event)
        if not replaces:
            logger.info(
                "ignored a Checkout of tenant %s: its subscription %s is inactive or older than the recorded %s",
                tenant, subscription_id, recorded_id,
            )
            await _cancel_unkept_subscription(context, session, tenant, subscription_id, fetched, recorded_id, checkout)
            return "ignored"
    contradicted = recorded_id == subscription_id and billing.subscription_status not in ACTIVE_STATUSES
    if fetched is None and (verdict == "same" or contradicted):
        # The payload reports a paid Checkout, but a same-second event or the recorded status contradicts it.
        fetched = await context.billing.retrieve_subscription(subscription_id)
        if recorded_id not in (None, subscription_id) and fetched.get("status") not in ACTIVE_STATUSES:
            # Only an active subscription replaces the recorded one.
            await _cancel_unkept_subscription(context, session, tenant, subscription_id, fetched, recorded_id, checkout)
            return "ignored"
    if recorded_id not in (None, subscription_id) and billing.subscription_status not in ENDED_STATUSES:
        # The Checkout's subscription replaces one that still bills the customer. Cancelled before
        # the tenant is written, so a failure here leaves the tenant as it was.
        await _cancel_unkept_subscription(context, session, tenant, recorded_id, None, subscription_id, checkout)

    billing.customer_id = customer_id or billing.customer_id
    plan_name = (checkout.get("metadata") or {}).get("plan")
    if fetched is not None:
        outcome = await _apply_subscription(context, session, tenant, fetched, deleted=False)
    else:
        if recorded_id != subscription_id:
            # The paid Checkout's subscription replaces the old one, whose later events are then ignored.
            billing.subscription_id = subscription_id
            billing.subscription_status = "active"
        plan = await _plan_or_none(context, plan_name) if plan_name else None
        if plan is not None:
            await _apply_plan_from_stripe(context, session, tenant, plan)
        outcome = "applied"
    if outcome == "applied":
        record_audit(session, ACTOR, "billing.checkout_completed", tenant, subscription=subscription_id, plan=plan_name)
    return outcome


async def _cancel_unkept_subscription(
    context: AppContext, session: AsyncSession, tenant: str, unkept_id: str, unkept: dict[str, Any] | None,
    kept_id: str, checkout: dict[str, Any],
) -> None:
    """Cancel a live subscription of the tenant that a completed Checkout left beside the kept one.

    Two Checkouts paid one after the other leave the customer with two
    subscriptions, and only one of them is the tenant's. `unkept` is the
    subscription as fetched from Stripe, or None when it was not fetched; an
    ended one is left alone. A failed cancellation raises BillingError, so the
    webhook returns 503, its transaction rolls back, and Stripe retries it.
    """
    if unkept is not None and unkept.get("status") in ENDED_STATUSES:
        return
    cancelled = await context.billing.cancel_subscription(unkept_id)
    if not cancelled:
        return
    # NOTE: the API does not refund the cancelled subscription's paid invoices, so refund them in the Stripe Dashboard.
    logger.warning(
        "cancelled subscription %s of tenant %s: Checkout Session %s left it beside subscription %s, which the tenant keeps",
        unkept_id, tenant, checkout.get("id"), kept_id,
    )
    record_audit(
        session, ACTOR, "billing.duplicate_subscription_cancelled", tenant,
        subscription=unkept_id, kept_subscription=kept_id, checkout_session=checkout.get("id"),
    )


async def _replaces_recorded_subscription(
    context: AppContext, session: AsyncSession, billing: TenantBilling, subscription_id: str, event: dict[str, Any]
) -> tuple[bool, dict[str, Any] | None]:
    """Decide whether an event of `subscription_id` may replace the tenant's recorded subscription.

    Return the decision and the subscription fetched from Stripe, or None when the
    event alone decided. An event newer than every event applied to the recorded
    subscription may replace it. A Checkout completes when its subscription starts,
    so a Checkout that late does not belong to an older subscription, and any other
    event that late comes from a subscription that outlived the recorded one. Any
    earlier event may be a late one of an older subscription, so Stripe decides: an
    active subscription replaces an ended one, or a live one that it is newer than.
    """
    recorded_mark = await session.get(ObjectWatermark, billing.subscription_id)
    if recorded_mark is not None and int(event.get("created") or 0) > recorded_mark.watermark:
        return True, None
    subscription = await context.billing.retrieve_subscription(subscription_id)
    if subscription.get("status") not in ACTIVE_STATUSES:
        return False, subscription
    if billing.subscription_status in ENDED_STATUSES:
        return True, subscription
    recorded = await context.billing.retrieve_subscription(billing.subscription_id)
    if recorded.get("status") in ENDED_STATUSES:
        return True, subscription
    return int(subscription.get("created") or 0) > int(recorded.get("created") or 0), subscription


async def _checkout_expired(session: AsyncSession, checkout: dict[str, Any]) -> str:
    """Release what a Checkout that expired unpaid held: a tenant's open upgrade, or a signup's tenant name.

    So abandoned payments neither block a new Checkout nor keep names taken.
    """
    upgrade_closed = await forget_checkout(session, checkout.get("id"))
    signup = await session.scalar(
        select(Signup).where(Signup.checkout_session_id == checkout.get("id")).with_for_update()
    )
    if signup is None or signup.state != "pending_payment":
        return "applied" if upgrade_closed else "ignored"
    await session.execute(delete(Membership).where(Membership.tenant == signup.tenant))
    await session.delete(signup)
    # The account stays: the customer may sign up again, or own other tenants.
    record_audit(session, ACTOR, "billing.checkout_expired", signup.tenant)
    return "applied"


async def _subscription_changed(
    context: AppContext, session: AsyncSession, event: dict[str, Any], subscription: dict[str, Any]
) -> str:
    subscription_id = subscription.get("id")
    if not subscription_id:
        return "ignored"
    tenant = await _tenant_for(session, subscription, subscription_id)
    if tenant is None:
        return "unmapped"
    if not await _is_current_subscription(session, tenant, subscription_id):
        return "ignored"
    fetched: dict[str, Any] | None = None
    billing = await session.get(TenantBilling, tenant)
    if billing is not None and billing.subscription_id not in (None, subscription_id):
        # The recorded subscription has ended, but a late event of an even older one must not take its place.
        replaces, fetched = await _replaces_recorded_subscription(context, session, billing, subscription_id, event)
        if not replaces:
            return "ignored"
    verdict = await _advance_watermark(session, subscription_id, "subscription", event)
    if verdict == "older":
        return "stale"
    if fetched is not None:
        subscription = fetched
    elif verdict == "same":
        subscription = await context.billing.retrieve_subscription(subscription_id)
    deleted = event["type"] == "customer.subscription.deleted"
    return await _apply_subscription(context, session, tenant, subscription, deleted)


async def _is_current_subscription(session: AsyncSession, tenant: str, subscription_id: str) -> bool:
    """Return whether events of `subscription_id` may change the tenant's plan and status.

    That is the tenant's recorded subscription, or any subscription while the
    tenant has none or its recorded one has ended. An event of an older
    subscription, such as its cancellation, must not downgrade a tenant that
    now pays on a newer one.
    """
    billing = await session.get(TenantBilling, tenant)
    if billing is None or billing.subscription_id is None or billing.subscription_id == subscription_id:
        return True
    return billing.subscription_status in ENDED_STATUSES


async def _apply_subscription(
    context: AppContext, session: AsyncSession, tenant: str, subscription: dict[str, Any], deleted: bool
) -> str:
    status = "canceled" if deleted else subscription.get("status")
    item = _first_item(subscription)
    # Items of current API versions carry `price`; legacy objects only the `plan` it replaced.
    price_id = _id_of((item or {}).get("price")) or _id_of((item or {}).get("plan"))

    signup = await session.get(Signup, tenant)
    if status in ACTIVE_STATUSES and signup is not None and signup.state != "complete":
        await complete_paid_signup(context, session, tenant, _id_of(subscription.get("customer")), subscription["id"])
    if not await _tenant_exists(context, tenant):
        return "unmapped"

    billing = await lock_billing_row(session, tenant)
    previous = billing.subscription_status
    billing.subscription_id = subscription["id"]
    billing.customer_id = _id_of(subscription.get("customer")) or billing.customer_id
    billing.subscription_status = status
    billing.price_id = price_id
    # In API versions from 2025-03-31 on, billing periods are on the subscription items.
    billing.current_period_end = (item or {}).get("current_period_end")

    if status in ACTIVE_STATUSES:
        plan = await _plan_for_price(context, price_id)
        if plan is not None:
            await _apply_plan_from_stripe(context, session, tenant, plan)
        await _resume_after_payment(context, session, billing)
    elif status in DELINQUENT_STATUSES:
        _start_grace_period(context, session, billing)
    elif status in ENDED_STATUSES:
        free = await _free_plan(context)
        if free is not None:
            await _apply_plan_from_stripe(context, session, tenant, free)
        billing.grace_until = None
    if previous != status:
        record_audit(session, ACTOR, "billing.subscription_status", tenant, previous=previous, status=status, price=price_id)
    return "applied"


async def _invoice_settled(context: AppContext, session: AsyncSession, event: dict[str, Any], invoice: dict[str, Any]) -> str:
    subscription_id = _invoice_subscription(invoice)
    tenant = None
    if subscription_id:
        tenant = await session.scalar(select(TenantBilling.tenant).where(TenantBilling.subscription_id == subscription_id))
    customer_id = _id_of(invoice.get("customer"))
    if tenant is None and customer_id:
        tenant = await session.scalar(select(TenantBilling.tenant).where(TenantBilling.customer_id == customer_id))
    if tenant is None:
        return "unmapped"
    if subscription_id and not await _is_current_subscription(session, tenant, subscription_id):
        return "ignored"
    # Payment outcomes of one subscription are ordered among themselves: a late
    # payment_failed must not restart a grace period that a newer invoice.paid ended.
    verdict = await _advance_watermark(session, f"{subscription_id or customer_id}:payment", "payment", event)
    if verdict == "older":
        return "stale"
    billing = await lock_billing_row(session, tenant)
    if event["type"] == "invoice.paid":
        await _resume_after_payment(context, session, billing)
        record_audit(session, ACTOR, "billing.invoice_paid", tenant, invoice=invoice.get("id"))
    else:
        _start_grace_period(context, session, billing)
        record_audit(
            session, ACTOR, "billing.payment_failed", tenant, invoice=invoice.get("id"),
            grace_until=billing.grace_until.isoformat() if billing.grace_until else None,
        )
    return "applied"


def _start_grace_period(context: AppContext, session: AsyncSession, billing: TenantBilling) -> None:
    if billing.grace_until is None and not billing.suspended_by_billing:
        billing.grace_until = utcnow() + timedelta(hours=context.settings.grace_period_hours)


async def _resume_after_payment(context: AppContext, session: AsyncSession, billing: TenantBilling) -> None:
    """End the grace period and the billing suspension. A suspension that an admin set stays."""
    billing.grace_until = None
    if not billing.suspended_by_billing:
        return
    billing.suspended_by_billing = False
    if billing.suspended_by_admin:
        record_audit(session, ACTOR, "billing.suspension_cleared", billing.tenant, still_suspended_by="admin")
        logger.info("payment ended the billing suspension of tenant %s, which stays suspended by an admin", billing.tenant)
        return
    await context.store.apply_tenant(billing.tenant, {"suspended": False}, CONTROL_API_FIELD_MANAGER)
    record_audit(session, ACTOR, "billing.resumed", billing.tenant)


async def suspend_expired_grace_periods(context: AppContext) -> list[str]:
    """Suspend every tenant whose grace period after a failed payment has ended; return their names."""
    suspended = []
    async with context.sessions() as session, session.begin():
        rows = await session.scalars(
            select(TenantBilling)
            .where(TenantBilling.grace_until <= utcnow(), TenantBilling.suspended_by_billing.is_(False))
            .with_for_update(skip_locked=True)
        )
        for billing in rows.all():
            try:
                resource = await context.store.get_tenant(billing.tenant)
                # A tenant suspended already, and not by billing, was suspended by an admin, perhaps
                # with kubectl, so a payment must not end it. A tenant that runs has no admin
                # suspension left, even if an admin resumed it with kubectl.
                billing.suspended_by_admin = resource.spec.suspended
                if not resource.spec.suspended:
                    await context.store.apply_tenant(billing.tenant, {"suspended": True}, CONTROL_API_FIELD_MANAGER)
            except StoreNotFound:
                billing.grace_until = None
                continue
            billing.suspended_by_billing = True
            billing.grace_until = None
            record_audit(
                session, ACTOR, "billing.suspended", billing.tenant, reason="grace period ended",
                also_suspended_by_admin=billing.suspended_by_admin,
            )
            suspended.append(billing.tenant)
    for tenant in suspended:
        logger.info("suspended tenant %s: grace period after a failed payment ended", tenant)
    return suspended


async def _apply_plan_from_stripe(context: AppContext, session: AsyncSession, tenant: str, plan: Plan) -> None:
    """Write the plan Stripe reports; a plan below current usage marks the tenant over quota and deletes nothing."""
    current = await context.store.get_tenant(tenant)
    billing = await lock_billing_row(session, tenant)
    excess = usage_excess(await latest_usage(session, tenant), limits_for(plan, current))
    over_quota = "; ".join(item.describe() for item in excess) or None
    if over_quota != billing.over_quota:
        billing.over_quota = over_quota
        record_audit(session, ACTOR, "billing.over_quota" if over_quota else "billing.within_quota", tenant, detail=over_quota, plan=plan.name)
    if current.spec.plan != plan.name:
        await write_plan(context.store, tenant, plan)
        record_audit(session, ACTOR, "billing.plan_changed", tenant, previous=current.spec.plan, plan=plan.name)


async def _tenant_for(session: AsyncSession, subscription: dict[str, Any], subscription_id: str) -> str | None:
    tenant = await session.scalar(select(TenantBilling.tenant).where(TenantBilling.subscription_id == subscription_id))
    if tenant is not None:
        return tenant
    tenant = (subscription.get("metadata") or {}).get("tenant")
    if tenant:
        return tenant
    customer_id = _id_of(subscription.get("customer"))
    if customer_id:
        return await session.scalar(select(TenantBilling.tenant).where(TenantBilling.customer_id == customer_id))
    return None


async def _tenant_exists(context: AppContext, tenant: str) -> bool:
    try:
        await context.store.get_tenant(tenant)
    except StoreNotFound:
        return False
    return True


async def _plan_or_none(context: AppContext, name: str) -> Plan | None:
    try:
        return await context.store.get_plan(name)
    except StoreNotFound:
        logger.warning("Stripe refers to plan %s, which does not exist", name)
        return None


async def _plan_for_price(context: AppContext, price_id: str | None) -> Plan | None:
    if price_id is None:
        return None
    for plan in await context.store.list_plans():
        if plan.spec.billing.stripe_price_id == price_id:
            return plan
    logger.warning("Stripe price %s belongs to no plan; the tenant keeps its plan", price_id)
    return None


async def _free_plan(context: AppContext) -> Plan | None:
    """Return the plan a tenant falls back to when its subscription ends: `free`, else the cheapest unpaid plan."""
    plans = [plan for plan in await context.store.list_plans() if plan.spec.billing.stripe_price_id is None]
    for plan in plans:
        if plan.name == "free":
            return plan
    return min(plans, key=lambda plan: plan.spec.billing.monthly_price_cents, default=None)


def _first_item(subscription: dict[str, Any]) -> dict[str, Any] | None:
    items = ((subscription.get("items") or {}).get("data")) or []
    return items[0] if items else None


def _invoice_subscription(invoice: dict[str, Any]) -> str | None:
    # From API version 2025-03-31 the subscription sits under parent.subscription_details.
    details = ((invoice.get("parent") or {}).get("subscription_details")) or {}
    return _id_of(details.get("subscription")) or _id_of(invoice.get("subscription"))


def _id_of(value: Any) -> str | None:
    """Return the id of an expandable Stripe field, which is either an id string or an object."""
    if isinstance(value, dict):
        return value.get("id")
    return value if isinstance(value, str) and value else None
