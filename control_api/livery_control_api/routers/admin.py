"""The platform admin API used by the `livery` command; every change is written to the audit log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from sqlalchemy import select

from livery.manifests import validate_data
from livery.models.plan import Plan
from livery.models.tenant import Tenant
from livery.store.base import CLI_FIELD_MANAGER, Invalid, NotFound as StoreNotFound

from ..audit import record_audit
from ..dependencies import AdminCaller, Context, Session, TenantName
from ..domains import check_domains_available
from ..errors import Conflict, InvalidInput
from ..quota import latest_usage, limits_for, usage_excess, write_plan
from ..schemas import AdminApplyResponse, AdminTenantView, EventView, LoginLinkResponse, PlanChangeRequest
from ..billing.retire import retire_billing
from ..billing.suspension_reasons import record_admin_suspension
from ..tables import AuditEntry, Signup
from ..team_sync import sync_tenant_team
from ..tenant_access import apply_spec, issue_login_link, load_plan, load_tenant
from .team import remove_tenant

router = APIRouter(prefix="/v1/admin", tags=["admin"])


def admin_view(tenant: Tenant, usage: dict[str, int], full: bool = False) -> AdminTenantView:
    status = tenant.status
    return AdminTenantView(
        name=tenant.name,
        display_name=tenant.spec.display_name,
        plan=tenant.spec.plan,
        owner=tenant.spec.owner.email if tenant.spec.owner else None,
        suspended=tenant.spec.suspended,
        phase=status.phase if status else None,
        url=status.url if status else None,
        usage=usage,
        spec=tenant.spec.to_json() if full else None,
        status=status.to_json() if full and status else None,
    )


@router.post("/apply", response_model=AdminApplyResponse)
async def apply_manifest(
    caller: AdminCaller, context: Context, session: Session,
    manifest: Annotated[dict[str, Any], Body(description="One Tenant or Plan manifest as JSON.")],
) -> AdminApplyResponse:
    """Create or update one Tenant or Plan, as `kubectl apply` does."""
    resource, errors = validate_data(manifest)
    if resource is None:
        raise InvalidInput("\n".join(errors), field=errors[0].split(":", 1)[0] if errors else None)
    if isinstance(resource, Plan):
        try:
            before = await context.store.get_plan(resource.name)
        except StoreNotFound:
            before = None
        result = await context.store.apply_plan(resource, CLI_FIELD_MANAGER)
        action = _action(before.spec.to_json() if before else None, result.spec.to_json())
        record_audit(session, caller.actor, f"plan.{action}", None, plan=resource.name)
        await session.commit()
        return AdminApplyResponse(action=action, resource=result.to_json())

    try:
        before = await context.store.get_tenant(resource.name)
    except StoreNotFound:
        before = None
    if before is None:
        pending = await session.get(Signup, resource.name)
        if pending is not None and pending.state == "pending_payment":
            # The payment would otherwise complete into this admin's Tenant, or into nothing.
            raise Conflict(
                f"tenant name {resource.name!r} is held by a paid signup waiting for payment since "
                f"{pending.created_at:%Y-%m-%d %H:%M} UTC; it is released when its Stripe Checkout expires "
                "(24 hours by default). Wait, or pick another name",
                field="metadata.name", code="name_pending_payment",
            )
    spec = manifest.get("spec") or {}
    await check_domains_available(context, session, resource.name, list(resource.spec.domains or []))
    try:
        result = await context.store.apply_tenant(resource.name, spec, CLI_FIELD_MANAGER)
    except Invalid as exc:
        raise InvalidInput("\n".join(exc.errors), field=exc.errors[0].split(":", 1)[0] if exc.errors else None) from None
    action = _action(before.spec.to_json() if before else None, result.spec.to_json())
    if before is None:
        # Billing state left by a deleted tenant of this name (deleted with kubectl, say) is not the new tenant's.
        await retire_billing(session, resource.name, caller.actor)
    requested_suspension = spec.get("suspended")
    if isinstance(requested_suspension, bool) and result.spec.suspended == requested_suspension:
        # A manifest that sets `suspended` counts as the admin's suspend or resume.
        await record_admin_suspension(session, resource.name, requested_suspension)
    await sync_tenant_team(session, result, created=before is None)
    record_audit(session, caller.actor, f"tenant.{action}", resource.name)
    await session.commit()
    return AdminApplyResponse(action=action, resource=result.to_json())


def _action(before: dict | None, after: dict) -> str:
    if before is None:
        return "created"
    return "unchanged" if before == after else "configured"


@router.get("/tenants", response_model=list[AdminTenantView])
async def list_tenants(caller: AdminCaller, context: Context, session: Session) -> list[AdminTenantView]:
    """Return every tenant with its phase and latest usage."""
    return [admin_view(tenant, await latest_usage(session, tenant.name)) for tenant in await context.store.list_tenants()]


@router.get("/tenants/{name}", response_model=AdminTenantView)
async def get_tenant(name: TenantName, caller: AdminCaller, context: Context, session: Session) -> AdminTenantView:
    """Return one tenant with its whole spec and status."""
    tenant = await load_tenant(context, name)
    return admin_view(tenant, await latest_usage(session, name), full=True)


@router.get("/tenants/{name}/events", response_model=list[EventView])
async def tenant_events(name: TenantName, caller: AdminCaller, context: Context) -> list[EventView]:
    """Return the events the reconciler recorded on the tenant, oldest first."""
    await load_tenant(context, name)
    return [EventView(**event.__dict__) for event in await context.store.tenant_events(name)]


@router.delete("/tenants/{name}", status_code=202)
async def delete_tenant(name: TenantName, caller: AdminCaller, context: Context, session: Session) -> dict:
    """Cancel the tenant's subscription, then mark the tenant for deletion; spec.deletionPolicy decides about its data."""
    await remove_tenant(context, session, name, caller.actor)
    return {"tenant": name, "deleting": True}


async def _set_suspended(context: Context, session: Session, caller: AdminCaller, name: str, suspended: bool) -> AdminTenantView:
    await load_tenant(context, name)
    tenant = await apply_spec(context, name, {"suspended": suspended})
    await record_admin_suspension(session, name, suspended)
    record_audit(session, caller.actor, "tenant.suspended" if suspended else "tenant.resumed", name)
    await session.commit()
    return admin_view(tenant, await latest_usage(session, name))


@router.post("/tenants/{name}/suspend", response_model=AdminTenantView)
async def suspend(name: TenantName, caller: AdminCaller, context: Context, session: Session) -> AdminTenantView:
    """Stop the tenant's app and serve a suspension page; data is kept."""
    return await _set_suspended(context, session, caller, name, True)


@router.post("/tenants/{name}/resume", response_model=AdminTenantView)
async def resume(name: TenantName, caller: AdminCaller, context: Context, session: Session) -> AdminTenantView:
    """Start a suspended tenant's app again."""
    return await _set_suspended(context, session, caller, name, False)


@router.post("/tenants/{name}/plan", response_model=AdminTenantView)
async def change_plan(
    name: TenantName, body: PlanChangeRequest, caller: AdminCaller, context: Context, session: Session
) -> AdminTenantView:
    """Move the tenant to another plan; a plan below current usage is rejected with the excess."""
    tenant = await load_tenant(context, name)
    plan = await load_plan(context, body.plan)
    excess = usage_excess(await latest_usage(session, name), limits_for(plan, tenant))
    if excess:
        raise Conflict(
            f"plan {plan.name!r} is below current usage: " + "; ".join(item.describe() for item in excess),
            field="plan", code="over_quota",
        )
    updated = await write_plan(context.store, name, plan)
    record_audit(session, caller.actor, "tenant.plan_changed", name, previous=tenant.spec.plan, plan=plan.name)
    await session.commit()
    return admin_view(updated, await latest_usage(session, name))


@router.post("/tenants/{name}/login-link", response_model=LoginLinkResponse)
async def admin_login_link(name: TenantName, caller: AdminCaller, context: Context, session: Session) -> LoginLinkResponse:
    """Return a one-time link that signs in as the tenant's owner; the audit log records who asked."""
    url, lifetime = await issue_login_link(context, await load_tenant(context, name))
    record_audit(session, caller.actor, "tenant.login_link", name)
    await session.commit()
    return LoginLinkResponse(url=url, expires_in=lifetime)


@router.get("/plans")
async def list_plans(caller: AdminCaller, context: Context) -> list[dict[str, Any]]:
    """Return every plan as a manifest."""
    return [plan.to_json() for plan in await context.store.list_plans()]


@router.get("/audit")
async def audit_log(
    caller: AdminCaller, session: Session,
    tenant: Annotated[str | None, Query(max_length=63)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Return the newest audit entries, optionally of one tenant."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if tenant is not None:
        query = query.where(AuditEntry.tenant == tenant)
    entries = (await session.scalars(query)).all()
    return [
        {"at": entry.at.isoformat(), "actor": entry.actor, "action": entry.action, "tenant": entry.tenant, "detail": entry.detail}
        for entry in entries
    ]
