"""Server-rendered account pages: signup, sign-in, password reset, email verification and invitations.

Every form works without JavaScript; the scripts only add the name check as
the user types. Sessions and CSRF tokens are in `rendering`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import select


from ..context import AppContext
from ..dependencies import SESSION_COOKIE, Context, Session, utcnow
from ..errors import ApiError, TooManyRequests, validation_error_lines
from ..password_reset import (
    ACCEPTED_MESSAGE,
    RESET_TOKEN_MINUTES,
    confirm_password_reset,
    request_password_reset,
    send_reset_email,
)
from ..ratelimit import check_password_limited
from ..schemas import PasswordResetConfirm, PasswordResetRequest, SignupRequest
from ..security import token_digest
from ..signup import sign_up
from ..tables import Account, EmailVerificationToken
from .accounts import client_address, sign_in_keys
from .rendering import form_is_authentic, page_caller, redirect, render_page, start_session

router = APIRouter(include_in_schema=False)


async def _signup_plans(context: AppContext) -> list[Any]:
    plans = await context.store.list_plans()
    return [plan for plan in plans if context.billing.enabled or plan.spec.billing.stripe_price_id is None]

@router.get("/", response_class=HTMLResponse)
async def home(request: Request, context: Context) -> Response:
    return redirect("/console" if page_caller(request, context) else "/signup")


@router.get("/signup", response_class=HTMLResponse)
async def signup_page(request: Request, context: Context) -> Response:
    return render_page(request, context, "signup.html", plans=await _signup_plans(context), values={}, errors={})


@router.post("/signup", response_class=HTMLResponse)
async def signup_submit(request: Request, context: Context, session: Session) -> Response:
    form = await request.form()
    values = {key: str(form.get(key, "")) for key in ("tenant", "displayName", "email", "plan")}
    plans = await _signup_plans(context)
    if not form_is_authentic(request, context, form.get("csrf")):
        return render_page(request, context, "signup.html", 400, plans=plans, values=values,
                       errors={"form": "The form expired; submit it again."})
    try:
        body = SignupRequest.model_validate({**values, "password": str(form.get("password", ""))})
    except ValidationError as exc:
        errors = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in validation_error_lines(exc)}
        return render_page(request, context, "signup.html", 422, plans=plans, values=values, errors=errors)
    try:
        result = await sign_up(context, session, body, client_address=client_address(request))
    except ApiError as exc:
        return render_page(request, context, "signup.html", exc.status_code, plans=plans, values=values,
                       errors={exc.field or "form": exc.message})
    context.metrics.signups.labels(result.signup.plan, "created" if result.created else "repeated").inc()
    if not result.created:
        # A repeated signup is no sign-in: it must not become a way around the sign-in page.
        return redirect("/signin")
    response = redirect(result.signup.checkout_url if result.signup.state != "complete" and result.signup.checkout_url
                         else f"/console/{result.signup.tenant}")
    start_session(context, response, result.account)
    return response


@router.get("/signin", response_class=HTMLResponse)
async def signin_page(request: Request, context: Context) -> Response:
    return render_page(request, context, "signin.html", values={}, errors={})


@router.post("/signin", response_class=HTMLResponse)
async def signin_submit(request: Request, context: Context, session: Session) -> Response:
    form = await request.form()
    email = str(form.get("email", "")).strip().lower()
    values = {"email": email}
    if not form_is_authentic(request, context, form.get("csrf")):
        return render_page(request, context, "signin.html", 400, values=values, errors={"form": "The form expired; submit it again."})
    account = await session.scalar(select(Account).where(Account.email == email))
    try:
        correct = await check_password_limited(
            context, sign_in_keys(request, email), account.password_hash if account else None, str(form.get("password", ""))
        )
    except TooManyRequests as exc:
        wait = exc.headers["Retry-After"]
        return render_page(request, context, "signin.html", 429, values=values,
                       errors={"form": f"Too many failed sign-ins. Try again in {wait} seconds."})
    if not correct:
        return render_page(request, context, "signin.html", 401, values=values, errors={"form": "Email or password is wrong."})
    response = redirect("/console")
    start_session(context, response, account)
    return response


@router.post("/signout")
async def signout(request: Request, context: Context) -> Response:
    form = await request.form()
    response = redirect("/signin")
    if form_is_authentic(request, context, form.get("csrf")):
        response.delete_cookie(SESSION_COOKIE)
    return response

@router.get("/verify-email", response_class=HTMLResponse)
async def verify_email_page(request: Request, context: Context, session: Session) -> Response:
    token = request.query_params.get("token", "")
    row = await session.get(EmailVerificationToken, token_digest(token), with_for_update=True) if token else None
    if row is None or row.used_at is not None or row.expires_at < utcnow():
        return render_page(request, context, "message.html", 400, title="Link expired",
                       message="This verification link is invalid, used or expired.")
    row.used_at = utcnow()
    account = await session.get(Account, row.account_id)
    if account is not None and account.email_verified_at is None:
        account.email_verified_at = utcnow()
    await session.commit()
    return render_page(request, context, "message.html", title="Email confirmed", message="Your email address is confirmed.")


@router.get("/invitations/accept", response_class=HTMLResponse)
async def invitation_page(request: Request, context: Context) -> Response:
    return render_page(request, context, "invitation.html", token=request.query_params.get("token", ""), errors={})


@router.post("/invitations/accept", response_class=HTMLResponse)
async def invitation_submit(request: Request, context: Context, session: Session) -> Response:
    from ..schemas import AcceptInvitationRequest
    from .team import accept_invitation

    form = await request.form()
    token = str(form.get("token", ""))
    if not form_is_authentic(request, context, form.get("csrf")):
        return render_page(request, context, "invitation.html", 400, token=token, errors={"form": "The form expired; submit it again."})
    try:
        body = AcceptInvitationRequest(token=token, password=str(form.get("password", "")))
        member = await accept_invitation(body, context, session)
    except ValidationError as exc:
        return render_page(request, context, "invitation.html", 422, token=token, errors={"password": validation_error_lines(exc)[0]})
    except ApiError as exc:
        return render_page(request, context, "invitation.html", exc.status_code, token=token, errors={exc.field or "form": exc.message})
    account = await session.scalar(select(Account).where(Account.email == member.email))
    response = redirect("/console")
    start_session(context, response, account)
    return response



@router.get("/password-reset", response_class=HTMLResponse)
async def password_reset_page(request: Request, context: Context) -> Response:
    return render_page(request, context, "password_reset_request.html", values={}, errors={}, minutes=RESET_TOKEN_MINUTES)


@router.post("/password-reset", response_class=HTMLResponse)
async def password_reset_submit(
    request: Request, context: Context, session: Session, background: BackgroundTasks
) -> Response:
    form = await request.form()
    values = {"email": str(form.get("email", "")).strip()}
    page = {"values": values, "minutes": RESET_TOKEN_MINUTES}
    if not form_is_authentic(request, context, form.get("csrf")):
        return render_page(request, context, "password_reset_request.html", 400, **page,
                           errors={"form": "The form expired; submit it again."})
    try:
        body = PasswordResetRequest.model_validate(values)
    except ValidationError:
        return render_page(request, context, "password_reset_request.html", 422, **page,
                           errors={"email": "Enter a valid email address."})
    try:
        message = await request_password_reset(context, session, body.email, client_address(request))
    except TooManyRequests as exc:
        wait = exc.headers["Retry-After"]
        return render_page(request, context, "password_reset_request.html", 429, **page,
                           errors={"form": f"Too many reset requests. Try again in {wait} seconds."})
    if message is not None:
        background.add_task(send_reset_email, context, message)
    return render_page(request, context, "message.html", title="Check your email", message=ACCEPTED_MESSAGE)


@router.get("/password-reset/confirm", response_class=HTMLResponse)
async def password_reset_confirm_page(request: Request, context: Context) -> Response:
    return render_page(request, context, "password_reset_confirm.html", token=request.query_params.get("token", ""), errors={})


@router.post("/password-reset/confirm", response_class=HTMLResponse)
async def password_reset_confirm_submit(request: Request, context: Context, session: Session) -> Response:
    form = await request.form()
    token = str(form.get("token", ""))
    if not form_is_authentic(request, context, form.get("csrf")):
        return render_page(request, context, "password_reset_confirm.html", 400, token=token,
                           errors={"form": "The form expired; submit it again."})
    try:
        body = PasswordResetConfirm(token=token, new_password=str(form.get("password", "")))
        await confirm_password_reset(context, session, body.token, body.new_password)
    except ValidationError as exc:
        return render_page(request, context, "password_reset_confirm.html", 422, token=token,
                           errors={"password": validation_error_lines(exc)[0]})
    except ApiError as exc:
        return render_page(request, context, "password_reset_confirm.html", exc.status_code, token=token,
                           errors={exc.field or "form": exc.message})
    response = render_page(request, context, "message.html", title="Password changed",
                           message="Your password is changed and every session is signed out. Sign in with the new password.")
    # The reset ended any console session of this browser, so its cookie is dropped too.
    response.delete_cookie(SESSION_COOKIE)
    return response
