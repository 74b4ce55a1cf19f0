"""Turn Tenant resources and billing rows into API response bodies."""

from __future__ import annotations

from livery.models.tenant import Branding, Tenant

from .schemas import BillingView, TenantStatusView, TenantView
from .tables import TenantBilling


def status_view(tenant: Tenant) -> TenantStatusView | None:
    status = tenant.status
    if status is None:
        return None
    return TenantStatusView(
        phase=status.phase,
        url=status.url,
        hosts=status.hosts or [],
        conditions=status.conditions or [],
        limits=status.limits,
    )


def billing_view(provider: str, billing: TenantBilling | None) -> BillingView:
    if billing is None:
        return BillingView(provider=provider)
    return BillingView(
        provider=provider,
        subscription_status=billing.subscription_status,
        grace_until=billing.grace_until,
        suspended_by_billing=billing.suspended_by_billing,
        over_quota=billing.over_quota,
    )


def tenant_view(tenant: Tenant, role: str | None = None, billing: BillingView | None = None) -> TenantView:
    spec = tenant.spec
    return TenantView(
        name=tenant.name,
        display_name=spec.display_name,
        plan=spec.plan,
        owner=spec.owner.email if spec.owner else None,
        suspended=spec.suspended,
        domains=list(spec.domains or []),
        branding=spec.branding or Branding(),
        status=status_view(tenant),
        role=role,
        billing=billing,
    )
