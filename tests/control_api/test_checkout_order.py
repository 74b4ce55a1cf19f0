"""Completed Checkouts delivered late or out of order never bring back an ended or older subscription."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

from .conftest import STRIPE_KEY, post_event, stripe_event, subscription_object, unique_name
from .test_webhooks import PRO_PRICE, billing_row, checkout_completed, localstripe_subscription

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def admin_tenant(stripe_api) -> str:
    """Create a tenant on the free plan as an admin would, with no billing state yet."""
    name = unique_name()
    manifest = {"apiVersion": "livery.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": name},
                "spec": {"displayName": "Ordered Corp", "plan": "free", "owner": {"email": f"{name}@example.com"}}}
    response = await stripe_api.admin("POST", "/v1/admin/apply", json=manifest)
    assert response.status_code == 200, response.text
    return name


async def plan_of(stripe_api, tenant: str) -> str:
    return (await stripe_api.context.store.get_tenant(tenant)).spec.plan


def cancel_in_localstripe(localstripe_url: str, subscription: str) -> None:
    response = httpx.delete(f"{localstripe_url}/v1/subscriptions/{subscription}", auth=(STRIPE_KEY, ""))
    assert response.status_code == 200, response.text


async def subscription_event(stripe_api, event_type: str, subscription: str, customer: str, status: str,
                             tenant: str, created: int) -> httpx.Response:
    body = subscription_object(subscription, customer, status, PRO_PRICE, tenant, created)
    response = await post_event(stripe_api, stripe_event(event_type, body, created))
    assert response.status_code == 200, response.text
    return response


async def test_late_checkout_keeps_cancellation(stripe_api):
    tenant = await admin_tenant(stripe_api)
    customer, subscription = f"cus_{uuid.uuid4().hex[:14]}", f"sub_{uuid.uuid4().hex[:14]}"
    t0 = int(time.time()) - 200
    await subscription_event(stripe_api, "customer.subscription.created", subscription, customer, "active", tenant, t0)
    assert await plan_of(stripe_api, tenant) == "pro"
    await subscription_event(stripe_api, "customer.subscription.deleted", subscription, customer, "canceled", tenant, t0 + 100)

    late = checkout_completed(tenant, customer, subscription, plan="pro")
    response = await post_event(stripe_api, stripe_event("checkout.session.completed", late, t0 + 1))

    assert response.status_code == 200
    assert response.json()["outcome"] == "stale"
    assert await plan_of(stripe_api, tenant) == "free"
    billing = await billing_row(stripe_api, tenant)
    assert billing.subscription_id == subscription
    assert billing.subscription_status == "canceled"


async def test_same_second_checkout_asks_stripe(stripe_api, localstripe_url):
    tenant = await admin_tenant(stripe_api)
    customer, subscription = localstripe_subscription(localstripe_url, PRO_PRICE, tenant)
    cancel_in_localstripe(localstripe_url, subscription)
    now = int(time.time())
    await subscription_event(stripe_api, "customer.subscription.created", subscription, customer, "active", tenant, now - 100)
    await subscription_event(stripe_api, "customer.subscription.deleted", subscription, customer, "canceled", tenant, now)

    same_second = checkout_completed(tenant, customer, subscription, plan="pro")
    response = await post_event(stripe_api, stripe_event("checkout.session.completed", same_second, now))

    assert response.status_code == 200
    # Stripe has the subscription cancelled, so the payload's paid plan is not applied.
    assert await plan_of(stripe_api, tenant) == "free"
    assert (await billing_row(stripe_api, tenant)).subscription_status == "canceled"


async def test_late_checkout_of_cancelled_subscription_is_ignored(stripe_api, localstripe_url):
    tenant = await admin_tenant(stripe_api)
    customer, old_subscription = localstripe_subscription(localstripe_url, PRO_PRICE, tenant)
    cancel_in_localstripe(localstripe_url, old_subscription)
    new_subscription = f"sub_{uuid.uuid4().hex[:14]}"
    t0 = int(time.time()) - 200
    await subscription_event(stripe_api, "customer.subscription.created", new_subscription, customer, "active", tenant, t0 + 60)

    late = checkout_completed(tenant, customer, old_subscription, plan="pro")
    response = await post_event(stripe_api, stripe_event("checkout.session.completed", late, t0 + 1))
    cancellation = await subscription_event(
        stripe_api, "customer.subscription.deleted", new_subscription, customer, "canceled", tenant, t0 + 100
    )

    assert response.json()["outcome"] == "ignored"
    assert cancellation.json()["outcome"] == "applied"
    billing = await billing_row(stripe_api, tenant)
    assert billing.subscription_id == new_subscription
    assert billing.subscription_status == "canceled"
    assert await plan_of(stripe_api, tenant) == "free"


async def test_late_checkout_of_older_live_subscription_is_ignored(stripe_api, localstripe_url):
    tenant = await admin_tenant(stripe_api)
    customer, old_subscription = localstripe_subscription(localstripe_url, PRO_PRICE, tenant)
    # Stripe's `created` has one-second resolution, so the second subscription must start a second later.
    await asyncio.sleep(1.1)
    _, new_subscription = localstripe_subscription(localstripe_url, PRO_PRICE, tenant)
    t0 = int(time.time()) - 200
    await subscription_event(stripe_api, "customer.subscription.created", new_subscription, customer, "active", tenant, t0 + 60)

    late = checkout_completed(tenant, customer, old_subscription, plan="pro")
    response = await post_event(stripe_api, stripe_event("checkout.session.completed", late, t0 + 1))

    assert response.json()["outcome"] == "ignored"
    assert (await billing_row(stripe_api, tenant)).subscription_id == new_subscription


async def test_late_checkout_of_newer_subscription_applies(stripe_api, localstripe_url):
    tenant = await admin_tenant(stripe_api)
    customer, old_subscription = localstripe_subscription(localstripe_url, PRO_PRICE, tenant)
    await asyncio.sleep(1.1)
    _, new_subscription = localstripe_subscription(localstripe_url, PRO_PRICE, tenant)
    t0 = int(time.time()) - 200
    await subscription_event(stripe_api, "customer.subscription.created", old_subscription, customer, "active", tenant, t0)
    # The old subscription changes after the new one's Checkout completed, and that event arrives first.
    await subscription_event(stripe_api, "customer.subscription.updated", old_subscription, customer, "past_due", tenant, t0 + 100)

    checkout = checkout_completed(tenant, customer, new_subscription, plan="pro")
    response = await post_event(stripe_api, stripe_event("checkout.session.completed", checkout, t0 + 50))

    assert response.json()["outcome"] == "applied"
    billing = await billing_row(stripe_api, tenant)
    assert billing.subscription_id == new_subscription
    assert billing.subscription_status == "active"
    assert await plan_of(stripe_api, tenant) == "pro"


async def test_checkout_after_cancellation_resubscribes(stripe_api):
    tenant = await admin_tenant(stripe_api)
    customer, old_subscription = f"cus_{uuid.uuid4().hex[:14]}", f"sub_{uuid.uuid4().hex[:14]}"
    t0 = int(time.time()) - 200
    await subscription_event(stripe_api, "customer.subscription.created", old_subscription, customer, "active", tenant, t0)
    await subscription_event(stripe_api, "customer.subscription.deleted", old_subscription, customer, "canceled", tenant, t0 + 50)
    new_subscription = f"sub_{uuid.uuid4().hex[:14]}"

    checkout = checkout_completed(tenant, customer, new_subscription, plan="pro")
    response = await post_event(stripe_api, stripe_event("checkout.session.completed", checkout, t0 + 100))

    assert response.json()["outcome"] == "applied"
    billing = await billing_row(stripe_api, tenant)
    assert billing.subscription_id == new_subscription
    assert billing.subscription_status == "active"
    assert await plan_of(stripe_api, tenant) == "pro"


async def test_late_event_of_older_subscription_is_ignored(stripe_api, localstripe_url):
    tenant = await admin_tenant(stripe_api)
    customer, old_subscription = localstripe_subscription(localstripe_url, PRO_PRICE, tenant)
    cancel_in_localstripe(localstripe_url, old_subscription)
    new_subscription = f"sub_{uuid.uuid4().hex[:14]}"
    t0 = int(time.time()) - 200
    await subscription_event(stripe_api, "customer.subscription.created", new_subscription, customer, "active", tenant, t0 + 60)
    await subscription_event(stripe_api, "customer.subscription.deleted", new_subscription, customer, "canceled", tenant, t0 + 100)

    late = await subscription_event(
        stripe_api, "customer.subscription.updated", old_subscription, customer, "active", tenant, t0 + 1
    )

    assert late.json()["outcome"] == "ignored"
    billing = await billing_row(stripe_api, tenant)
    assert billing.subscription_id == new_subscription
    assert await plan_of(stripe_api, tenant) == "free"
