"""Server-rendered pages: signup, sign-in and the tenant console.

Every form works without JavaScript; the scripts only add the name check as
the user types and the live branding preview. The session cookie contains an
access token. Each form contains a CSRF token derived from that cookie (or,
before sign-in, a random one that must match a cookie), so another site cannot
submit forms with a signed-in browser.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from sqlalchemy import select

from livery.models.errors import format_validation_error

from ..context import AppContext
from ..dependencies import SESSION_COOKIE, Caller, Context, Session, authorize, utcnow
from ..domains import list_domains, remove_domain, request_domain, verify_domain
from ..errors import ApiError, Forbidden, NotFound
from ..permissions import PERMISSIONS, Permission, Role
from ..schemas import SignupRequest
from ..security import (
    constant_time_equal,
    csrf_token,
    issue_token,
    read_token,
    token_digest,
)
from ..signup import sign_up
from ..tables import Account, EmailVerificationToken, Membership
from ..tenant_access import issue_login_link, load_tenant, tenant_details, update_branding
from .accounts import client_address

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))
PRE_SESSION_COOKIE = "livery_form"
SESSION_SECONDS = 12 * 3600
# Scripts only from this app, no framing (clickjacking), no MIME sniffing. Inline style
# attributes stay allowed for the branding preview, whose values are validated colours.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' https: data:; "
        "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

router = APIRouter(include_in_schema=False)


def _secret(context: AppContext) -> str:
    return context.settings.jwt_secret.get_secret_value()


def _page_caller(request: Request, context: AppContext) -> Caller | None:
    token = request.cookies.get(SESSION_COOKIE)
    claims = read_token(_secret(context), token, "access") if token else None
    if claims is None:
        return None
    return Caller(kind="account", account_id=claims.account_id, email=claims.email)


def _form_token(request: Request, context: AppContext) -> tuple[str, bool]:
    """Return the CSRF token for forms on this page and whether a pre-session cookie must be set."""
    session_token = request.cookies.get(SESSION_COOKIE)
    if session_token and read_token(_secret(context), session_token, "access"):
        return csrf_token(_secret(context), session_token), False
    existing = request.cookies.get(PRE_SESSION_COOKIE)
    if existing:
        return existing, False
    return secrets.token_urlsafe(24), True


def _form_is_authentic(request: Request, context: AppContext, sent: Any) -> bool:
    if not isinstance(sent, str) or not sent:
        return False
    session_token = request.cookies.get(SESSION_COOKIE)
    if session_token and constant_time_equal(csrf_token(_secret(context), session_token), sent):
        return True
    pre_session = request.cookies.get(PRE_SESSION_COOKIE)
    return bool(pre_session) and constant_time_equal(pre_session, sent)


def _render(request: Request, context: AppContext, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    token, set_cookie = _form_token(request, context)
    response = TEMPLATES.TemplateResponse(
        request, template, {"csrf": token, "caller": _page_caller(request, context), **values}, status_code=status_code
    )
    if set_cookie:
        response.set_cookie(
            PRE_SESSION_COOKIE, token, httponly=True, samesite="lax", secure=context.settings.secure_cookies
        )
    response.headers.update(PAGE_HEADERS)
    return response


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _start_session(context: AppContext, response: Response, account: Account) -> None:
    token = issue_token(_secret(context), account.id, account.email, "access", SESSION_SECONDS, account.token_version)
    response.set_cookie(
        SESSION_COOKIE, token, max_age=SESSION_SECONDS, httponly=True, samesite="lax",
        secure=context.settings.secure_cookies,
    )


async def _signup_plans(context: AppContext) -> list[Any]:
    plans = await context.store.list_plans()
    return [plan for plan in plans if context.billing.enabled or plan.spec.billing.stripe_price_id is None]


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, context: Context) -> Response:
    return _redirect("/console" if _page_caller(request, context) else "/signup")


@router.get("/signup", response_class=HTMLResponse)
async def signup_page(request: Request, context: Context) -> Response:
    return _render(request, context, "signup.html", plans=await _signup_plans(context), values={}, errors={})


@router.post("/signup", response_class=HTMLResponse)
async def signup_submit(request: Request, context: Context, session: Session) -> Response:
    form = await request.form()
    values = {key: str(form.get(key, "")) for key in ("tenant", "displayName", "email", "plan")}
    plans = await _signup_plans(context)
    if not _form_is_authentic(request, context, form.get("csrf")):
        return _render(request, context, "signup.html", 400, plans=plans, values=values,
                       errors={"form": "The form expired; submit it again."})
    try:
        body = SignupRequest.model_validate({**values, "password": str(form.get("password", ""))})
    except ValidationError as exc:
        errors = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in format_validation_error(exc)}
        return _render(request, context, "signup.html", 422, plans=plans, values=values, errors=errors)
    try:
        result = await sign_up(context, session, body)
    except ApiError as exc:
        return _render(request, context, "signup.html", exc.status_code, plans=plans, values=values,
                       errors={exc.field or "form": exc.message})
    context.metrics.signups.labels(result.signup.plan, "created" if result.created else "repeated").inc()
    response = _redirect(result.signup.checkout_url if result.signup.state != "complete" and result.signup.checkout_url
                         else f"/console/{result.signup.tenant}")
    _start_session(context, response, result.account)
    return response


@router.get("/signin", response_class=HTMLResponse)
async def signin_page(request: Request, context: Context) -> Response:
    return _render(request, context, "signin.html", values={}, errors={})


@router.post("/signin", response_class=HTMLResponse)
async def signin_submit(request: Request, context: Context, session: Session) -> Response:
    form = await request.form()
    email = str(form.get("email", "")).strip().lower()
    values = {"email": email}
    if not _form_is_authentic(request, context, form.get("csrf")):
        return _render(request, context, "signin.html", 400, values=values, errors={"form": "The form expired; submit it again."})
    keys = (f"account:{email}", f"address:{client_address(request)}")
    wait = await context.limiter.retry_after(*keys)
    if wait is not None:
        return _render(request, context, "signin.html", 429, values=values,
                       errors={"form": f"Too many failed sign-ins. Try again in {wait} seconds."})
    account = await session.scalar(select(Account).where(Account.email == email))
    if not await context.passwords.verify(account.password_hash if account else None, str(form.get("password", ""))):
        await context.limiter.record_failure(*keys)
        return _render(request, context, "signin.html", 401, values=values, errors={"form": "Email or password is wrong."})
    await context.limiter.record_success(keys[0])
    response = _redirect("/console")
    _start_session(context, response, account)
    return response


@router.post("/signout")
async def signout(request: Request, context: Context) -> Response:
    form = await request.form()
    response = _redirect("/signin")
    if _form_is_authentic(request, context, form.get("csrf")):
        response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/console", response_class=HTMLResponse)
async def console_index(request: Request, context: Context, session: Session) -> Response:
    caller = _page_caller(request, context)
    if caller is None:
        return _redirect("/signin")
    memberships = (await session.scalars(select(Membership).where(Membership.account_id == caller.account_id))).all()
    if len(memberships) == 1:
        return _redirect(f"/console/{memberships[0].tenant}")
    return _render(request, context, "console_index.html", memberships=memberships)


async def _console(request: Request, context: AppContext, session, name: str, notice: str | None = None,
                   errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    caller = _page_caller(request, context)
    if caller is None:
        return _redirect(f"/signin?next=/console/{quote(name)}")
    try:
        role = await authorize(session, caller, name, Permission.VIEW)
        tenant = await load_tenant(context, name)
    except NotFound:
        return _render(request, context, "message.html", 404, title="Not found", message=f"No tenant {name!r} for this account.")
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
    return _render(
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
    caller = _page_caller(request, context)
    if caller is None:
        return None, _redirect("/signin")
    if not _form_is_authentic(request, context, form.get("csrf")):
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
    return _redirect(f"/console/{name}?saved=branding#branding")


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
                message = format_validation_error(exc)[0].split(":", 1)[1].strip()
                return await _console(request, context, session, name, errors={"domain": f"Domain {message}"}, status_code=422)
            await request_domain(context, session, name, domain)
    except ApiError as exc:
        return await _console(request, context, session, name, errors={"domain": exc.message}, status_code=exc.status_code)
    return _redirect(f"/console/{name}?saved=domain#domains")


@router.post("/console/{name}/open")
async def console_open_app(request: Request, name: str, context: Context, session: Session) -> Response:
    form, early = await _console_action(request, context, session, name, Permission.OPEN_APP)
    if early is not None:
        return early
    try:
        url, _ = await issue_login_link(context, await load_tenant(context, name))
    except ApiError as exc:
        return await _console(request, context, session, name, errors={"form": exc.message}, status_code=exc.status_code)
    return _redirect(url)


@router.post("/console/{name}/billing", response_class=HTMLResponse)
async def console_billing(request: Request, name: str, context: Context, session: Session) -> Response:
    from .tenants import checkout, portal
    from ..schemas import PlanChangeRequest

    form, early = await _console_action(request, context, session, name, Permission.BILLING)
    if early is not None:
        return early
    caller = _page_caller(request, context)
    try:
        if form.get("action") == "portal":
            result = await portal(name, caller, context, session)
        else:
            result = await checkout(name, PlanChangeRequest(plan=str(form.get("plan", ""))), caller, context, session)
    except (ApiError, ValidationError) as exc:
        message = exc.message if isinstance(exc, ApiError) else "choose a plan"
        return await _console(request, context, session, name, errors={"billing": message}, status_code=422)
    return _redirect(result.url)


@router.post("/console/{name}/members", response_class=HTMLResponse)
async def console_invite(request: Request, name: str, context: Context, session: Session) -> Response:
    from .team import invite_member
    from ..schemas import InvitationRequest

    form, early = await _console_action(request, context, session, name, Permission.MANAGE_MEMBERS)
    if early is not None:
        return early
    try:
        body = InvitationRequest(email=str(form.get("email", "")).strip(), role=str(form.get("role", "member")))
        await invite_member(name, body, _page_caller(request, context), context, session)
    except ValidationError as exc:
        message = format_validation_error(exc)[0]
        return await _console(request, context, session, name, errors={"members": message}, status_code=422)
    except ApiError as exc:
        return await _console(request, context, session, name, errors={"members": exc.message}, status_code=exc.status_code)
    return _redirect(f"/console/{name}?saved=invited#team")


@router.get("/verify-email", response_class=HTMLResponse)
async def verify_email_page(request: Request, context: Context, session: Session) -> Response:
    token = request.query_params.get("token", "")
    row = await session.get(EmailVerificationToken, token_digest(token), with_for_update=True) if token else None
    if row is None or row.used_at is not None or row.expires_at < utcnow():
        return _render(request, context, "message.html", 400, title="Link expired",
                       message="This verification link is invalid, used or expired.")
    row.used_at = utcnow()
    account = await session.get(Account, row.account_id)
    if account is not None and account.email_verified_at is None:
        account.email_verified_at = utcnow()
    await session.commit()
    return _render(request, context, "message.html", title="Email confirmed", message="Your email address is confirmed.")


@router.get("/invitations/accept", response_class=HTMLResponse)
async def invitation_page(request: Request, context: Context) -> Response:
    return _render(request, context, "invitation.html", token=request.query_params.get("token", ""), errors={})


@router.post("/invitations/accept", response_class=HTMLResponse)
async def invitation_submit(request: Request, context: Context, session: Session) -> Response:
    from ..schemas import AcceptInvitationRequest
    from .team import accept_invitation

    form = await request.form()
    token = str(form.get("token", ""))
    if not _form_is_authentic(request, context, form.get("csrf")):
        return _render(request, context, "invitation.html", 400, token=token, errors={"form": "The form expired; submit it again."})
    try:
        body = AcceptInvitationRequest(token=token, password=str(form.get("password", "")))
        member = await accept_invitation(body, context, session)
    except ValidationError as exc:
        return _render(request, context, "invitation.html", 422, token=token, errors={"password": format_validation_error(exc)[0]})
    except ApiError as exc:
        return _render(request, context, "invitation.html", exc.status_code, token=token, errors={exc.field or "form": exc.message})
    account = await session.scalar(select(Account).where(Account.email == member.email))
    response = _redirect("/console")
    _start_session(context, response, account)
    return response
