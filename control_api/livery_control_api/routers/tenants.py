"""A customer's tenant: details, branding, logo, domains, login link, billing."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile as StarletteUploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from livery.models.tenant import Branding

from ..audit import record_audit
from ..billing.open_checkout import has_open_checkout, lock_billing_row, remember_checkout
from ..billing.provider import BillingError, BillingNotConfigured
from ..dependencies import Context, CurrentCaller, DomainName, Session, TenantName, authorize, utcnow
from ..domains import list_domains, remove_domain, request_domain, verify_domain
from ..errors import Conflict, InvalidInput, PaymentRequired, Unavailable
from ..logos import MAX_LOGO_BYTES, store_logo
from ..permissions import Permission
from ..quota import latest_usage, limits_for, usage_excess
from ..schemas import DomainRequest, DomainView, LoginLinkResponse, PlanChangeRequest, TenantView, UrlResponse
from ..security import token_digest
from ..tables import TenantBilling
from ..tenant_access import issue_login_link, load_plan, load_tenant, tenant_details, update_branding

router = APIRouter(prefix="/v1", tags=["tenants"])


@router.get("/plans")
async def list_plans(context: Context) -> list[dict[str, Any]]:
    """Return every plan with its limits, features and price."""
    return [
        {"name": plan.name, **plan.spec.to_json()} for plan in await context.store.list_plans()
    ]


@router.get("/tenants/{name}", response_model=TenantView)
async def get_tenant(name: TenantName, caller: CurrentCaller, context: Context, session: Session) -> TenantView:
    """Return the tenant's spec and status as the caller may see them."""
    role = await authorize(session, caller, name, Permission.VIEW)
    return await tenant_details(context, session, await load_tenant(context, name), role)


@router.patch("/tenants/{name}/branding", response_model=TenantView)
async def patch_branding(
    name: TenantName,
    caller: CurrentCaller,
    context: Context,
    session: Session,
    changes: Annotated[dict[str, Any], Body(description="Branding fields to set (camelCase); null removes one.")],
) -> TenantView:
    """Change the tenant's branding; each field is checked with the rules of the Tenant resource."""
    role = await authorize(session, caller, name, Permission.EDIT_BRANDING)
    unknown = sorted(set(changes) - {field.alias or key for key, field in Branding.model_fields.items()})
    if unknown:
        raise InvalidInput(f"branding.{unknown[0]}: is not a known field", field=f"branding.{unknown[0]}")
    tenant = await update_branding(context, name, changes)
    return await tenant_details(context, session, tenant, role)


_LOGO_FORM = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary", "description": "PNG, JPEG or WebP, at most 512 KiB."}},
        }}},
    }
}


@router.post("/tenants/{name}/branding/logo", response_model=TenantView, openapi_extra=_LOGO_FORM)
async def upload_logo(name: TenantName, request: Request, caller: CurrentCaller, context: Context, session: Session) -> TenantView:
    """Store a logo in the tenant's file storage and point `spec.branding.logoUrl` at it.

    The form is parsed only after the caller is authorised, so an anonymous
    upload is rejected before its body is read.
    """
    role = await authorize(session, caller, name, Permission.EDIT_BRANDING)
    await load_tenant(context, name)
    try:
        form = await request.form(max_files=1, max_fields=1, max_part_size=MAX_LOGO_BYTES + 1024)
    except StarletteHTTPException as exc:
        raise InvalidInput(f"invalid logo upload: {exc.detail}", field="file") from None
    file = form.get("file")
    if not isinstance(file, StarletteUploadFile):
        raise InvalidInput("logo upload needs a multipart form with a file field named 'file'", field="file")
    logo_url = await store_logo(context, name, file)
    tenant = await update_branding(context, name, {"logoUrl": logo_url})
    return await tenant_details(context, session, tenant, role)


@router.get("/tenants/{name}/domains", response_model=list[DomainView])
async def get_domains(name: TenantName, caller: CurrentCaller, context: Context, session: Session) -> list[DomainView]:
    """Return verified domains and those waiting for their TXT record."""
    await authorize(session, caller, name, Permission.VIEW)
    return await list_domains(session, await load_tenant(context, name))


@router.post("/tenants/{name}/domains", response_model=DomainView, status_code=202)
async def add_domain(
    name: TenantName, body: DomainRequest, caller: CurrentCaller, context: Context, session: Session
) -> DomainView:
    """Reserve a custom domain and return the TXT record to create; verify it with `/verify`."""
    await authorize(session, caller, name, Permission.MANAGE_DOMAINS)
    return await request_domain(context, session, name, body.domain)


@router.post("/tenants/{name}/domains/{domain}/verify", response_model=DomainView)
async def verify(name: TenantName, domain: DomainName, caller: CurrentCaller, context: Context, session: Session) -> DomainView:
    """Check the domain's TXT record and, when it matches, serve the tenant at the domain."""
    await authorize(session, caller, name, Permission.MANAGE_DOMAINS)
    return await verify_domain(context, session, name, domain)


@router.delete("/tenants/{name}/domains/{domain}", status_code=204)
async def delete_domain(name: TenantName, domain: DomainName, caller: CurrentCaller, context: Context, session: Session) -> Response:
    """Stop serving the tenant at a custom domain, or drop a pending one."""
    await authorize(session, caller, name, Permission.MANAGE_DOMAINS)
    await remove_domain(context, session, name, domain)
    return Response(status_code=204)


@router.post("/tenants/{name}/login-link", response_model=LoginLinkResponse)
async def owner_login_link(name: TenantName, caller: CurrentCaller, context: Context, session: Session) -> LoginLinkResponse:
    """Return a one-time link that signs the owner in to the tenant's app."""
    await authorize(session, caller, name, Permission.OPEN_APP)
    requester = caller.email if caller.kind == "account" else None
    url, lifetime = await issue_login_link(context, await load_tenant(context, name), requester)
    return LoginLinkResponse(url=url, expires_in=lifetime)


@router.post("/tenants/{name}/billing/checkout", response_model=UrlResponse)
async def checkout(
    name: TenantName, body: PlanChangeRequest, caller: CurrentCaller, context: Context, session: Session
) -> UrlResponse:
    """Start a Stripe Checkout that moves the tenant to a paid plan; the plan changes when payment completes."""
    await authorize(session, caller, name, Permission.BILLING)
    tenant = await load_tenant(context, name)
    plan = await load_plan(context, body.plan)

    if plan.spec.billing.stripe_price_id is None:
        raise InvalidInput(f"plan {plan.name!r} is free; ask for it through the billing portal or an admin", field="plan")
    if tenant.spec.plan == plan.name:
        raise Conflict(f"tenant {name!r} is already on plan {plan.name!r}", field="plan")
    excess = usage_excess(await latest_usage(session, name), limits_for(plan, tenant))
    if excess:
        raise Conflict(
            f"plan {plan.name!r} is below current usage: " + "; ".join(item.describe() for item in excess),
            field="plan", code="over_quota",
        )

    # Locked until the commit, Stripe call included, so two concurrent requests cannot both open a Checkout.
    billing = await lock_billing_row(session, name)
    if billing.subscription_status in ("active", "trialing", "past_due"):
        # A second Checkout would start a second subscription and bill the customer twice.
        raise Conflict(
            f"tenant {name!r} already has a subscription; change its plan in the billing portal",
            field="plan", code="subscription_exists",
        )
    now = utcnow()
    if has_open_checkout(billing, now):
        if billing.checkout_plan == plan.name and billing.checkout_url:
            # The same request again, for example from a second browser tab, gets the open session.
            return UrlResponse(url=billing.checkout_url)
        raise Conflict(
            f"tenant {name!r} has an open Checkout for plan {billing.checkout_plan!r} until "
            f"{billing.checkout_expires_at.isoformat(timespec='seconds')}; complete that payment, "
            "or start a Checkout for another plan after it expires",
            field="plan", code="checkout_open",
        )
    base = context.settings.public_url.rstrip("/")
    try:
        session_info = await context.billing.create_checkout_session(
            tenant=name, plan=plan, email=tenant.spec.owner.email if tenant.spec.owner else "",
            customer_id=billing.customer_id,
            success_url=f"{base}/console/{name}?checkout=success", cancel_url=f"{base}/console/{name}",
            idempotency_key=f"upgrade-{name}-{plan.name}-{token_digest(tenant.metadata.resource_version or '')[:12]}",
        )
    except BillingNotConfigured as exc:
        raise PaymentRequired(str(exc), field="plan") from None
    except BillingError as exc:
        raise Unavailable(f"payment could not be started: {exc}") from None

    remember_checkout(billing, session_info, plan.name, now)
    record_audit(session, caller.actor, "billing.checkout_started", name, plan=plan.name, checkout_session=session_info.id)
    await session.commit()
    return UrlResponse(url=session_info.url)


@router.post("/tenants/{name}/billing/portal", response_model=UrlResponse)
async def portal(name: TenantName, caller: CurrentCaller, context: Context, session: Session) -> UrlResponse:
    """Return a Stripe Customer Portal URL for cards, invoices and cancellation."""
    await authorize(session, caller, name, Permission.BILLING)
    billing = await session.get(TenantBilling, name)
    if billing is None or billing.customer_id is None:
        raise Conflict(f"tenant {name!r} has no Stripe customer yet; subscribe to a paid plan first", code="no_customer")
    try:
        url = await context.billing.create_portal_session(
            customer_id=billing.customer_id, return_url=f"{context.settings.public_url.rstrip('/')}/console/{name}"
        )
    except BillingNotConfigured as exc:
        raise PaymentRequired(str(exc)) from None
    except BillingError as exc:
        raise Unavailable(f"billing portal could not be opened: {exc}") from None
    return UrlResponse(url=url)
