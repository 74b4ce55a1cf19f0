"""Revocation of the invitations and API keys that a member created in a tenant.

Removing or demoting a member revokes both, so a removed admin keeps no way
back in. Invitations and keys created with an API key or the admin token
record no creator, so they are never revoked this way.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from .audit import record_audit
from .dependencies import Caller, utcnow
from .errors import NotFound
from .tables import ApiKey, Invitation, Membership


async def lock_caller_membership(session: AsyncSession, caller: Caller, tenant: str) -> None:
    """Hold a shared lock on the calling account's membership until the transaction ends.

    A removal or demotion of the caller then waits for this transaction, so an
    invitation or key that the caller creates meanwhile is committed before the
    removal looks for it, and is revoked with the rest. Raises NotFound when the
    membership is already gone. API keys and the admin token have no membership.
    """
    if caller.kind != "account":
        return
    membership = await session.scalar(
        select(Membership.role)
        .where(Membership.account_id == caller.account_id, Membership.tenant == tenant)
        .with_for_update(read=True)
    )
    if membership is None:
        raise NotFound(f"tenant {tenant!r} not found", field="name")


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
