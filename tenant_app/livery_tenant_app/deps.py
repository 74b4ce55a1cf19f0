"""FastAPI dependencies: the request's transaction, the signed-in user and permission checks."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Annotated

from fastapi import Depends, Form, Request
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from .auth import api_key_matches, has_permission, parse_api_key
from .config import LoadedConfig
from .db import ApiKey, TenantSession, User
from .errors import AppError
from .ratelimit import check_failed_authentications, count_failed_authentication, spend_api_budget
from .rendering import loaded_config
from .security import CSRF_FORM_FIELD, CSRF_HEADER, Session, csrf_matches

API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


# The request's one transaction, bound to the tenant; it commits before the response is sent, or rolls back.
Db = TenantSession
Config = Annotated[LoadedConfig, Depends(loaded_config)]


def request_session(request: Request) -> Session:
    return request.scope["state"]["session"]


def replace_session(request: Request, session: Session) -> None:
    """Swap the session (on sign-in or sign-out); the middleware writes the new cookie."""
    state = request.scope["state"]
    state["session"] = session
    state["session_changed"] = True
    state["csrf_token"] = session.csrf_token


@dataclass(frozen=True)
class Identity:
    user: User
    via_api_key: bool

    def require(self, permission: str) -> None:
        if not has_permission(self.user.role, permission):
            raise AppError(403, "forbidden", f"role {self.user.role} lacks the permission {permission}")


class LoginRequired(Exception):
    """A page needs a signed-in user; the handler redirects to the sign-in page."""


async def find_session_user(db: AsyncSession, session: Session) -> User | None:
    user_id = _uuid_or_none(session.user_id)
    if user_id is None:
        return None
    user = await db.get(User, user_id)
    if user is None or not user.is_active or session.auth_version != auth_version(user):
        return None
    return user


def auth_version(user: User) -> str:
    """Return a value that changes when the user's password changes, which ends their other sessions."""
    return (user.password_hash or "")[-12:]


async def _user_from_api_key(db: AsyncSession, token: str) -> User:
    key_id = parse_api_key(token)
    invalid = AppError(401, "unauthorized", "API key is invalid, expired or revoked")
    if key_id is None:
        raise invalid
    # One round trip for the key and its user: this runs on every API request.
    statement = select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.prefix == key_id)
    row = (await db.execute(statement)).one_or_none()
    now = datetime.now(timezone.utc)
    if row is None:
        raise invalid
    api_key, user = row
    if not api_key_matches(token, api_key.key_hash) or api_key.revoked_at is not None or not user.is_active:
        raise invalid
    if api_key.expires_at is not None and api_key.expires_at <= now:
        raise invalid
    if api_key.last_used_at is None or now - api_key.last_used_at > API_KEY_TOUCH_INTERVAL:
        await db.execute(update(ApiKey).where(ApiKey.id == api_key.id).values(last_used_at=now))
    return user


async def api_identity(request: Request, db: Db) -> Identity:
    """Authenticate an API request and count it toward the plan's API budget.

    A request that fails authentication is counted against its client
    address instead, never against the tenant's budget.
    """
    await check_failed_authentications(request)
    try:
        identity = await _authenticate_api_request(request, db)
    except AppError as exc:
        if exc.status_code == 401:
            await count_failed_authentication(request)
        raise
    await spend_api_budget(request)
    return identity


async def _authenticate_api_request(request: Request, db: AsyncSession) -> Identity:
    """Authenticate by `Authorization: Bearer <API key>` or by session cookie plus CSRF header."""
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AppError(401, "unauthorized", "Authorization header must be 'Bearer <API key>'")
        return Identity(user=await _user_from_api_key(db, token.strip()), via_api_key=True)

    session = request_session(request)
    user = await find_session_user(db, session)
    if user is None:
        raise AppError(401, "unauthorized", "sign in or send an API key as 'Authorization: Bearer <key>'")
    if request.method not in SAFE_METHODS and not csrf_matches(session, request.headers.get(CSRF_HEADER)):
        raise AppError(403, "csrf_failed", f"cookie-authenticated writes need the {CSRF_HEADER} header")
    return Identity(user=user, via_api_key=False)


ApiUser = Annotated[Identity, Depends(api_identity)]


async def page_identity(request: Request, db: Db) -> Identity:
    """Return the signed-in user of a page request, or raise LoginRequired."""
    user = await find_session_user(db, request_session(request))
    if user is None:
        raise LoginRequired()
    remember_page_user(request, user)
    return Identity(user=user, via_api_key=False)


async def optional_page_user(request: Request, db: Db) -> User | None:
    user = await find_session_user(db, request_session(request))
    remember_page_user(request, user)
    return user


@dataclass(frozen=True)
class SignedInUser:
    """The signed-in user as page templates show it: plain values, so error pages render after a rollback."""

    email: str
    role: str


def remember_page_user(request: Request, user: User | None) -> None:
    request.scope["state"]["page_user"] = None if user is None else SignedInUser(email=user.email, role=user.role)


PageUser = Annotated[Identity, Depends(page_identity)]
MaybePageUser = Annotated[User | None, Depends(optional_page_user)]


def verify_csrf_form(request: Request, csrf_token: Annotated[str, Form()] = "") -> None:
    """Reject a form post whose CSRF token does not match the session's."""
    if not csrf_matches(request_session(request), csrf_token):
        raise AppError(403, "csrf_failed", "the form has expired; reload the page and submit it again", CSRF_FORM_FIELD)


CsrfChecked = Depends(verify_csrf_form)


FORM_CONTENT_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


async def reject_nul_characters(request: Request) -> None:
    """Reject a NUL character in a query parameter, form field or upload's content type with 422.

    PostgreSQL text cannot store NUL, so without this check such input would
    fail deep in a query with an error that names no field.
    """
    for name, value in request.query_params.multi_items():
        if "\x00" in name or "\x00" in value:
            raise _nul_error(name)
    if not request.headers.get("content-type", "").lower().startswith(FORM_CONTENT_TYPES):
        return
    # FastAPI has already parsed the form of routes with form fields, and the request caches it.
    form = await request.form()
    for name, value in form.multi_items():
        if isinstance(value, str):
            if "\x00" in name or "\x00" in value:
                raise _nul_error(name)
        elif "\x00" in (value.content_type or "") or "\x00" in (value.filename or ""):
            raise _nul_error(name, "its content type and file name")


def _nul_error(field: str, part: str = "the value") -> AppError:
    field = field.replace("\x00", "\\0")
    return AppError(422, "invalid", f"{field}: NUL characters are not allowed in {part}", field)


def _uuid_or_none(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except (ValueError, TypeError):
        return None
