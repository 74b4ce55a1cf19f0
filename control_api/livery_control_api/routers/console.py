"""The tenant console: status, branding with live preview, domains, team, plan and billing.

Every form works without JavaScript; the script adds the live branding
preview and updates the status while provisioning runs.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import select


from ..context import AppContext
from ..dependencies import Context, Session, authorize
from ..domains import list_domains, remove_domain, request_domain, verify_domain
from ..errors import ApiError, Forbidden, NotFound, validation_error_lines
from ..permissions import PERMISSIONS, Permission, Role
from ..tables import Account, Membership
from ..tenant_access import issue_login_link, load_tenant, tenant_details, update_branding
from .rendering import current_page_caller, form_is_authentic, page_caller, redirect, render_page

router = APIRouter(include_in_schema=False)


@router.get("/console", response_class=HTMLResponse)
async def console_index(request: Request, context: Context, session: Session) -> Response:
    caller = await current_page_caller(request, context, session)
    if caller is None:
        return redirect("/signin")
    memberships = (await session.scalars(select(Membership).where(Membership.account_id == caller.account_id))).all()
    if len(memberships) == 1:
        return redirect(f"/console/{memberships[0].tenant}")
    return render_page(request, context, "console_index.html", memberships=memberships)


async def _console(request: Request, context: AppContext, session, name: str, notice: str | None = None,
                   errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    caller = await current_page_caller(request, context, session)
    if caller is None:
        return redirect(f"/signin?next=/console/{quote(name)}")
    try:
        role = await authorize(session, caller, name, Permission.VIEW)
        tenant = await load_tenant(context, name)
    except NotFound:
        return render_page(request, context, "message.html", 404, title="Not found", message=f"No tenant {name!r} for this account.")
    details = await tenant_details(context, session, tenant, role)
    plan = None
    try:
        plan = await context.store.get_plan(tenant.spec.plan)
    except Exception:  # a deleted Plan only hides plan details on the page
        plan = None
    members = (await session.execute(
        select(Account.email, Membership.role).join(Membership, Membership.account_id == Account.id)
        .where(Membership.tenant == name).order_by(Account.email)
    )).all()
    return render_page(
        request, context, "console.html", status_code,
        tenant=details, plan=plan, plans=await context.store.list_plans(), role=role,
        can=lambda permission: Permission(permission) in PERMISSIONS[Role(role)],
        domains=await list_domains(session, tenant), members=members, notice=notice, errors=errors or {},
        billing_enabled=context.billing.enabled, base_domain=context.settings.base_domain,
    )


@router.get("/console/{name}", response_class=HTMLResponse)
async def console(request: Request, name: str, context: Context, session: Session) -> Response:
    notices = {"branding": "Branding saved.", "domain": "Domain updated.", "invited": "Invitation sent.",
               "success": "Payment received. Your plan changes in a moment."}
    key = request.query_params.get("saved") or request.query_params.get("checkout")
    return await _console(request, context, session, name, notice=notices.get(key or ""))


async def _console_action(request: Request, context: AppContext, session, name: str, permission: Permission):
    """Check the form's CSRF token and the caller's permission; return the form, or a response to send instead."""
    form = await request.form()
    caller = await current_page_caller(request, context, session)
    if caller is None:
        return None, redirect("/signin")
    if not form_is_authentic(request, context, form.get("csrf")):
        return None, await _console(request, context, session, name, errors={"form": "The form expired; submit it again."}, status_code=400)
    try:
        await authorize(session, caller, name, permission)
    except (NotFound, Forbidden) as exc:
        return None, await _console(request, context, session, name, errors={"form": exc.message}, status_code=exc.status_code)
    return form, None


@router.post("/console/{name}/branding", response_class=HTMLResponse)
async def console_branding(request: Request, name: str, context: Context, session: Session) -> Response:
    form, early = await _console_action(request, context, session, name, Permission.EDIT_BRANDING)
    if early is not None:
        return early
    changes = {}
    for key in ("productName", "primaryColor", "accentColor", "logoUrl", "customCss"):
        if key in form:
            value = str(form.get(key, "")).strip()
            changes[key] = value or None
    try:
        await update_branding(context, name, changes)
    except ApiError as exc:
        return await _console(request, context, session, name, errors={exc.field or "form": exc.message}, status_code=exc.status_code)
    return redirect(f"/console/{name}?saved=branding#branding")


@router.post("/console/{name}/domains", response_class=HTMLResponse)
async def console_domains(request: Request, name: str, context: Context, session: Session) -> Response:
    form, early = await _console_action(request, context, session, name, Permission.MANAGE_DOMAINS)
    if early is not None:
        return early
    action = str(form.get("action", "add"))
    domain = str(form.get("domain", "")).strip().lower()
    try:
        if action == "verify":
            await verify_domain(context, session, name, domain)
        elif action == "remove":
            await remove_domain(context, session, name, domain)
        else:
            from ..schemas import DomainRequest

            try:
                domain = DomainRequest(domain=domain).domain
            except ValidationError as exc:
                message = validation_error_lines(exc)[0].split(":", 1)[1].strip()
                return await _console(request, context, session, name, errors={"domain": f"Domain {message}"}, status_code=422)
            await request_domain(context, session, name, domain)
    except ApiError as exc:
        return await _console(request, context, session, name, errors={"domain": exc.message}, status_code=exc.status_code)
    return redirect(f"/console/{name}?saved=domain#domains")


@router.post("/console/{name}/open")
async def console_open_app(request: Request, name: str, context: Context, session: Session) -> Response:
    form, early = await _console_action(request, context, session, name, Permission.OPEN_APP)
    if early is not None:
        return early
    try:
        caller = page_caller(request, context)
        url, _ = await issue_login_link(context, await load_tenant(context, name), caller.email if caller else "")
    except ApiError as exc:
        return await _console(request, context, session, name, errors={"form": exc.message}, status_code=exc.status_code)
    return redirect(url)


@router.post("/console/{name}/billing", response_class=HTMLResponse)
async def console_billing(request: Request, name: str, context: Context, session: Session) -> Response:
    from .tenants import checkout, portal
    from ..schemas import PlanChangeRequest

    form, early = await _console_action(request, context, session, name, Permission.BILLING)
    if early is not None:
        return early
    caller = page_caller(request, context)
    try:
        if form.get("action") == "portal":
            result = await portal(name, caller, context, session)
        else:
            result = await checkout(name, PlanChangeRequest(plan=str(form.get("plan", ""))), caller, context, session)
    except (ApiError, ValidationError) as exc:
        message = exc.message if isinstance(exc, ApiError) else "choose a plan"
        return await _console(request, context, session, name, errors={"billing": message}, status_code=422)
    return redirect(result.url)


@router.post("/console/{name}/members", response_class=HTMLResponse)
async def console_invite(request: Request, name: str, context: Context, session: Session) -> Response:
    from .team import invite_member
    from ..schemas import InvitationRequest

    form, early = await _console_action(request, context, session, name, Permission.MANAGE_MEMBERS)
    if early is not None:
        return early
    try:
        body = InvitationRequest(email=str(form.get("email", "")).strip(), role=str(form.get("role", "member")))
        await invite_member(name, body, page_caller(request, context), context, session)
    except ValidationError as exc:
        message = validation_error_lines(exc)[0]
        return await _console(request, context, session, name, errors={"members": message}, status_code=422)
    except ApiError as exc:
        return await _console(request, context, session, name, errors={"members": exc.message}, status_code=exc.status_code)
    return redirect(f"/console/{name}?saved=invited#team")


