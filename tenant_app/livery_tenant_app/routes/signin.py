"""Sign-in and sign-out, one-time owner login links, invitations and password resets."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from ..auth import LoginLinkError, password_needs_rehash, hash_password, verify_login_token, verify_password
from ..deps import Config, CsrfChecked, Db, auth_version, replace_session
from ..errors import AppError
from ..ratelimit import check_budget
from ..rendering import render
from ..security import Session
from ..team import (
    accept_invitation,
    count_users,
    find_open_invitation,
    find_user_by_email,
    reset_password,
    sign_in_owner_with_link,
)

logger = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

# Password attempts per account and minute, counted in the rate limiter's store.
SIGN_IN_ATTEMPTS_PER_MINUTE = 10


def _safe_next(target: str | None) -> str:
    """Return `target` when it is a path on this site, else `/`, so sign-in cannot redirect elsewhere."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _sign_in(request: Request, user) -> None:
    replace_session(request, Session(user_id=str(user.id), auth_version=auth_version(user)))
    user.last_login_at = datetime.now(timezone.utc)


@router.get("/login", name="login")
async def login_page(request: Request, next: Annotated[str | None, Query(max_length=2000)] = None) -> Response:
    return render(request, "login.html", {"next": _safe_next(next), "error": None})


@router.post("/login", dependencies=[CsrfChecked])
async def login_form(
    request: Request, db: Db, config: Config,
    email: Annotated[str, Form(max_length=320)], password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    email = email.strip().lower()
    retry_after = await check_budget(
        request.app.state.limiter_store, f"sign-in:{config.config.tenant}:{email}", SIGN_IN_ATTEMPTS_PER_MINUTE
    )
    if retry_after is not None:
        logger.warning("tenant %s: sign-in attempts throttled for one account", config.config.tenant)
        message = f"Too many sign-in attempts for this account; try again in {retry_after} s."
        return render(request, "login.html", {"next": _safe_next(next), "error": message}, 429,
                      headers={"retry-after": str(retry_after)})
    user = await find_user_by_email(db, email)
    if user is None or not user.is_active or not verify_password(user.password_hash, password):
        logger.info("tenant %s: failed sign-in", config.config.tenant)
        return render(request, "login.html", {"next": _safe_next(next), "error": "Email or password is wrong."}, 401)
    if user.password_hash and password_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    _sign_in(request, user)
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout", dependencies=[CsrfChecked])
async def logout_form(request: Request) -> Response:
    replace_session(request, Session())
    return RedirectResponse("/", status_code=303)


@router.get("/auth/link", name="login_link")
async def login_link(request: Request, db: Db, config: Config, token: Annotated[str, Query(max_length=4096)]) -> Response:
    """Sign the owner in with a one-time link issued by the control API."""
    key = request.app.state.settings.login_key
    if key is None:
        raise AppError(404, "not_found", "login links are not enabled for this app")
    tenant_config = config.config
    try:
        claims = verify_login_token(token, key.get_secret_value(), tenant_config.tenant)
    except LoginLinkError as exc:
        raise AppError(400, "invalid_login_link", str(exc), "token") from None
    owner_email = tenant_config.owner.email if tenant_config.owner else None
    user = await sign_in_owner_with_link(db, claims, owner_email)
    if user is None:
        raise AppError(400, "invalid_login_link", "login link was already used or is not for this tenant's owner", "token")
    _sign_in(request, user)
    request.app.state.usage.record("users", await count_users(db))
    logger.info("tenant %s: owner signed in with a login link", tenant_config.tenant)
    return RedirectResponse("/", status_code=303)


@router.get("/invite/{token}", name="accept_invitation_page")
async def accept_invitation_page(token: str, request: Request, db: Db) -> Response:
    invitation = await find_open_invitation(db, token)
    if invitation is None:
        raise AppError(404, "not_found", "invitation not found, used or expired")
    return render(request, "accept_invitation.html", {"invitation": invitation, "token": token})


@router.post("/invite/{token}", dependencies=[CsrfChecked])
async def accept_invitation_form(
    token: str, request: Request, db: Db, config: Config,
    password: Annotated[str, Form(max_length=1024)], name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    invitation = await find_open_invitation(db, token)
    if invitation is None:
        raise AppError(404, "not_found", "invitation not found, used or expired")
    user = await accept_invitation(db, invitation, name.strip(), password, config.config.limits.users)
    _sign_in(request, user)
    request.app.state.usage.record("users", await count_users(db))
    return RedirectResponse("/", status_code=303)


@router.get("/reset/{token}", name="password_reset_page")
async def password_reset_page(token: str, request: Request) -> Response:
    return render(request, "reset_password.html", {"token": token})


@router.post("/reset/{token}", dependencies=[CsrfChecked])
async def password_reset_form(token: str, request: Request, db: Db, password: Annotated[str, Form(max_length=1024)]) -> Response:
    user = await reset_password(db, token, password)
    if user is None:
        raise AppError(404, "not_found", "password reset link not found, used or expired")
    _sign_in(request, user)
    return RedirectResponse("/", status_code=303)
