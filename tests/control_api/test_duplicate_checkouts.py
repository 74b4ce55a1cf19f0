"""At most one upgrade Checkout is open per tenant, and a second paid subscription is cancelled in Stripe."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import pytest
from sqlalchemy import select

from livery_control_api.billing.provider import BillingError
from livery_control_api.tables import AuditEntry, StripeEvent

from .conftest import STRIPE_KEY, post_event, stripe_event
from .test_webhooks import ENTERPRISE_PRICE, PRO_PRICE, billing_row, checkout_completed, localstripe_subscription

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def start_checkout(stripe_api, tenant: str, headers: dict[str, str], plan: str) -> httpx.Response:
    return await stripe_api.http.post(f"/v1/tenants/{tenant}/billing/checkout", json={"plan": plan}, headers=headers)


def subscription_status(localstripe_url: str, subscription: str) -> str:
    response = httpx.get(f"{localstripe_url}/v1/subscriptions/{subscription}", auth=(STRIPE_KEY, ""))
    assert response.status_code == 200, response.text
    return response.json()["status"]


async def audit_entries(stripe_api, tenant: str, action: str) -> list[dict]:
    async with stripe_api.context.sessions() as session:
        rows = await session.scalars(
            select(AuditEntry.detail).where(AuditEntry.tenant == tenant, AuditEntry.action == action).order_by(AuditEntry.id)
        )
        return list(rows.all())


async def complete(stripe_api, tenant: str, customer: str, subscription: str, plan: str, created: int) -> httpx.Response:
    event = stripe_event("checkout.session.completed", checkout_completed(tenant, customer, subscription, plan=plan), created)
    return await post_event(stripe_api, event)


async def two_live_subscriptions(localstripe_url: str, tenant: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """Create two active subscriptions in localstripe, the second one a second later, as two paid Checkouts would."""
    older = localstripe_subscription(localstripe_url, PRO_PRICE, tenant)
    # Stripe's `created` has one-second resolution, and the newer subscription must compare as newer.
    await asyncio.sleep(1.1)
    newer = localstripe_subscription(localstripe_url, ENTERPRISE_PRICE, tenant)
    return older, newer


async def test_second_checkout_for_other_plan_is_rejected(stripe_api, stripe_server):
    tenant, owner = await stripe_api.owner(plan="free")
    first = await start_checkout(stripe_api, tenant, owner, "pro")
    sessions_before = len(stripe_server.checkout_sessions)

    second = await start_checkout(stripe_api, tenant, owner, "enterprise")

    assert first.status_code == 200, first.text
    assert second.status_code == 409
    error = second.json()["error"]
    assert error["code"] == "checkout_open"
    assert error["field"] == "plan"
    assert "'pro'" in error["message"]
    assert len(stripe_server.checkout_sessions) == sessions_before


async def test_repeated_checkout_continues_open_session(stripe_api, stripe_server):
    tenant, owner = await stripe_api.owner(plan="free")
    first = await start_checkout(stripe_api, tenant, owner, "pro")
    sessions_before = len(stripe_server.checkout_sessions)
    # A branding edit changes the Tenant's resource version, and with it Stripe's idempotency key.
    edited = await stripe_api.http.patch(f"/v1/tenants/{tenant}/branding", json={"productName": "Edited"}, headers=owner)
    assert edited.status_code == 200, edited.text

    again = await start_checkout(stripe_api, tenant, owner, "pro")

    assert again.status_code == 200
    assert again.json()["url"] == first.json()["url"]
    assert len(stripe_server.checkout_sessions) == sessions_before


async def test_concurrent_checkouts_open_one_session(stripe_api, stripe_server):
    tenant, owner = await stripe_api.owner(plan="free")
    sessions_before = len(stripe_server.checkout_sessions)

    responses = await asyncio.gather(
        start_checkout(stripe_api, tenant, owner, "pro"), start_checkout(stripe_api, tenant, owner, "enterprise"),
    )

    assert sorted(response.status_code for response in responses) == [200, 409]
    assert len(stripe_server.checkout_sessions) == sessions_before + 1


async def test_expired_checkout_allows_another(stripe_api, stripe_server):
    tenant, owner = await stripe_api.owner(plan="free")
    await start_checkout(stripe_api, tenant, owner, "pro")
    session_id = stripe_server.checkout_sessions[-1]["session"]["id"]
    expired = {"id": session_id, "object": "checkout.session", "mode": "subscription", "status": "expired",
               "client_reference_id": tenant, "metadata": {"tenant": tenant, "plan": "pro"}}

    response = await post_event(stripe_api, stripe_event("checkout.session.expired", expired, int(time.time())))
    other = await start_checkout(stripe_api, tenant, owner, "enterprise")

    assert response.json()["outcome"] == "applied"
    assert other.status_code == 200, other.text
    assert stripe_server.checkout_sessions[-1]["form"]["metadata[plan]"] == "enterprise"


async def test_completed_checkout_closes_open_session(stripe_api, stripe_server, localstripe_url):
    tenant, owner = await stripe_api.owner(plan="free")
    await start_checkout(stripe_api, tenant, owner, "pro")
    session_id = stripe_server.checkout_sessions[-1]["session"]["id"]
    customer, subscription = localstripe_subscription(localstripe_url, PRO_PRICE, tenant)
    paid = checkout_completed(tenant, customer, subscription, plan="pro")
    paid["id"] = session_id

    response = await post_event(stripe_api, stripe_event("checkout.session.completed", paid, int(time.time())))
    other = await start_checkout(stripe_api, tenant, owner, "enterprise")

    assert response.json()["outcome"] == "applied"
    billing = await billing_row(stripe_api, tenant)
    assert billing.checkout_session_id is None
    assert billing.checkout_expires_at is None
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "subscription_exists"


async def test_second_paid_checkout_cancels_replaced_subscription(stripe_api, localstripe_url, caplog):
    tenant, _ = await stripe_api.owner(plan="free")
    (customer, older), (_, newer) = await two_live_subscriptions(localstripe_url, tenant)
    now = int(time.time())
    first = await complete(stripe_api, tenant, customer, older, "pro", now - 60)

    with caplog.at_level(logging.WARNING, logger="livery.control_api.webhooks"):
        second = await complete(stripe_api, tenant, customer, newer, "enterprise", now - 30)

    assert first.json()["outcome"] == "applied"
    assert second.json()["outcome"] == "applied"
    billing = await billing_row(stripe_api, tenant)
    assert billing.subscription_id == newer
    assert (await stripe_api.context.store.get_tenant(tenant)).spec.plan == "enterprise"
    assert subscription_status(localstripe_url, older) == "canceled"
    assert subscription_status(localstripe_url, newer) == "active"
    entries = await audit_entries(stripe_api, tenant, "billing.duplicate_subscription_cancelled")
    assert [(entry["subscription"], entry["kept_subscription"]) for entry in entries] == [(older, newer)]
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any(older in message and newer in message and tenant in message for message in warnings), warnings


async def test_late_checkout_of_older_subscription_cancels_it(stripe_api, localstripe_url):
    tenant, _ = await stripe_api.owner(plan="free")
    (customer, older), (_, newer) = await two_live_subscriptions(localstripe_url, tenant)
    now = int(time.time())
    await complete(stripe_api, tenant, customer, newer, "enterprise", now - 60)

    late = await complete(stripe_api, tenant, customer, older, "pro", now - 30)

    assert late.json()["outcome"] == "ignored"
    assert (await billing_row(stripe_api, tenant)).subscription_id == newer
    assert (await stripe_api.context.store.get_tenant(tenant)).spec.plan == "enterprise"
    assert subscription_status(localstripe_url, older) == "canceled"
    assert subscription_status(localstripe_url, newer) == "active"
    entries = await audit_entries(stripe_api, tenant, "billing.duplicate_subscription_cancelled")
    assert [(entry["subscription"], entry["kept_subscription"]) for entry in entries] == [(older, newer)]


async def test_failed_cancellation_returns_503(stripe_api, localstripe_url, monkeypatch):
    tenant, _ = await stripe_api.owner(plan="free")
    (customer, older), (_, newer) = await two_live_subscriptions(localstripe_url, tenant)
    now = int(time.time())
    await complete(stripe_api, tenant, customer, older, "pro", now - 60)
    second = stripe_event("checkout.session.completed", checkout_completed(tenant, customer, newer, plan="enterprise"), now - 30)

    async def unreachable(subscription_id):
        raise BillingError("Stripe unreachable")

    monkeypatch.setattr(stripe_api.context.billing, "cancel_subscription", unreachable)
    failed = await post_event(stripe_api, second)
    monkeypatch.undo()

    assert failed.status_code == 503
    async with stripe_api.context.sessions() as session:
        assert await session.get(StripeEvent, second["id"]) is None
    assert (await billing_row(stripe_api, tenant)).subscription_id == older
    assert (await stripe_api.context.store.get_tenant(tenant)).spec.plan == "pro"
    assert subscription_status(localstripe_url, older) == "active"

    retried = await post_event(stripe_api, second)

    assert retried.status_code == 200
    assert retried.json()["outcome"] == "applied"
    assert (await billing_row(stripe_api, tenant)).subscription_id == newer
    assert subscription_status(localstripe_url, older) == "canceled"


async def test_cancelling_missing_subscription_is_no_change(stripe_api):
    cancelled = await stripe_api.context.billing.cancel_subscription("sub_missing0000000000")

    assert cancelled is False
