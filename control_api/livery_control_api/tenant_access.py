"""Tenant operations shared by the JSON API and the console pages."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from livery.drivers.base import SECRET_LOGIN_KEY
from livery.models.errors import format_validation_error
from livery.models.plan import Plan
from livery.models.tenant import Branding, Tenant
from livery.store.base import CONTROL_API_FIELD_MANAGER, Invalid, NotFound as StoreNotFound

from .context import AppContext
from .css_check import custom_css_problems
from .errors import Conflict, Forbidden, InvalidInput, NotFound
from .security import LOGIN_LINK_SECONDS, issue_login_link_token
from .tables import TenantBilling
from .views import billing_view, tenant_view

logger = logging.getLogger("livery.control_api.tenants")


async def load_tenant(context: AppContext, name: str) -> Tenant:
    try:
        return await context.store.get_tenant(name)
    except StoreNotFound:
        raise NotFound(f"tenant {name!r} not found", field="name") from None


async def load_plan(context: AppContext, name: str, field: str = "plan") -> Plan:
    try:
        return await context.store.get_plan(name)
    except StoreNotFound:
        raise InvalidInput(f"plan {name!r} does not exist", field=field) from None


async def tenant_details(context: AppContext, session: AsyncSession, tenant: Tenant, role: str | None):
    billing = await session.get(TenantBilling, tenant.name)
    return tenant_view(tenant, role, billing_view(context.billing.name, billing))


async def apply_spec(context: AppContext, name: str, patch: dict[str, Any]) -> Tenant:
    """Write `patch` into the Tenant's spec as the control API; a rule violation becomes a 422 naming the field."""
    try:
        return await context.store.apply_tenant(name, patch, CONTROL_API_FIELD_MANAGER)
    except Invalid as exc:
        first = exc.errors[0].split(":", 1)[0] if exc.errors else None
        raise InvalidInput("; ".join(exc.errors), field=first) from None
    except StoreNotFound:
        raise NotFound(f"tenant {name!r} not found", field="name") from None


async def update_branding(context: AppContext, name: str, changes: dict[str, Any]) -> Tenant:
    """Merge `changes` (camelCase Branding keys; null removes one) into `spec.branding`.

    The changes are validated with the same `Branding` model as the CRD, and
    custom CSS needs the plan's `customCss` feature.
    """
    tenant = await load_tenant(context, name)
    current = (tenant.spec.branding or Branding()).to_json()
    merged = {key: value for key, value in {**current, **changes}.items() if value is not None}
    try:
        Branding.model_validate(merged)
    except ValidationError as exc:
        lines = format_validation_error(exc, ("branding",))
        raise InvalidInput("; ".join(lines), field=lines[0].split(":", 1)[0]) from None
    if changes.get("customCss"):
        problems = custom_css_problems(changes["customCss"])
        if problems:
            raise InvalidInput(
                "branding.customCss: must not contain " + ", ".join(problems) + "; remove them and save again",
                field="branding.customCss",
            )
        plan = await load_plan(context, tenant.spec.plan)
        if not plan.spec.features.custom_css:
            raise Forbidden(
                f"plan {plan.name!r} does not include custom CSS; upgrade to a plan with customCss", field="branding.customCss",
                code="feature_unavailable",
            )
    return await apply_spec(context, name, {"branding": changes})


async def issue_login_link(context: AppContext, tenant: Tenant, requester_email: str | None = None) -> tuple[str, int]:
    """Return a one-time sign-in URL for the tenant's owner and its lifetime in seconds.

    The link signs in as the account in `spec.owner`, so an account asking for it
    (`requester_email`) must be that account; platform admins pass None.
    """
    if tenant.spec.owner is None:
        raise Conflict(f"tenant {tenant.name!r} has no spec.owner, so no login link can be issued; set spec.owner.email", field="owner")
    if requester_email is not None and requester_email.lower() != tenant.spec.owner.email.lower():
        raise Forbidden(
            f"the login link signs in as the owner in spec.owner, which is not {requester_email}; "
            "only that account or a platform admin can open the app this way"
        )
    url = tenant.status.url if tenant.status else None
    secret = await context.store.read_tenant_secret(tenant.name)
    if not url or not secret or not secret.get(SECRET_LOGIN_KEY):
        raise Conflict(
            f"tenant {tenant.name!r} is not provisioned yet; retry when its status shows a URL", code="not_ready"
        )
    token = issue_login_link_token(secret[SECRET_LOGIN_KEY], tenant.name, tenant.spec.owner.email)
    return f"{url.rstrip('/')}/auth/link?token={token}", LOGIN_LINK_SECONDS
