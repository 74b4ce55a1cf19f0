"""Request dependencies as `Annotated` aliases: context, database session, caller and tenant access.

A caller proves who they are with one of: an access token (JWT from
`/v1/auth/token`), an API key (`lvk_...`, scoped to one tenant), the platform
admin token, or the console's session cookie. A cookie counts for a request
that changes something only together with the matching CSRF token, so another
site cannot act with a signed-in browser.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession


from livery.models.rules import EMAIL, HOSTNAME, TENANT_NAME

from .context import AppContext
from .errors import Forbidden, NotFound, Unauthorized
from .permissions import Permission, Role, allows
from .security import API_KEY_PREFIX, AccessClaims, constant_time_equal, csrf_token, read_token, token_digest
from .tables import Account, ApiKey, Membership

SESSION_COOKIE = "livery_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_context(request: Request) -> AppContext:
    return request.app.state.context


Context = Annotated[AppContext, Depends(get_context)]


async def get_session(context: Context) -> AsyncIterator[AsyncSession]:
    async with context.sessions() as session:
        yield session


Session = Annotated[AsyncSession, Depends(get_session)]


@dataclass(frozen=True)
class Caller:
    """The authenticated caller: an account, an API key or the platform admin."""

    kind: str  # "account", "api_key" or "admin"
    account_id: str | None = None
    email: str | None = None
    key_tenant: str | None = None
    admin_id: str | None = None  # digest prefix of the admin token used
    key_role: str | None = None
    key_id: str | None = None
    # The account recorded as the API key's creator; None for a key made with the admin token or from such a key.
    key_created_by: str | None = None

    @property
    def actor(self) -> str:
        if self.kind == "account":
            return f"account:{self.email}"
        if self.kind == "api_key":
            return f"api_key:{self.key_tenant}"
        # The admin token's digest prefix distinguishes rotated tokens in the audit log without revealing them.
        return f"admin:{self.admin_id}" if self.admin_id else "admin"


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def identify_caller(request: Request, context: AppContext, session: AsyncSession) -> Caller | None:
    """Return the caller proven by the request's credentials, or None when it carries none that are valid."""
    token = bearer_token(request)
    cookie = False
    if token is None:
        token = request.cookies.get(SESSION_COOKIE)
        cookie = token is not None
        if cookie and request.method not in SAFE_METHODS:
            expected = csrf_token(context.settings.jwt_secret.get_secret_value(), token)
            sent = request.headers.get(CSRF_HEADER, "")
            if not constant_time_equal(expected, sent):
                return None
    if token is None:
        return None

    admin_token = context.settings.admin_token
    if not cookie and admin_token is not None:
        # Several comma-separated tokens let admins rotate one without locking the others out.
        for candidate in admin_token.get_secret_value().split(","):
            if candidate.strip() and constant_time_equal(token, candidate.strip()):
                return Caller(kind="admin", admin_id=token_digest(candidate.strip())[:8])

    if not cookie and token.startswith(API_KEY_PREFIX):
        key = await session.scalar(select(ApiKey).where(ApiKey.secret_hash == token_digest(token)))
        if key is None or key.revoked_at is not None:
            return None
        return Caller(
            kind="api_key", key_tenant=key.tenant, key_role=key.role, key_id=key.id, key_created_by=key.created_by
        )

    claims = read_token(context.settings.jwt_secret.get_secret_value(), token, "access")
    if claims is None:
        return None
    if not await token_is_current(session, claims):
        return None
    return Caller(kind="account", account_id=claims.account_id, email=claims.email)


async def token_is_current(session: AsyncSession, claims: AccessClaims) -> bool:
    """Return whether the token's account exists and has not raised its token version since the token was issued.

    A password change or sign-out everywhere raises the version, which ends
    every older access token and console session at once.
    """
    version = await session.scalar(select(Account.token_version).where(Account.id == claims.account_id))
    return version is not None and version == claims.token_version


async def require_caller(request: Request, context: Context, session: Session) -> Caller:
    caller = await identify_caller(request, context, session)
    if caller is None:
        raise Unauthorized()
    return caller


CurrentCaller = Annotated[Caller, Depends(require_caller)]


async def require_admin(caller: CurrentCaller) -> Caller:
    if caller.kind != "admin":
        # Non-admins must not learn that the admin API exists at this path.
        raise NotFound("no such resource")
    return caller


AdminCaller = Annotated[Caller, Depends(require_admin)]

TenantName = Annotated[str, Path(pattern=TENANT_NAME.pattern, max_length=TENANT_NAME.max_length, description="Tenant name.")]
DomainName = Annotated[str, Path(pattern=HOSTNAME.pattern, max_length=HOSTNAME.max_length, description="Custom domain.")]
EmailAddress = Annotated[str, Path(pattern=EMAIL.pattern, max_length=EMAIL.max_length, description="Email address.")]
KeyId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$", description="API key id.")]


async def role_in_tenant(session: AsyncSession, caller: Caller, tenant: str) -> str | None:
    """Return the caller's role in `tenant`, or None when the caller has no access to it."""
    if caller.kind == "admin":
        return Role.OWNER.value
    if caller.kind == "api_key":
        return caller.key_role if caller.key_tenant == tenant else None
    return await session.scalar(
        select(Membership.role).where(Membership.account_id == caller.account_id, Membership.tenant == tenant)
    )


async def authorize(session: AsyncSession, caller: Caller, tenant: str, permission: Permission) -> str:
    """Return the caller's role in `tenant` if it grants `permission`.

    Raises 404 when the caller has no role there, so a tenant's existence is
    never revealed to outsiders, and 403 when the role is too weak.
    """
    role = await role_in_tenant(session, caller, tenant)
    if role is None:
        raise NotFound(f"tenant {tenant!r} not found", field="name")
    if not allows(role, permission):
        raise Forbidden(f"role {role!r} lacks the {permission.value!r} permission in tenant {tenant!r}")
    return role


async def current_account(session: AsyncSession, caller: Caller) -> Account:
    if caller.kind != "account":
        raise Forbidden("this action needs a signed-in account, not an API key or the admin token")
    account = await session.get(Account, caller.account_id)
    if account is None:
        raise Unauthorized()
    return account


def utcnow() -> datetime:
    return datetime.now(UTC)


