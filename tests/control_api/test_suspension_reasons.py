"""Suspension reasons: a payment ends a billing suspension but never one that a platform admin set."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest

from livery.store.base import CLI_FIELD_MANAGER
from livery_control_api.billing.events import suspend_expired_grace_periods
from livery_control_api.dependencies import utcnow
from livery_control_api.tables import TenantBilling

from .conftest import post_event, stripe_event
from .test_webhooks import billing_row, provisioned_paid_tenant

pytestmark = pytest.mark.asyncio(loop_scope="session")


def invoice_of(customer: str, subscription: str) -> dict:
    return {"id": f"in_{uuid.uuid4().hex[:12]}", "object": "invoice", "customer": customer,
            "parent": {"type": "subscription_details", "subscription_details": {"subscription": subscription}}}


async def paying_tenant(stripe_api) -> tuple[str, dict, int]:
    """Return a tenant with an active subscription, an invoice of that subscription and the current time."""
    tenant, customer, subscription = await provisioned_paid_tenant(stripe_api)
    return tenant, invoice_of(customer, subscription), int(time.time())


async def suspend_for_nonpayment(stripe_api, tenant: str, invoice: dict, created: int) -> None:
    """Fail a payment, end the grace period at once and run the periodic suspension."""
    failed = await post_event(stripe_api, stripe_event("invoice.payment_failed", invoice, created))
    assert failed.json()["outcome"] == "applied", failed.text
    async with stripe_api.context.sessions() as session, session.begin():
        row = await session.get(TenantBilling, tenant)
        row.grace_until = utcnow() - timedelta(seconds=1)
    assert tenant in await suspend_expired_grace_periods(stripe_api.context)


async def pay(stripe_api, invoice: dict, created: int) -> None:
    paid = await post_event(stripe_api, stripe_event("invoice.paid", invoice, created))
    assert paid.json()["outcome"] == "applied", paid.text


async def is_suspended(stripe_api, tenant: str) -> bool:
    return (await stripe_api.context.store.get_tenant(tenant)).spec.suspended


async def audit_actions(stripe_api, tenant: str) -> list[str]:
    response = await stripe_api.admin("GET", "/v1/admin/audit", params={"tenant": tenant})
    assert response.status_code == 200, response.text
    return [entry["action"] for entry in response.json()]


async def test_payment_keeps_earlier_admin_suspension(stripe_api):
    tenant, invoice, now = await paying_tenant(stripe_api)
    suspended = await stripe_api.admin("POST", f"/v1/admin/tenants/{tenant}/suspend")
    assert suspended.status_code == 200
    await suspend_for_nonpayment(stripe_api, tenant, invoice, now)

    await pay(stripe_api, invoice, now + 60)

    assert await is_suspended(stripe_api, tenant) is True
    billing = await billing_row(stripe_api, tenant)
    assert billing.suspended_by_billing is False
    assert billing.suspended_by_admin is True
    assert "billing.suspension_cleared" in await audit_actions(stripe_api, tenant)
    assert "billing.resumed" not in await audit_actions(stripe_api, tenant)


async def test_payment_keeps_later_admin_suspension(stripe_api):
    tenant, invoice, now = await paying_tenant(stripe_api)
    await suspend_for_nonpayment(stripe_api, tenant, invoice, now)
    suspended = await stripe_api.admin("POST", f"/v1/admin/tenants/{tenant}/suspend")
    assert suspended.status_code == 200

    await pay(stripe_api, invoice, now + 60)

    assert await is_suspended(stripe_api, tenant) is True
    assert (await billing_row(stripe_api, tenant)).suspended_by_admin is True


async def test_payment_ends_billing_suspension(stripe_api):
    tenant, invoice, now = await paying_tenant(stripe_api)
    await suspend_for_nonpayment(stripe_api, tenant, invoice, now)
    assert await is_suspended(stripe_api, tenant) is True

    await pay(stripe_api, invoice, now + 60)

    assert await is_suspended(stripe_api, tenant) is False
    billing = await billing_row(stripe_api, tenant)
    assert billing.suspended_by_billing is False
    assert billing.suspended_by_admin is False
    assert "billing.resumed" in await audit_actions(stripe_api, tenant)


async def test_payment_keeps_suspension_made_outside_api(stripe_api):
    tenant, invoice, now = await paying_tenant(stripe_api)
    # What kubectl does: the Tenant changes, and the control API gets no request.
    await stripe_api.context.store.apply_tenant(tenant, {"suspended": True}, CLI_FIELD_MANAGER)
    await suspend_for_nonpayment(stripe_api, tenant, invoice, now)

    await pay(stripe_api, invoice, now + 60)

    assert await is_suspended(stripe_api, tenant) is True
    assert (await billing_row(stripe_api, tenant)).suspended_by_admin is True


async def test_admin_resume_clears_both_reasons(stripe_api):
    tenant, invoice, now = await paying_tenant(stripe_api)
    await suspend_for_nonpayment(stripe_api, tenant, invoice, now)
    await stripe_api.admin("POST", f"/v1/admin/tenants/{tenant}/suspend")

    resumed = await stripe_api.admin("POST", f"/v1/admin/tenants/{tenant}/resume")

    assert resumed.status_code == 200
    assert await is_suspended(stripe_api, tenant) is False
    billing = await billing_row(stripe_api, tenant)
    assert billing.suspended_by_billing is False
    assert billing.suspended_by_admin is False


async def test_resume_outside_api_drops_admin_reason(stripe_api):
    tenant, invoice, now = await paying_tenant(stripe_api)
    await stripe_api.admin("POST", f"/v1/admin/tenants/{tenant}/suspend")
    await stripe_api.context.store.apply_tenant(tenant, {"suspended": False}, CLI_FIELD_MANAGER)
    await suspend_for_nonpayment(stripe_api, tenant, invoice, now)

    await pay(stripe_api, invoice, now + 60)

    assert await is_suspended(stripe_api, tenant) is False


async def test_applied_manifest_records_admin_suspension(stripe_api):
    tenant, invoice, now = await paying_tenant(stripe_api)
    await suspend_for_nonpayment(stripe_api, tenant, invoice, now)
    current = await stripe_api.context.store.get_tenant(tenant)
    manifest = {"apiVersion": "livery.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": tenant},
                "spec": {"displayName": current.spec.display_name, "plan": current.spec.plan, "suspended": True}}

    applied = await stripe_api.admin("POST", "/v1/admin/apply", json=manifest)
    await pay(stripe_api, invoice, now + 60)

    assert applied.status_code == 200, applied.text
    assert await is_suspended(stripe_api, tenant) is True
    assert (await billing_row(stripe_api, tenant)).suspended_by_admin is True
