"""Stripe billing: paid signup through Checkout, and webhooks applied once, in order, from the raw body."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from livery_control_api.billing.events import suspend_expired_grace_periods
from livery_control_api.dependencies import utcnow
from livery_control_api.tables import AuditEntry, StripeEvent, TenantBilling

from .conftest import STRIPE_KEY, post_event, sign_payload, stripe_event, subscription_object

pytestmark = pytest.mark.asyncio(loop_scope="session")

PRO_PRICE = "price_1QLiveryProMonthly"
ENTERPRISE_PRICE = "price_1QLiveryEnterpriseMonthly"


async def paid_signup(stripe_api, plan: str = "pro") -> str:
    response, tenant, _ = await stripe_api.signup(plan=plan)
    assert response.status_code == 201, response.text
    assert response.json()["state"] == "pending_payment"
    return tenant


def checkout_completed(tenant: str, customer: str, subscription: str, plan: str = "pro") -> dict:
    return {
        "id": f"cs_test_{uuid.uuid4().hex}", "object": "checkout.session", "mode": "subscription",
        "payment_status": "paid", "status": "complete", "client_reference_id": tenant,
        "customer": customer, "subscription": subscription, "metadata": {"tenant": tenant, "plan": plan},
    }


async def billing_row(api, tenant: str) -> TenantBilling | None:
    async with api.context.sessions() as session:
        return await session.get(TenantBilling, tenant)


async def tenant_exists(api, tenant: str) -> bool:
    return any(item.name == tenant for item in await api.context.store.list_tenants())


async def provisioned_paid_tenant(stripe_api) -> tuple[str, str, str]:
    tenant = await paid_signup(stripe_api)
    customer, subscription = f"cus_{uuid.uuid4().hex[:14]}", f"sub_{uuid.uuid4().hex[:14]}"
    event = stripe_event("checkout.session.completed", checkout_completed(tenant, customer, subscription), int(time.time()))
    response = await post_event(stripe_api, event)
    assert response.status_code == 200, response.text
    return tenant, customer, subscription


async def test_paid_signup_returns_checkout_url(stripe_api, stripe_server):
    tenant = await paid_signup(stripe_api)

    recorded = stripe_server.checkout_sessions[-1]
    assert recorded["form"]["client_reference_id"] == tenant
    assert recorded["form"]["line_items[0][price]"] == PRO_PRICE
    assert recorded["idempotency_key"].startswith(f"signup-{tenant}-")
    assert not await tenant_exists(stripe_api, tenant)


async def test_checkout_failure_leaves_nothing(stripe_api, stripe_server):
    # The client retries twice, so three failures in a row reach the signup.
    stripe_server.failing_checkouts = 3
    response, tenant, email = await stripe_api.signup(plan="pro")

    assert response.status_code == 503
    check = await stripe_api.http.get("/v1/signup/check-name", params={"name": tenant})
    assert check.json()["available"] is True


async def test_checkout_completed_writes_tenant(stripe_api):
    tenant, customer, subscription = await provisioned_paid_tenant(stripe_api)

    stored = await stripe_api.context.store.get_tenant(tenant)
    assert stored.spec.plan == "pro"
    billing = await billing_row(stripe_api, tenant)
    assert billing.customer_id == customer
    assert billing.subscription_id == subscription


async def test_subscription_update_before_create_ends_active(stripe_api):
    tenant = await paid_signup(stripe_api)
    customer, subscription = f"cus_{uuid.uuid4().hex[:14]}", f"sub_{uuid.uuid4().hex[:14]}"
    created = int(time.time()) - 100
    newer = subscription_object(subscription, customer, "active", PRO_PRICE, tenant, created)
    older = subscription_object(subscription, customer, "incomplete", PRO_PRICE, tenant, created)

    updated_response = await post_event(stripe_api, stripe_event("customer.subscription.updated", newer, created + 10))
    created_response = await post_event(stripe_api, stripe_event("customer.subscription.created", older, created))

    assert updated_response.status_code == 200
    assert created_response.status_code == 200
    assert created_response.json()["outcome"] == "stale"
    billing = await billing_row(stripe_api, tenant)
    assert billing.subscription_status == "active"
    assert (await stripe_api.context.store.get_tenant(tenant)).spec.plan == "pro"


async def test_older_cancellation_does_not_downgrade(stripe_api):
    tenant, customer, subscription = await provisioned_paid_tenant(stripe_api)
    now = int(time.time())
    upgraded = subscription_object(subscription, customer, "active", ENTERPRISE_PRICE, tenant, now - 50)
    deleted = subscription_object(subscription, customer, "canceled", PRO_PRICE, tenant, now - 50)

    await post_event(stripe_api, stripe_event("customer.subscription.updated", upgraded, now))
    late = await post_event(stripe_api, stripe_event("customer.subscription.deleted", deleted, now - 20))

    assert late.status_code == 200
    assert late.json()["outcome"] == "stale"
    assert (await stripe_api.context.store.get_tenant(tenant)).spec.plan == "enterprise"


async def test_raw_body_signature_is_accepted(stripe_api):
    event = stripe_event("customer.created", {"id": "cus_x", "object": "customer"}, int(time.time()))
    payload = json.dumps(event, indent=1).encode()

    response = await stripe_api.http.post(
        "/v1/billing/webhook", content=payload, headers={"Stripe-Signature": sign_payload(payload)}
    )

    assert response.status_code == 200
    assert response.json()["outcome"] == "ignored"


@pytest.mark.parametrize("tampering", ["reserialised", "altered", "stale", "future", "missing", "wrong_secret"])
async def test_unauthentic_webhook_is_rejected(stripe_api, tampering):
    tenant, customer, subscription = await provisioned_paid_tenant(stripe_api)
    cancel = subscription_object(subscription, customer, "canceled", PRO_PRICE, tenant, int(time.time()))
    event = stripe_event("customer.subscription.deleted", cancel, int(time.time()) + 5)
    original = json.dumps(event, indent=2).encode()
    header = sign_payload(original)
    body = original
    if tampering == "reserialised":
        body = json.dumps(json.loads(original)).encode()
    elif tampering == "altered":
        body = original.replace(b'"canceled"', b'"active"')
    elif tampering == "stale":
        header = sign_payload(original, timestamp=int(time.time()) - 3600)
    elif tampering == "future":
        header = sign_payload(original, timestamp=int(time.time()) + 3600)
    elif tampering == "wrong_secret":
        header = sign_payload(original, secret="whsec_someone_else")
    headers = {} if tampering == "missing" else {"Stripe-Signature": header}

    response = await stripe_api.http.post("/v1/billing/webhook", content=body, headers=headers)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_signature"
    async with stripe_api.context.sessions() as session:
        assert await session.get(StripeEvent, event["id"]) is None
    assert (await stripe_api.context.store.get_tenant(tenant)).spec.plan == "pro"


async def test_concurrent_duplicate_applies_once(stripe_api, monkeypatch):
    tenant, customer, subscription = await provisioned_paid_tenant(stripe_api)
    upgraded = subscription_object(subscription, customer, "active", ENTERPRISE_PRICE, tenant, int(time.time()))
    event = stripe_event("customer.subscription.updated", upgraded, int(time.time()) + 30)
    store = stripe_api.context.store
    original_apply = store.apply_tenant
    plan_writes = []
    first_started = asyncio.Event()

    async def slow_apply(name, patch, manager):
        if name == tenant and "plan" in patch:
            plan_writes.append(patch["plan"])
            first_started.set()
            await asyncio.sleep(0.3)
        return await original_apply(name, patch, manager)

    monkeypatch.setattr(store, "apply_tenant", slow_apply)

    async def repeat_while_first_runs():
        await first_started.wait()
        return await post_event(stripe_api, event)

    first, second = await asyncio.gather(post_event(stripe_api, event), repeat_while_first_runs())

    assert first.status_code == 200
    assert second.status_code == 200
    assert sorted([first.json()["outcome"], second.json()["outcome"]]) == ["applied", "duplicate"]
    assert plan_writes == ["enterprise"]
    async with stripe_api.context.sessions() as session:
        changes = await session.scalar(
            select(func.count()).select_from(AuditEntry).where(
                AuditEntry.tenant == tenant, AuditEntry.action == "billing.plan_changed"
            )
        )
    assert changes == 1


async def test_failed_event_is_applied_on_retry(stripe_api, monkeypatch):
    tenant, customer, subscription = await provisioned_paid_tenant(stripe_api)
    upgraded = subscription_object(subscription, customer, "active", ENTERPRISE_PRICE, tenant, int(time.time()))
    event = stripe_event("customer.subscription.updated", upgraded, int(time.time()) + 40)

    async def broken_apply(*args, **kwargs):
        raise RuntimeError("store unavailable")

    monkeypatch.setattr(stripe_api.context.store, "apply_tenant", broken_apply)
    failed = await post_event(stripe_api, event)
    monkeypatch.undo()
    retried = await post_event(stripe_api, event)

    assert failed.status_code == 500
    assert retried.status_code == 200
    assert retried.json()["outcome"] == "applied"
    assert (await stripe_api.context.store.get_tenant(tenant)).spec.plan == "enterprise"


async def test_unmapped_event_is_acknowledged(stripe_api, caplog):
    orphan = subscription_object(f"sub_{uuid.uuid4().hex[:12]}", "cus_nobody", "active", PRO_PRICE, "", int(time.time()))
    orphan["metadata"] = {}

    response = await post_event(stripe_api, stripe_event("customer.subscription.updated", orphan, int(time.time())))

    assert response.status_code == 200
    assert response.json()["outcome"] == "unmapped"
    assert "maps to no tenant" in caplog.text


async def test_payment_failure_suspends_after_grace(stripe_api):
    tenant, customer, subscription = await provisioned_paid_tenant(stripe_api)
    invoice = {"id": f"in_{uuid.uuid4().hex[:12]}", "object": "invoice", "customer": customer,
               "parent": {"type": "subscription_details", "subscription_details": {"subscription": subscription}}}

    failed = await post_event(stripe_api, stripe_event("invoice.payment_failed", invoice, int(time.time())))
    billing = await billing_row(stripe_api, tenant)
    assert failed.status_code == 200
    assert billing.grace_until is not None
    assert (await stripe_api.context.store.get_tenant(tenant)).spec.suspended is False

    async with stripe_api.context.sessions() as session, session.begin():
        row = await session.get(TenantBilling, tenant)
        row.grace_until = utcnow() - timedelta(seconds=1)
    suspended = await suspend_expired_grace_periods(stripe_api.context)
    assert tenant in suspended
    assert (await stripe_api.context.store.get_tenant(tenant)).spec.suspended is True

    paid = await post_event(stripe_api, stripe_event("invoice.paid", invoice, int(time.time()) + 60))
    assert paid.status_code == 200
    assert (await stripe_api.context.store.get_tenant(tenant)).spec.suspended is False


async def test_late_payment_failure_keeps_tenant_running(stripe_api):
    tenant, customer, subscription = await provisioned_paid_tenant(stripe_api)
    invoice = {"id": f"in_{uuid.uuid4().hex[:12]}", "object": "invoice", "customer": customer, "subscription": subscription}
    now = int(time.time())

    await post_event(stripe_api, stripe_event("invoice.paid", invoice, now + 10))
    late = await post_event(stripe_api, stripe_event("invoice.payment_failed", invoice, now))

    assert late.json()["outcome"] == "stale"
    assert (await billing_row(stripe_api, tenant)).grace_until is None


async def test_downgrade_from_stripe_marks_over_quota(stripe_api, local_store):
    tenant, customer, subscription = await provisioned_paid_tenant(stripe_api)
    secret = {"LIVERY_USAGE_TOKEN": "usage-token-" + tenant}
    await local_store.write_tenant_secret(tenant, secret)
    report = {"id": str(uuid.uuid4()), "metric": "users", "value": 12, "timestamp": "2026-01-01T00:00:00Z"}
    usage = await stripe_api.http.post("/v1/usage", json={"tenant": tenant, "reports": [report]},
                                       headers={"Authorization": f"Bearer {secret['LIVERY_USAGE_TOKEN']}"})
    assert usage.status_code == 200
    cancelled = subscription_object(subscription, customer, "canceled", PRO_PRICE, tenant, int(time.time()))

    response = await post_event(stripe_api, stripe_event("customer.subscription.deleted", cancelled, int(time.time()) + 90))

    assert response.status_code == 200
    assert (await stripe_api.context.store.get_tenant(tenant)).spec.plan == "free"
    billing = await billing_row(stripe_api, tenant)
    assert billing.over_quota == "users: used 12, limit 3, excess 9"


def localstripe_subscription(localstripe_url: str, price: str, tenant: str) -> tuple[str, str]:
    """Create a paying customer and an active subscription to `price` in localstripe; return their ids."""
    import httpx

    client = httpx.Client(base_url=localstripe_url, auth=(STRIPE_KEY, ""))
    product = client.post("/v1/products", data={"name": "Livery plan", "type": "service"}).json()["id"]
    # localstripe has legacy plans, not prices; a plan id works where Stripe takes a price id.
    client.post("/v1/plans", data={"id": price, "amount": "49900", "currency": "usd", "interval": "month", "product": product})
    card = client.post("/v1/tokens", data={"card[number]": "4242424242424242", "card[exp_month]": "12",
                                            "card[exp_year]": "2030", "card[cvc]": "123"}).json()["id"]
    customer = client.post("/v1/customers", data={"email": f"{tenant}@example.com", "source": card}).json()["id"]
    subscription = client.post("/v1/subscriptions", data={"customer": customer, "items[0][plan]": price,
                                                           "metadata[tenant]": tenant}).json()
    assert subscription["status"] == "active", subscription
    return customer, subscription["id"]


async def test_same_second_event_fetches_subscription(stripe_api, localstripe_url):
    tenant = await paid_signup(stripe_api)
    customer, subscription = localstripe_subscription(localstripe_url, ENTERPRISE_PRICE, tenant)
    now = int(time.time()) + 120
    completed = checkout_completed(tenant, customer, subscription)
    await post_event(stripe_api, stripe_event("checkout.session.completed", completed, now - 5))
    first = subscription_object(subscription, customer, "active", PRO_PRICE, tenant, now)
    second = subscription_object(subscription, customer, "past_due", PRO_PRICE, tenant, now)

    await post_event(stripe_api, stripe_event("customer.subscription.updated", first, now))
    ambiguous = await post_event(stripe_api, stripe_event("customer.subscription.updated", second, now))

    assert ambiguous.status_code == 200
    # localstripe has the subscription active on the enterprise price, so neither payload wins.
    assert (await billing_row(stripe_api, tenant)).subscription_status == "active"
    assert (await stripe_api.context.store.get_tenant(tenant)).spec.plan == "enterprise"


async def test_portal_returns_stripe_url(stripe_api):
    tenant, customer, _ = await provisioned_paid_tenant(stripe_api)
    email = f"{tenant}@example.com"
    headers = {"Authorization": f"Bearer {await stripe_api.token(email)}"}

    response = await stripe_api.http.post(f"/v1/tenants/{tenant}/billing/portal", headers=headers)

    assert response.status_code == 200
    assert response.json()["url"].startswith("https://billing.stripe.com/")


async def test_usage_api_calls_become_meter_events(stripe_api, local_store, stripe_server):
    tenant, customer, _ = await provisioned_paid_tenant(stripe_api)
    token = "usage-token-" + tenant
    await local_store.write_tenant_secret(tenant, {"LIVERY_USAGE_TOKEN": token})
    report = {"id": str(uuid.uuid4()), "metric": "api_calls", "value": 42, "timestamp": "2026-01-01T00:00:00Z"}

    for _ in range(2):
        response = await stripe_api.http.post("/v1/usage", json={"tenant": tenant, "reports": [report]},
                                              headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200

    event = stripe_server.meter_events[report["id"]]
    assert event["payload"] == {"stripe_customer_id": customer, "value": "42"}
    assert list(stripe_server.meter_events).count(report["id"]) == 1


async def test_expired_checkout_releases_name(stripe_api, stripe_server):
    tenant = await paid_signup(stripe_api)
    session_id = stripe_server.checkout_sessions[-1]["session"]["id"]
    expired = {"id": session_id, "object": "checkout.session", "mode": "subscription", "status": "expired",
               "client_reference_id": tenant, "metadata": {"tenant": tenant, "plan": "pro"}}

    response = await post_event(stripe_api, stripe_event("checkout.session.expired", expired, int(time.time())))

    assert response.status_code == 200
    assert response.json()["outcome"] == "applied"
    check = await stripe_api.http.get("/v1/signup/check-name", params={"name": tenant})
    assert check.json()["available"] is True


async def test_failed_meter_event_is_resent(stripe_api, local_store, stripe_server, monkeypatch):
    from sqlalchemy import update

    from livery_control_api.billing.meters import resend_meter_events
    from livery_control_api.billing.provider import BillingError
    from livery_control_api.tables import UsageRecord

    tenant, customer, _ = await provisioned_paid_tenant(stripe_api)
    token = "usage-token-" + tenant
    await local_store.write_tenant_secret(tenant, {"LIVERY_USAGE_TOKEN": token})
    report = {"id": str(uuid.uuid4()), "metric": "api_calls", "value": 5, "timestamp": "2026-01-01T00:00:00Z"}

    async def unreachable(**kwargs):
        raise BillingError("Stripe unreachable")

    monkeypatch.setattr(stripe_api.context.billing, "send_meter_event", unreachable)
    response = await stripe_api.http.post("/v1/usage", json={"tenant": tenant, "reports": [report]},
                                          headers={"Authorization": f"Bearer {token}"})
    monkeypatch.undo()
    async with stripe_api.context.sessions() as session, session.begin():
        await session.execute(
            update(UsageRecord).where(UsageRecord.id == report["id"]).values(received_at=utcnow() - timedelta(minutes=5))
        )

    resent = await resend_meter_events(stripe_api.context)

    assert response.status_code == 200
    assert resent >= 1
    assert stripe_server.meter_events[report["id"]]["payload"]["value"] == "5"
    async with stripe_api.context.sessions() as session:
        assert (await session.get(UsageRecord, report["id"])).meter_event_sent is True


async def test_second_checkout_is_refused(stripe_api):
    tenant, customer, subscription = await provisioned_paid_tenant(stripe_api)
    active = subscription_object(subscription, customer, "active", PRO_PRICE, tenant, int(time.time()))
    await post_event(stripe_api, stripe_event("customer.subscription.updated", active, int(time.time()) + 200))
    headers = {"Authorization": f"Bearer {await stripe_api.token(f'{tenant}@example.com')}"}

    response = await stripe_api.http.post(f"/v1/tenants/{tenant}/billing/checkout", json={"plan": "enterprise"}, headers=headers)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "subscription_exists"


async def test_free_tenant_upgrades_through_checkout(stripe_api, stripe_server):
    tenant, owner = await stripe_api.owner(plan="free")

    response = await stripe_api.http.post(f"/v1/tenants/{tenant}/billing/checkout", json={"plan": "pro"}, headers=owner)

    assert response.status_code == 200
    assert response.json()["url"].startswith("https://checkout.stripe.com/")
    assert stripe_server.checkout_sessions[-1]["form"]["metadata[plan]"] == "pro"


async def test_paid_signup_never_takes_admin_tenant(stripe_api):
    tenant = await paid_signup(stripe_api)
    manifest = {"apiVersion": "livery.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": tenant},
                "spec": {"displayName": "Admin Made", "plan": "free", "owner": {"email": "other@example.com"}}}
    # Created outside the control API (kubectl), which cannot see the pending signup.
    await stripe_api.context.store.apply_tenant(tenant, manifest["spec"], "kubectl")
    completed = checkout_completed(tenant, f"cus_{uuid.uuid4().hex[:14]}", f"sub_{uuid.uuid4().hex[:14]}")

    response = await post_event(stripe_api, stripe_event("checkout.session.completed", completed, int(time.time())))

    assert response.status_code == 200
    stored = await stripe_api.context.store.get_tenant(tenant)
    assert stored.spec.owner.email == "other@example.com"
    assert stored.spec.display_name == "Admin Made"


async def test_admin_delete_cancels_subscription(stripe_api, localstripe_url):
    import httpx

    tenant = await paid_signup(stripe_api)
    customer, subscription = localstripe_subscription(localstripe_url, PRO_PRICE, tenant)
    completed = checkout_completed(tenant, customer, subscription)
    await post_event(stripe_api, stripe_event("checkout.session.completed", completed, int(time.time())))
    active = subscription_object(subscription, customer, "active", PRO_PRICE, tenant, int(time.time()))
    await post_event(stripe_api, stripe_event("customer.subscription.updated", active, int(time.time()) + 1))

    response = await stripe_api.admin("DELETE", f"/v1/admin/tenants/{tenant}")

    assert response.status_code == 202
    stored = httpx.get(f"{localstripe_url}/v1/subscriptions/{subscription}", auth=(STRIPE_KEY, "")).json()
    assert stored["status"] == "canceled"
    check = await stripe_api.http.get("/v1/signup/check-name", params={"name": tenant})
    assert check.json()["reason"] == "taken"


async def test_oversized_webhook_is_rejected(stripe_api):
    payload = b"{" + b" " * (1024 * 1024 + 10) + b"}"

    response = await stripe_api.http.post("/v1/billing/webhook", content=payload, headers={"Stripe-Signature": sign_payload(payload)})

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


async def test_admin_delete_retires_billing(stripe_api):
    tenant, customer, subscription = await provisioned_paid_tenant(stripe_api)

    response = await stripe_api.admin("DELETE", f"/v1/admin/tenants/{tenant}")

    assert response.status_code == 202
    assert await billing_row(stripe_api, tenant) is None


async def test_event_of_deleted_tenant_is_stale(stripe_api):
    tenant, customer, subscription = await provisioned_paid_tenant(stripe_api)
    await stripe_api.admin("DELETE", f"/v1/admin/tenants/{tenant}")
    past_due = subscription_object(subscription, customer, "past_due", PRO_PRICE, tenant, int(time.time()))

    response = await post_event(stripe_api, stripe_event("customer.subscription.updated", past_due, int(time.time()) + 5))

    assert response.status_code == 200
    assert response.json()["outcome"] == "stale"
    assert await billing_row(stripe_api, tenant) is None


async def test_new_tenant_of_old_name_has_no_billing(stripe_api):
    name = f"t{uuid.uuid4().hex[:10]}"
    async with stripe_api.context.sessions() as session, session.begin():
        session.add(TenantBilling(tenant=name, customer_id=f"cus_{uuid.uuid4().hex[:14]}", subscription_status="past_due",
                                  grace_until=utcnow() + timedelta(hours=1)))
    manifest = {"apiVersion": "livery.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": name},
                "spec": {"displayName": "Reused Name", "plan": "free"}}

    response = await stripe_api.admin("POST", "/v1/admin/apply", json=manifest)

    assert response.status_code == 200
    assert await billing_row(stripe_api, name) is None


async def test_old_subscription_cancellation_keeps_new_plan(stripe_api):
    tenant, customer, old_subscription = await provisioned_paid_tenant(stripe_api)
    now = int(time.time())
    active = subscription_object(old_subscription, customer, "active", PRO_PRICE, tenant, now - 100)
    await post_event(stripe_api, stripe_event("customer.subscription.updated", active, now - 90))
    new_subscription = f"sub_{uuid.uuid4().hex[:14]}"
    upgrade = checkout_completed(tenant, customer, new_subscription, plan="enterprise")
    await post_event(stripe_api, stripe_event("checkout.session.completed", upgrade, now - 50))
    paying = subscription_object(new_subscription, customer, "active", ENTERPRISE_PRICE, tenant, now - 50)
    await post_event(stripe_api, stripe_event("customer.subscription.created", paying, now - 40))
    cancelled = subscription_object(old_subscription, customer, "canceled", PRO_PRICE, tenant, now - 100)

    response = await post_event(stripe_api, stripe_event("customer.subscription.deleted", cancelled, now))

    assert response.status_code == 200
    assert response.json()["outcome"] == "ignored"
    assert (await stripe_api.context.store.get_tenant(tenant)).spec.plan == "enterprise"
    assert (await billing_row(stripe_api, tenant)).subscription_id == new_subscription


@pytest.mark.parametrize(
    "malformed",
    [{"data": {"object": []}}, {"data": []}, {"created": "yesterday"}, {"created": 1.5}],
)
async def test_malformed_signed_event_is_rejected(stripe_api, malformed):
    event = stripe_event("customer.subscription.updated", {"id": "sub_x", "object": "subscription"}, int(time.time()))
    event.update(malformed)

    response = await post_event(stripe_api, event)

    assert response.status_code == 400
    assert response.json()["error"]["field"] is None
    async with stripe_api.context.sessions() as session:
        assert await session.get(StripeEvent, event["id"]) is None


async def test_unreachable_stripe_returns_503(stripe_api, monkeypatch):
    from livery_control_api.billing.provider import BillingError

    tenant, customer, subscription = await provisioned_paid_tenant(stripe_api)
    now = int(time.time())
    active = subscription_object(subscription, customer, "active", PRO_PRICE, tenant, now)
    await post_event(stripe_api, stripe_event("customer.subscription.updated", active, now))
    ambiguous = stripe_event("customer.subscription.updated", active, now)

    async def unreachable(subscription_id):
        raise BillingError("Stripe unreachable")

    monkeypatch.setattr(stripe_api.context.billing, "retrieve_subscription", unreachable)
    response = await post_event(stripe_api, ambiguous)
    monkeypatch.undo()

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
    async with stripe_api.context.sessions() as session:
        # Not recorded, so Stripe's retry applies the event.
        assert await session.get(StripeEvent, ambiguous["id"]) is None


async def test_old_subscription_payment_failure_is_ignored(stripe_api):
    tenant, customer, old_subscription = await provisioned_paid_tenant(stripe_api)
    now = int(time.time())
    active = subscription_object(old_subscription, customer, "active", PRO_PRICE, tenant, now - 100)
    await post_event(stripe_api, stripe_event("customer.subscription.updated", active, now - 90))
    upgrade = checkout_completed(tenant, customer, f"sub_{uuid.uuid4().hex[:14]}", plan="enterprise")
    await post_event(stripe_api, stripe_event("checkout.session.completed", upgrade, now - 50))
    invoice = {"id": f"in_{uuid.uuid4().hex[:12]}", "object": "invoice", "customer": customer,
               "parent": {"type": "subscription_details", "subscription_details": {"subscription": old_subscription}}}

    response = await post_event(stripe_api, stripe_event("invoice.payment_failed", invoice, now))

    assert response.status_code == 200
    assert response.json()["outcome"] == "ignored"
    assert (await billing_row(stripe_api, tenant)).grace_until is None


async def test_upgrade_checkout_after_new_subscription_event(stripe_api):
    tenant, customer, old_subscription = await provisioned_paid_tenant(stripe_api)
    now = int(time.time())
    active = subscription_object(old_subscription, customer, "active", PRO_PRICE, tenant, now - 100)
    await post_event(stripe_api, stripe_event("customer.subscription.updated", active, now - 90))
    new_subscription = f"sub_{uuid.uuid4().hex[:14]}"
    paying = subscription_object(new_subscription, customer, "active", ENTERPRISE_PRICE, tenant, now - 60)
    early = await post_event(stripe_api, stripe_event("customer.subscription.created", paying, now - 60))
    upgrade = checkout_completed(tenant, customer, new_subscription, plan="enterprise")

    response = await post_event(stripe_api, stripe_event("checkout.session.completed", upgrade, now - 50))

    assert early.json()["outcome"] == "ignored"
    assert response.status_code == 200
    assert (await stripe_api.context.store.get_tenant(tenant)).spec.plan == "enterprise"
    assert (await billing_row(stripe_api, tenant)).subscription_id == new_subscription
