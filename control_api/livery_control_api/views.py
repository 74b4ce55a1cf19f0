"""Turn Tenant resources and billing rows into API response bodies."""

from __future__ import annotations

from livery.models.tenant import Branding, Condition, Tenant

from .schemas import BillingView, TenantStatusView, TenantView
from .tables import TenantBilling


# Condition reasons whose messages speak about the tenant's own spec, for its owner to act on.
# Other messages can carry database hosts, roles or server errors, which are for platform admins.
CUSTOMER_REASONS = frozenset({
    "Provisioned", "ReplicasAvailable", "ReplicasUnavailable", "Routed", "Ready", "Suspended", "NotChecked",
    "PlanNotFound", "IsolationChangeRejected", "DomainNotAllowed", "HostConflict", "CustomDomainsNotInPlan",
})


def status_view(tenant: Tenant) -> TenantStatusView | None:
    """Return the status for the tenant's own team, without the infrastructure details meant for admins."""
    status = tenant.status
    if status is None:
        return None
    return TenantStatusView(
        phase=status.phase,
        url=status.url,
        hosts=status.hosts or [],
        conditions=[_customer_condition(condition) for condition in status.conditions or []],
        limits=status.limits,
    )


def _customer_condition(condition: Condition) -> Condition:
    if condition.reason in CUSTOMER_REASONS:
        return condition
    message = (
        f"{condition.type} is not met yet ({condition.reason}). The platform retries on its own; "
        "if this lasts, contact the platform's support."
    )
    return condition.model_copy(update={"message": message})


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
