"""Password reset of console accounts by a single-use token sent by email.

A reset request gets the same response whether or not the email has an account,
so the endpoint does not reveal which emails have accounts. Signups do not
verify the email, so a reset is also how the real owner of an address takes
back an account that someone else created with it. The reset marks the email
verified and ends every session of the account.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from .audit import record_audit
from .context import AppContext
from .dependencies import utcnow
from .errors import ApiError, TooManyRequests
from .security import token_digest
from .tables import Account, PasswordResetToken

logger = logging.getLogger("livery.control_api.password_reset")

RESET_TOKEN_MINUTES = 60
# Reset emails per account per hour. Further requests send nothing but get the same response,
# so they reveal nothing and cannot invalidate the links already sent.
MAX_RESET_EMAILS_PER_HOUR = 3
ACCEPTED_MESSAGE = "If an account with this email exists, a password reset link is on its way."


class InvalidResetToken(ApiError):
    status_code = 400
    code = "invalid_token"


@dataclass(frozen=True)
class ResetEmail:
    """A reset email to send once the request's transaction has committed."""

    to: str
    link: str


async def request_password_reset(
    context: AppContext, session: AsyncSession, email: str, client_address: str
) -> ResetEmail | None:
    """Create a reset token for the account of `email` and return the email to send, or None.

    Returns None when no account has the email or the account already got
    `MAX_RESET_EMAILS_PER_HOUR` reset emails in the last hour. Raises
    `TooManyRequests` when the client address sent more reset requests this
    minute than `LIVERY_LOGIN_ATTEMPTS_PER_MINUTE`, whatever the emails, so one
    address cannot send reset emails to many accounts.
    """
    keys = (f"password-reset:{client_address}",)
    wait = await context.limiter.begin_attempt(*keys)
    if wait is not None:
        raise TooManyRequests(f"too many password reset requests; retry in {wait} seconds", headers={"Retry-After": str(wait)})
    await context.limiter.end_attempt(*keys, succeeded=False)

    email = email.lower()
    account = await session.scalar(select(Account).where(Account.email == email).with_for_update())
    if account is None:
        return None
    now = utcnow()
    await session.execute(
        delete(PasswordResetToken).where(PasswordResetToken.account_id == account.id, PasswordResetToken.expires_at < now)
    )
    recent = await session.scalar(
        select(func.count()).select_from(PasswordResetToken).where(
            PasswordResetToken.account_id == account.id, PasswordResetToken.created_at > now - timedelta(hours=1)
        )
    )
    if recent >= MAX_RESET_EMAILS_PER_HOUR:
        await session.commit()
        logger.info("password reset for account %s not sent: %d sent in the last hour", account.id, recent)
        return None

    token = secrets.token_urlsafe(32)
    session.add(PasswordResetToken(
        token_hash=token_digest(token), account_id=account.id, created_at=now,
        expires_at=now + timedelta(minutes=RESET_TOKEN_MINUTES),
    ))
    await session.commit()
    link = f"{context.settings.public_url.rstrip('/')}/password-reset/confirm?token={token}"
    return ResetEmail(to=account.email, link=link)


async def send_reset_email(context: AppContext, message: ResetEmail) -> None:
    """Send the reset email, and log a mailer failure, because the response has already been sent."""
    try:
        await context.mailer.send(
            message.to,
            "Reset your password",
            f"Open {message.link} to choose a new password. The link works once, for {RESET_TOKEN_MINUTES} minutes. "
            "If you did not ask for it, ignore this email.",
        )
    except Exception as exc:  # noqa: BLE001 - any mailer error, since the response went out already
        logger.error("password reset email to %s failed: %s", message.to, type(exc).__name__)


async def confirm_password_reset(context: AppContext, session: AsyncSession, token: str, new_password: str) -> Account:
    """Set the account's new password with a reset token and return the account.

    Uses up every reset token of the account and ends every access token,
    refresh token and console session, as a password change does. Raises
    `InvalidResetToken` (400) for an unknown, used or expired token.
    """
    # The token is checked before the password is hashed, so invalid tokens cost no argon2 time,
    # and checked again under a row lock after hashing, so two requests cannot both use it.
    digest = token_digest(token)
    _check_usable(await session.get(PasswordResetToken, digest))
    password_hash = await context.passwords.hash(new_password)
    await session.rollback()
    row = await session.get(PasswordResetToken, digest, with_for_update=True, populate_existing=True)
    _check_usable(row)
    now = utcnow()
    account = await session.get(Account, row.account_id, with_for_update=True)
    await session.execute(
        update(PasswordResetToken)
        .where(PasswordResetToken.account_id == account.id, PasswordResetToken.used_at.is_(None))
        .values(used_at=now)
    )
    account.password_hash = password_hash
    account.token_version += 1
    # The token reached the address, which proves the email.
    account.email_verified_at = account.email_verified_at or now
    record_audit(session, f"account:{account.email}", "account.password_reset", None)
    await session.commit()
    # Failed sign-ins before the reset, maybe someone else's, must not block the new password.
    await context.limiter.clear(f"account:{account.email}")
    return account


def _check_usable(row: PasswordResetToken | None) -> None:
    if row is None or row.used_at is not None or row.expires_at < utcnow():
        raise InvalidResetToken(
            "password reset token is invalid, used or expired; request a new reset email", field="token"
        )
