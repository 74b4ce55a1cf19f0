"""Data functions for users, invitations, password resets and owner sign-in."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from .auth import LoginClaims, hash_password, hash_secret_token, new_secret_token
from .catalogue import parse_id
from .db.models import ApiKey, Invitation, LoginLinkUse, PasswordResetToken, User
from .errors import AppError

INVITATION_LIFETIME = timedelta(days=7)
PASSWORD_RESET_LIFETIME = timedelta(hours=1)
MIN_PASSWORD_LENGTH = 10
# Accounts that only the owner may reset, change or delete.
OWNER_MANAGED_ROLES = frozenset({"owner", "admin"})


def check_may_manage(actor: User, target: User, new_role: str | None = None) -> None:
    """Raise 403 unless `actor` may change `target`'s password, role, status or delete it.

    Only the owner may manage the owner's and admins' accounts and grant the
    owner role, so an admin cannot take over the owner's account or another
    admin's. Admins manage members, and a user may manage their own account
    except for its role.
    """
    if actor.role == "owner":
        return
    if actor.id == target.id and new_role in (None, target.role):
        # Users may manage their own account, but not change its role.
        return
    if target.role in OWNER_MANAGED_ROLES:
        raise AppError(403, "forbidden", f"user: only the owner can change an {target.role}'s account", "user")
    if new_role == "owner":
        raise AppError(403, "forbidden", "role: only the owner can grant the owner role", "role")


async def revoke_api_keys(db: AsyncSession, user_id: uuid.UUID) -> None:
    now = datetime.now(timezone.utc)
    await db.execute(
        update(ApiKey).where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None)).values(revoked_at=now)
    )


def check_password_rule(password: str, field: str = "password") -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AppError(422, "invalid", f"{field}: must be at least {MIN_PASSWORD_LENGTH} characters", field)
    if len(password) > 1024:
        raise AppError(422, "invalid", f"{field}: must be at most 1024 characters", field)


async def count_users(db: AsyncSession) -> int:
    return int((await db.execute(select(func.count()).select_from(User))).scalar_one())


async def list_users(db: AsyncSession) -> list[User]:
    return list((await db.execute(select(User).order_by(User.created_at, User.id))).scalars())


async def get_user(db: AsyncSession, user_id: str) -> User | None:
    parsed = parse_id(user_id)
    return None if parsed is None else await db.get(User, parsed)


async def find_user_by_email(db: AsyncSession, email: str) -> User | None:
    return (await db.execute(select(User).where(User.email == email.lower()))).scalar_one_or_none()


def _is_pending(now: datetime):
    return Invitation.accepted_at.is_(None) & (Invitation.expires_at > now)


async def _pending_invitations(db: AsyncSession, now: datetime) -> int:
    statement = select(func.count()).select_from(Invitation).where(_is_pending(now))
    return int((await db.execute(statement)).scalar_one())


async def list_pending_invitations(db: AsyncSession) -> list[Invitation]:
    """Return the invitations that still hold a seat, newest first."""
    statement = (
        select(Invitation)
        .where(_is_pending(datetime.now(timezone.utc)))
        .order_by(Invitation.created_at.desc(), Invitation.id)
    )
    return list((await db.execute(statement)).scalars())


async def revoke_invitation(db: AsyncSession, invitation_id: str) -> bool:
    """Delete a pending invitation, so its link stops working and its seat is free; False if there is none."""
    parsed = parse_id(invitation_id)
    if parsed is None:
        return False
    statement = delete(Invitation).where(Invitation.id == parsed, _is_pending(datetime.now(timezone.utc)))
    return (await db.execute(statement)).rowcount > 0


async def lock_user_count(db: AsyncSession) -> None:
    """Serialise invitations and sign-ups of this tenant so two cannot both take the last seat."""
    await db.execute(select(func.pg_advisory_xact_lock(func.hashtext("livery.users:" + func.current_setting("livery.tenant")))))


async def create_invitation(
    db: AsyncSession, email: str, role: str, invited_by: uuid.UUID | None, user_limit: int | None
) -> tuple[Invitation, str]:
    """Create an invitation and return it with its one-time token; reject it past the plan's user limit.

    A pending invitation for the same address is replaced, so its link stops
    working and it no longer takes a seat.
    """
    await lock_user_count(db)
    if await find_user_by_email(db, email) is not None:
        raise AppError(409, "conflict", f"email: {email} already has an account", "email")
    now = datetime.now(timezone.utc)
    await db.execute(delete(Invitation).where(Invitation.email == email, _is_pending(now)))
    if user_limit is not None:
        seats = await count_users(db) + await _pending_invitations(db, now)
        if seats >= user_limit:
            raise AppError(
                403,
                "user_limit_reached",
                f"the plan allows {user_limit} users and {seats} are taken by users and open invitations; "
                "upgrade the plan or remove a user first",
                "email",
            )
    token, token_hash = new_secret_token()
    invitation = Invitation(
        email=email, role=role, token_hash=token_hash, invited_by=invited_by, expires_at=now + INVITATION_LIFETIME
    )
    db.add(invitation)
    await db.flush()
    return invitation, token


async def find_open_invitation(db: AsyncSession, token: str) -> Invitation | None:
    now = datetime.now(timezone.utc)
    statement = select(Invitation).where(
        Invitation.token_hash == hash_secret_token(token), Invitation.accepted_at.is_(None), Invitation.expires_at > now
    )
    return (await db.execute(statement)).scalar_one_or_none()


async def accept_invitation(db: AsyncSession, invitation: Invitation, name: str, password: str, user_limit: int | None) -> User:
    check_password_rule(password)
    await lock_user_count(db)
    if await find_user_by_email(db, invitation.email) is not None:
        raise AppError(409, "conflict", f"email: {invitation.email} already has an account", "email")
    if user_limit is not None and await count_users(db) >= user_limit:
        raise AppError(403, "user_limit_reached", f"the plan allows {user_limit} users and all are taken", "email")
    user = User(email=invitation.email, name=name, role=invitation.role, password_hash=hash_password(password))
    db.add(user)
    invitation.accepted_at = datetime.now(timezone.utc)
    await db.flush()
    return user


async def create_password_reset(db: AsyncSession, user: User) -> str:
    # NOTE: the app sends no email, so an owner or admin creates the link on the team page and hands it over.
    token, token_hash = new_secret_token()
    db.add(
        PasswordResetToken(
            user_id=user.id, token_hash=token_hash, expires_at=datetime.now(timezone.utc) + PASSWORD_RESET_LIFETIME
        )
    )
    await db.flush()
    return token


async def reset_password(db: AsyncSession, token: str, password: str) -> User | None:
    """Set a new password with a one-time reset token; return None for an unknown, used or expired token.

    A reset means the old password may be known to someone else, so it also
    revokes the user's API keys. The new password hash ends every other
    session (see `deps.auth_version`).
    """
    check_password_rule(password)
    now = datetime.now(timezone.utc)
    statement = select(PasswordResetToken).where(
        PasswordResetToken.token_hash == hash_secret_token(token),
        PasswordResetToken.used_at.is_(None),
        PasswordResetToken.expires_at > now,
    ).with_for_update()
    reset = (await db.execute(statement)).scalar_one_or_none()
    if reset is None:
        return None
    user = await db.get(User, reset.user_id)
    if user is None:
        return None
    reset.used_at = now
    user.password_hash = hash_password(password)
    await revoke_api_keys(db, user.id)
    await db.flush()
    return user


async def sign_in_owner_with_link(db: AsyncSession, claims: LoginClaims, owner_email: str | None) -> User | None:
    """Spend the link's jti and return the owner, creating the account on first sign-in.

    An existing account that is not yet the owner is promoted: its password is
    cleared, which ends its sessions, and its API keys are revoked. Any other
    owner is demoted to admin. Returns None when the jti was used before or
    the link is not for the tenant's owner. The jti row and the sign-in share
    the request's transaction.
    """
    if owner_email is None or claims.email != owner_email.lower():
        return None
    try:
        async with db.begin_nested():
            db.add(LoginLinkUse(jti=claims.jti, expires_at=claims.expires_at))
            await db.flush()
    except IntegrityError:
        return None

    user = await find_user_by_email(db, claims.email)
    if user is None:
        user = User(email=claims.email, name="", role="owner")
        db.add(user)
    elif user.role != "owner":
        # Whoever set up this account before it became the owner's, through an invitation for
        # example, may still know its password or hold its keys, so none of them survive.
        user.password_hash = None
        await revoke_api_keys(db, user.id)
    user.role = "owner"
    user.is_active = True
    user.last_login_at = datetime.now(timezone.utc)
    await db.flush()
    # The tenant config names one owner; an owner it no longer names becomes an admin.
    await db.execute(update(User).where(User.role == "owner", User.id != user.id).values(role="admin"))
    return user
