"""Rendering, sessions and CSRF tokens shared by the server-rendered pages.

The session cookie contains an access token. Each form contains a CSRF token
derived from that cookie (or, before sign-in, a random one that must match a
cookie), so another site cannot submit forms with a signed-in browser.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.ext.asyncio import AsyncSession

from ..context import AppContext
from ..dependencies import SESSION_COOKIE, Caller, token_is_current
from ..security import constant_time_equal, csrf_token, issue_token, read_token
from ..tables import Account

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


def _secret(context: AppContext) -> str:
    return context.settings.jwt_secret.get_secret_value()


def page_caller(request: Request, context: AppContext) -> Caller | None:
    token = request.cookies.get(SESSION_COOKIE)
    claims = read_token(_secret(context), token, "access") if token else None
    if claims is None:
        return None
    return Caller(kind="account", account_id=claims.account_id, email=claims.email)


async def current_page_caller(request: Request, context: AppContext, session: AsyncSession) -> Caller | None:
    """Return the console session's caller, or None when its token was ended by a password change or sign-out."""
    caller = page_caller(request, context)
    if caller is None:
        return None
    claims = read_token(_secret(context), request.cookies[SESSION_COOKIE], "access")
    if claims is None or not await token_is_current(session, claims):
        return None
    # render_page shows only a caller checked here, so a revoked cookie never looks signed in.
    request.state.page_caller = caller
    return caller


def _form_token(request: Request, context: AppContext) -> tuple[str, bool]:
    """Return the CSRF token for forms on this page and whether a pre-session cookie must be set."""
    session_token = request.cookies.get(SESSION_COOKIE)
    if session_token and read_token(_secret(context), session_token, "access"):
        return csrf_token(_secret(context), session_token), False
    existing = request.cookies.get(PRE_SESSION_COOKIE)
    if existing:
        return existing, False
    return secrets.token_urlsafe(24), True


def form_is_authentic(request: Request, context: AppContext, sent: Any) -> bool:
    if not isinstance(sent, str) or not sent:
        return False
    session_token = request.cookies.get(SESSION_COOKIE)
    if session_token and read_token(_secret(context), session_token, "access"):
        # With a session only its own token counts: a pre-session cookie planted from a sibling
        # host would otherwise let a forged form through.
        return constant_time_equal(csrf_token(_secret(context), session_token), sent)
    pre_session = request.cookies.get(PRE_SESSION_COOKIE)
    return bool(pre_session) and constant_time_equal(pre_session, sent)


def render_page(request: Request, context: AppContext, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    token, set_cookie = _form_token(request, context)
    response = TEMPLATES.TemplateResponse(
        request, template, {"csrf": token, "caller": getattr(request.state, "page_caller", None), **values}, status_code=status_code
    )
    if set_cookie:
        response.set_cookie(
            PRE_SESSION_COOKIE, token, httponly=True, samesite="lax", secure=context.settings.secure_cookies
        )
    response.headers.update(PAGE_HEADERS)
    return response


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def start_session(context: AppContext, response: Response, account: Account) -> None:
    token = issue_token(_secret(context), account.id, account.email, "access", SESSION_SECONDS, account.token_version)
    response.set_cookie(
        SESSION_COOKIE, token, max_age=SESSION_SECONDS, httponly=True, samesite="lax",
        secure=context.settings.secure_cookies,
    )


