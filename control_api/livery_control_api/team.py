"""Revocation of the invitations and API keys that a member created in a tenant.

Removing or demoting a member revokes both, so a removed admin keeps no way
back in. An invitation or key created with an API key records the account
that created that key as its creator, so a chain of keys made from one
member's key is revoked with that member. Invitations and keys created with
the admin token, or with a key made with it, record no creator and are never
revoked this way.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from .audit import record_audit
from .dependencies import Caller, utcnow
from .errors import NotFound, Unauthorized
from .tables import ApiKey, Invitation, Membership


def grant_creator_id(caller: Caller) -> str | None:
    """Return the account to record as the creator of an invitation or API key that `caller` creates.

    That is the account itself, or for an API key the key's own recorded creator,
    so every key in a chain made from one member's key records that member. The
    admin token has none.
    """
    if caller.kind == "account":
        return caller.account_id
    if caller.kind == "api_key":
        return caller.key_created_by
    return None


async def lock_caller_membership(session: AsyncSession, caller: Caller, tenant: str) -> None:
    """Hold a shared lock on the membership of the caller's creator account until the transaction ends.

    The creator account is the caller itself, or for an API key the account
    that `grant_creator_id` returns. A removal or demotion of that account then
    waits for this transaction, so an invitation or key that the caller creates
    meanwhile is committed before the removal looks for it, and is revoked with
    the rest. Raises NotFound when an account's membership is already gone, and
    Unauthorized when the calling key was revoked while this request waited.
    The admin token, and keys made with it, lock nothing.
    """
    creator_id = grant_creator_id(caller)
    if creator_id is None:
        return
    membership = await session.scalar(
        select(Membership.role)
        .where(Membership.account_id == creator_id, Membership.tenant == tenant)
        .with_for_update(read=True)
    )
    if caller.kind == "account":
        if membership is None:
            raise NotFound(f"tenant {tenant!r} not found", field="name")
        return
    # Read after the lock: a removal that held it has committed, and its revocation is visible now.
    revoked_at = await session.scalar(select(ApiKey.revoked_at).where(ApiKey.id == caller.key_id))
    if revoked_at is not None:
        raise Unauthorized("the API key was revoked while this request ran")


async def revoke_member_grants(session: AsyncSession, tenant: str, account_id: str, email: str, actor: str) -> None:
    """Delete the pending invitations and revoke the API keys that the account created in `tenant`.

    Each revoked invitation and key gets an audit entry. The caller commits.
    """
    invitations = await session.execute(
        delete(Invitation)
        .where(Invitation.tenant == tenant, Invitation.invited_by == account_id, Invitation.accepted_at.is_(None))
        .returning(Invitation.id, Invitation.email, Invitation.role)
    )
    for invitation_id, invited_email, role in invitations:
        record_audit(
            session, actor, "invitation.revoked", tenant,
            invitation=invitation_id, email=invited_email, role=role, invited_by=email, reason="inviter lost the role",
        )

    keys = await session.execute(
        update(ApiKey)
        .where(ApiKey.tenant == tenant, ApiKey.created_by == account_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .returning(ApiKey.id, ApiKey.name, ApiKey.role)
    )
    for key_id, name, role in keys:
        record_audit(
            session, actor, "api_key.revoked", tenant,
            key=key_id, name=name, role=role, created_by=email, reason="creator lost the role",
        )
