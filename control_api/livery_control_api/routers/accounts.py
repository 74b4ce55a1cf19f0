"""Signup, tokens, email verification, password reset and the caller's own account."""

from __future__ import annotations

from typing import Annotated

import ipaddress
import logging
from datetime import UTC, datetime

from fastapi import APIRouter, BackgroundTasks, Form, Query, Request, Response
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert

from livery.store.base import StoreError

from ..dependencies import Context, CurrentCaller, Session, current_account, utcnow
from ..errors import InvalidInput, Unauthorized
from ..password_reset import ACCEPTED_MESSAGE, confirm_password_reset, request_password_reset, send_reset_email
from ..ratelimit import check_password_limited
from ..schemas import (
    AcceptedResponse,
    NameCheck,
    PasswordResetConfirm,
    PasswordResetRequest,
    SignupRequest,
    SignupResponse,
    TokenResponse,
)
from ..security import issue_token, read_token, token_digest
from ..signup import check_tenant_name, sign_up
from ..tables import Account, EmailVerificationToken, Membership, UsedRefreshToken
from ..views import status_view

logger = logging.getLogger("livery.control_api.accounts")

router = APIRouter(prefix="/v1", tags=["accounts"])


@router.get("/signup/check-name", response_model=NameCheck)
async def check_name(
    context: Context, session: Session, name: Annotated[str, Query(max_length=63, description="Tenant name to check.")]
) -> NameCheck:
    """Say whether a tenant name is free, invalid, reserved or taken; the signup page calls it as the user types."""
    return await check_tenant_name(name, context.store, session)


@router.post("/signup", response_model=SignupResponse, status_code=201)
async def signup(
    body: SignupRequest, request: Request, context: Context, session: Session, response: Response
) -> SignupResponse:
    """Create the owner account and the tenant; a paid plan returns a Stripe Checkout URL instead."""
    result = await sign_up(context, session, body, client_address=client_address(request))
    outcome = "created" if result.created else "repeated"
    context.metrics.signups.labels(result.signup.plan, outcome).inc()
    if result.verification_token is not None:
        link = f"{context.settings.public_url.rstrip('/')}/verify-email?token={result.verification_token}"
        await context.mailer.send(result.account.email, "Confirm your email address", f"Open {link} to confirm.")
    if not result.created:
        response.status_code = 200

    status = None
    if result.tenant is not None:
        status = status_view(result.tenant)
    elif result.signup.state == "complete":
        try:
            status = status_view(await context.store.get_tenant(result.signup.tenant))
        except StoreError as exc:  # the Tenant exists; a failed status read must not fail the signup response
            logger.warning("status of new tenant %s unreadable: %s", result.signup.tenant, exc)
    return SignupResponse(
        tenant=result.signup.tenant,
        state="provisioning" if result.signup.state == "complete" else "pending_payment",
        plan=result.signup.plan,
        checkout_url=result.signup.checkout_url if result.signup.state != "complete" else None,
        status=status,
    )


def client_address(request: Request) -> str:
    """Return the client's IP address, read from X-Forwarded-For only behind a configured trusted proxy.

    The header is read from the right: the first address that is not a trusted
    proxy is the client, so a client cannot pick its own address by sending the header.
    """
    peer = request.client.host if request.client else "unknown"
    networks = request.app.state.context.settings.proxy_networks
    if not networks or not _is_trusted(peer, networks):
        return peer
    forwarded = [part.strip() for part in request.headers.get("x-forwarded-for", "").split(",") if part.strip()]
    for address in reversed(forwarded):
        if not _is_trusted(address, networks):
            return address
    return forwarded[0] if forwarded else peer


def sign_in_keys(request: Request, email: str) -> tuple[str, str]:
    """Return the limiter keys of a password check: the account first, then the client address."""
    return (f"account:{email.lower()}", f"address:{client_address(request)}")


def _is_trusted(address: str, networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


@router.post("/auth/token", response_model=TokenResponse)
async def token(
    request: Request,
    context: Context,
    session: Session,
    grant_type: Annotated[str, Form(pattern="^(password|refresh_token)$")] = "password",
    username: Annotated[str | None, Form(max_length=254)] = None,
    password: Annotated[str | None, Form(max_length=256)] = None,
    refresh_token: Annotated[str | None, Form(max_length=4096)] = None,
) -> TokenResponse:
    """OAuth2 token endpoint: the password grant (email as username) or the refresh_token grant."""
    settings = context.settings
    secret = settings.jwt_secret.get_secret_value()
    if grant_type == "refresh_token":
        if not refresh_token:
            raise InvalidInput("refresh_token is required for grant_type refresh_token", field="refresh_token")
        claims = read_token(secret, refresh_token, "refresh")
        account = await session.get(Account, claims.account_id) if claims else None
        if claims is None or account is None or account.token_version != claims.token_version or not claims.jti:
            raise Unauthorized("refresh token is invalid or expired; sign in again", code="invalid_grant")
        if not await _use_refresh_token(session, claims):
            # A second use means the token leaked or a client kept an old one: end every session of
            # the account, as RFC 9700 (OAuth 2.0 security best current practice) advises.
            account.token_version += 1
            await session.commit()
            logger.warning("refresh token of account %s was used twice; all its tokens are revoked", account.id)
            raise Unauthorized("refresh token was already used; sign in again", code="invalid_grant")
        tokens = _tokens(context, account)
        await session.commit()
        return tokens

    if not username or not password:
        raise InvalidInput("username and password are required for grant_type password", field="username")
    email = username.lower()
    account = await session.scalar(select(Account).where(Account.email == email))
    if not await check_password_limited(context, sign_in_keys(request, email), account.password_hash if account else None, password):
        raise Unauthorized("email or password is wrong", code="invalid_grant")
    return _tokens(context, account)


async def _use_refresh_token(session, claims) -> bool:
    """Record the refresh token's id as used; return False when it was used before."""
    await session.execute(delete(UsedRefreshToken).where(UsedRefreshToken.expires_at < utcnow()))
    inserted = await session.scalar(
        insert(UsedRefreshToken)
        .values(jti=claims.jti, account_id=claims.account_id, expires_at=datetime.fromtimestamp(claims.expires_at, UTC))
        .on_conflict_do_nothing(index_elements=[UsedRefreshToken.jti])
        .returning(UsedRefreshToken.jti)
    )
    return inserted is not None


def _tokens(context: Context, account: Account) -> TokenResponse:
    settings = context.settings
    secret = settings.jwt_secret.get_secret_value()
    access_seconds = settings.access_token_minutes * 60
    return TokenResponse(
        access_token=issue_token(secret, account.id, account.email, "access", access_seconds, account.token_version),
        expires_in=access_seconds,
        refresh_token=issue_token(
            secret, account.id, account.email, "refresh", settings.refresh_token_days * 86400, account.token_version
        ),
    )


@router.post("/auth/verify-email", status_code=204)
async def verify_email(session: Session, token: Annotated[str, Form(max_length=256)]) -> None:
    """Mark the account's email verified with the token from the verification email."""
    row = await session.get(EmailVerificationToken, token_digest(token), with_for_update=True)
    if row is None or row.used_at is not None or row.expires_at < utcnow():
        raise InvalidInput("verification token is invalid, used or expired; request a new one", field="token")
    account = await session.get(Account, row.account_id)
    row.used_at = utcnow()
    if account is not None and account.email_verified_at is None:
        account.email_verified_at = utcnow()
    await session.commit()


@router.post("/auth/password-reset", response_model=AcceptedResponse, status_code=202)
async def password_reset(
    body: PasswordResetRequest, request: Request, context: Context, session: Session, background: BackgroundTasks
) -> AcceptedResponse:
    """Email a single-use password reset link. The response is the same whether or not the account exists.

    The email goes out after the response, so a slow mailer does not show in the response time.
    NOTE: a known email still takes a few more database round trips. The signup's 409
    `account_exists` reveals whether an email has an account anyway.
    """
    message = await request_password_reset(context, session, body.email, client_address(request))
    if message is not None:
        background.add_task(send_reset_email, context, message)
    return AcceptedResponse(message=ACCEPTED_MESSAGE)


@router.post("/auth/password-reset/confirm", status_code=204)
async def password_reset_confirm(body: PasswordResetConfirm, context: Context, session: Session) -> None:
    """Set a new password with the emailed token, and end every token and console session of the account."""
    await confirm_password_reset(context, session, body.token, body.new_password)


@router.get("/me")
async def me(caller: CurrentCaller, session: Session) -> dict:
    """Return the signed-in account and its tenants with the role in each."""
    account = await current_account(session, caller)
    memberships = (await session.scalars(select(Membership).where(Membership.account_id == account.id))).all()
    return {
        "email": account.email,
        "emailVerified": account.email_verified_at is not None,
        "tenants": [{"name": membership.tenant, "role": membership.role} for membership in memberships],
    }


@router.post("/auth/logout-everywhere", status_code=204)
async def logout_everywhere(caller: CurrentCaller, session: Session) -> None:
    """End every access token, refresh token and console session of the account."""
    account = await current_account(session, caller)
    account.token_version += 1
    await session.commit()


@router.post("/auth/change-password", status_code=204)
async def change_password(
    caller: CurrentCaller,
    context: Context,
    session: Session,
    current_password: Annotated[str, Form(max_length=256)],
    new_password: Annotated[str, Form(min_length=10, max_length=256)],
) -> None:
    """Change the password and end every token and console session issued before."""
    account = await current_account(session, caller)
    if not await context.passwords.verify(account.password_hash, current_password):
        raise InvalidInput("current password is wrong", field="current_password")
    account.password_hash = await context.passwords.hash(new_password)
    account.token_version += 1
    await session.commit()
