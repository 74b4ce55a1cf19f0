"""A tenant's team: members, invitations, API keys, and the deletion of the tenant with its team."""

from __future__ import annotations

import uuid
from datetime import timedelta

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from livery.store.base import NotFound as StoreNotFound

from ..audit import record_audit
from ..billing.provider import BillingError

from ..dependencies import Context, CurrentCaller, EmailAddress, KeyId, Session, TenantName, authorize, utcnow
from ..errors import Conflict, Forbidden, InvalidInput, NotFound, Unavailable
from ..permissions import Permission, may_grant
from ..schemas import (
    AcceptInvitationRequest,
    ApiKeyRequest,
    ApiKeyView,
    InvitationRequest,
    InvitationView,
    MemberView,
    RoleChangeRequest,
)
from ..security import new_api_key, new_token, token_digest
from ..billing.retire import retire_billing
from ..tables import Account, ApiKey, Invitation, Membership, PendingDomain, Signup, TenantBilling
from ..team import grant_creator_id, lock_caller_membership, revoke_member_grants
from ..tenant_access import load_tenant

router = APIRouter(prefix="/v1", tags=["team"])

InvitationId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$", description="Invitation id.")]


@router.get("/tenants/{name}/members", response_model=list[MemberView])
async def list_members(name: TenantName, caller: CurrentCaller, session: Session) -> list[MemberView]:
    """Return the tenant's members with their roles."""
    await authorize(session, caller, name, Permission.VIEW)
    rows = await session.execute(
        select(Account.email, Membership.role)
        .join(Membership, Membership.account_id == Account.id)
        .where(Membership.tenant == name)
        .order_by(Account.email)
    )
    return [MemberView(email=email, role=role) for email, role in rows]


@router.post("/tenants/{name}/members", response_model=InvitationView, status_code=201)
async def invite_member(
    name: TenantName, body: InvitationRequest, caller: CurrentCaller, context: Context, session: Session
) -> InvitationView:
    """Invite an email address with a role; the invitation link goes out by email and expires."""
    role = await authorize(session, caller, name, Permission.MANAGE_MEMBERS)
    if not may_grant(role, body.role):
        raise Forbidden(f"role {role} may not invite a {body.role}", field="role")
    email = body.email.lower()
    member = await session.scalar(
        select(Membership).join(Account, Account.id == Membership.account_id).where(
            Membership.tenant == name, Account.email == email
        )
    )
    if member is not None:
        raise Conflict(f"{email} is already a member of tenant {name!r}", field="email")
    await lock_caller_membership(session, caller, name)
    inviter_id = grant_creator_id(caller)
    inviter_email = await _account_email(session, inviter_id)
    token = new_token()
    invitation = Invitation(
        id=str(uuid.uuid4()), tenant=name, email=email, role=body.role, token_hash=token_digest(token),
        invited_by=inviter_id, expires_at=utcnow() + timedelta(days=context.settings.invitation_days),
    )
    session.add(invitation)
    await session.commit()
    link = f"{context.settings.public_url.rstrip('/')}/invitations/accept?token={token}"
    await context.mailer.send(email, f"You are invited to {name}", f"Open {link} to join tenant {name} as {body.role}.")
    return InvitationView(
        id=invitation.id, email=email, role=body.role, expires_at=invitation.expires_at, invited_by=inviter_email
    )


@router.get("/tenants/{name}/invitations", response_model=list[InvitationView])
async def list_invitations(name: TenantName, caller: CurrentCaller, session: Session) -> list[InvitationView]:
    """Return the tenant's pending invitations, those neither accepted nor expired, oldest first."""
    await authorize(session, caller, name, Permission.MANAGE_MEMBERS)
    rows = await session.execute(
        select(Invitation, Account.email)
        .outerjoin(Account, Account.id == Invitation.invited_by)
        .where(Invitation.tenant == name, Invitation.accepted_at.is_(None), Invitation.expires_at >= utcnow())
        .order_by(Invitation.created_at, Invitation.id)
    )
    return [
        InvitationView(
            id=invitation.id, email=invitation.email, role=invitation.role, expires_at=invitation.expires_at,
            invited_by=inviter,
        )
        for invitation, inviter in rows
    ]


@router.delete("/tenants/{name}/invitations/{invitation_id}", status_code=204)
async def revoke_invitation(
    name: TenantName, invitation_id: InvitationId, caller: CurrentCaller, session: Session
) -> Response:
    """Revoke a pending invitation, so its link no longer works, and record it in the audit log."""
    await authorize(session, caller, name, Permission.MANAGE_MEMBERS)
    invitation = await session.scalar(
        delete(Invitation)
        .where(Invitation.id == invitation_id, Invitation.tenant == name, Invitation.accepted_at.is_(None))
        .returning(Invitation)
    )
    if invitation is None:
        raise NotFound(f"no pending invitation {invitation_id!r} in tenant {name!r}", field="invitation_id")
    record_audit(
        session, caller.actor, "invitation.revoked", name, invitation=invitation.id, email=invitation.email,
        role=invitation.role,
    )
    await session.commit()
    return Response(status_code=204)


@router.post("/invitations/accept", response_model=MemberView)
async def accept_invitation(body: AcceptInvitationRequest, context: Context, session: Session) -> MemberView:
    """Join a tenant with an invitation token; creates the account when the email has none."""
    invitation = await session.scalar(
        select(Invitation).where(Invitation.token_hash == token_digest(body.token)).with_for_update()
    )
    if invitation is None or invitation.accepted_at is not None or invitation.expires_at < utcnow():
        raise InvalidInput("invitation is invalid, used or expired; ask for a new one", field="token")
    account = await session.scalar(select(Account).where(Account.email == invitation.email))
    if body.password is None:
        raise InvalidInput("password is required to accept an invitation", field="password")
    if account is None:
        account = Account(id=str(uuid.uuid4()), email=invitation.email, password_hash=await context.passwords.hash(body.password))
        # The invitation reached this address, which proves the email.
        account.email_verified_at = utcnow()
        session.add(account)
    elif not await context.passwords.verify(account.password_hash, body.password):
        raise InvalidInput(f"password of the existing account {invitation.email} is wrong", field="password")
    invitation.accepted_at = utcnow()
    session.add(Membership(account_id=account.id, tenant=invitation.tenant, role=invitation.role))
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise Conflict(f"{invitation.email} is already a member of this tenant", field="token") from None
    return MemberView(email=invitation.email, role=invitation.role)


@router.delete("/tenants/{name}/members/{email}", status_code=204)
async def remove_member(name: TenantName, email: EmailAddress, caller: CurrentCaller, session: Session) -> Response:
    """Remove a member and revoke the pending invitations and API keys they created here. The owner cannot be removed."""
    await authorize(session, caller, name, Permission.MANAGE_MEMBERS)
    membership = await _lock_membership(session, name, email)
    if membership.role == "owner":
        raise Forbidden("the owner cannot be removed; transfer ownership first", field="email")
    await session.delete(membership)
    record_audit(session, caller.actor, "member.removed", name, email=email.lower(), role=membership.role)
    await revoke_member_grants(session, name, membership.account_id, email.lower(), caller.actor)
    await session.commit()
    return Response(status_code=204)


@router.patch("/tenants/{name}/members/{email}", response_model=MemberView)
async def change_member_role(
    name: TenantName, email: EmailAddress, body: RoleChangeRequest, caller: CurrentCaller, session: Session
) -> MemberView:
    """Change a member's role between admin and member. The owner's role cannot change.

    A demotion to member revokes the pending invitations and API keys the
    member created here, as a removal does.
    """
    role = await authorize(session, caller, name, Permission.MANAGE_MEMBERS)
    if not may_grant(role, body.role):
        raise Forbidden(f"role {role} may not grant the role {body.role}", field="role")
    membership = await _lock_membership(session, name, email)
    if membership.role == "owner":
        raise Forbidden("the owner's role cannot change; transfer ownership first", field="email")
    previous = membership.role
    if previous != body.role:
        membership.role = body.role
        record_audit(session, caller.actor, "member.role_changed", name, email=email.lower(), role=body.role, previous=previous)
    if body.role == "member":
        await revoke_member_grants(session, name, membership.account_id, email.lower(), caller.actor)
    await session.commit()
    return MemberView(email=email.lower(), role=body.role)


async def _account_email(session: AsyncSession, account_id: str | None) -> str | None:
    if account_id is None:
        return None
    return await session.scalar(select(Account.email).where(Account.id == account_id))


async def _lock_membership(session: AsyncSession, tenant: str, email: str) -> Membership:
    """Return the membership of `email` in `tenant`, locked until the transaction ends, or raise NotFound."""
    membership = await session.scalar(
        select(Membership)
        .join(Account, Account.id == Membership.account_id)
        .where(Membership.tenant == tenant, Account.email == email.lower())
        .with_for_update(of=Membership)
    )
    if membership is None:
        raise NotFound(f"{email} is not a member of tenant {tenant!r}", field="email")
    return membership


@router.get("/tenants/{name}/api-keys", response_model=list[ApiKeyView])
async def list_api_keys(name: TenantName, caller: CurrentCaller, session: Session) -> list[ApiKeyView]:
    """Return the tenant's API keys without their secrets."""
    await authorize(session, caller, name, Permission.MANAGE_API_KEYS)
    rows = await session.execute(
        select(ApiKey, Account.email)
        .outerjoin(Account, Account.id == ApiKey.created_by)
        .where(ApiKey.tenant == name)
        .order_by(ApiKey.created_at, ApiKey.id)
    )
    return [
        ApiKeyView(
            id=key.id, name=key.name, role=key.role, created_at=key.created_at, created_by=creator,
            revoked=key.revoked_at is not None,
        )
        for key, creator in rows
    ]


@router.post("/tenants/{name}/api-keys", response_model=ApiKeyView, status_code=201)
async def create_api_key(
    name: TenantName, body: ApiKeyRequest, caller: CurrentCaller, session: Session
) -> ApiKeyView:
    """Create an API key scoped to the tenant; the secret is in this response only."""
    role = await authorize(session, caller, name, Permission.MANAGE_API_KEYS)
    if not may_grant(role, body.role):
        raise Forbidden(f"role {role} may not create a key with role {body.role}", field="role")
    await lock_caller_membership(session, caller, name)
    creator_id = grant_creator_id(caller)
    creator_email = await _account_email(session, creator_id)
    secret = new_api_key()
    key = ApiKey(
        id=str(uuid.uuid4()), tenant=name, name=body.name, role=body.role, secret_hash=token_digest(secret),
        created_by=creator_id,
    )
    session.add(key)
    await session.commit()
    return ApiKeyView(
        id=key.id, name=key.name, role=key.role, created_at=key.created_at, created_by=creator_email, key=secret
    )


@router.delete("/tenants/{name}/api-keys/{key_id}", status_code=204)
async def revoke_api_key(name: TenantName, key_id: KeyId, caller: CurrentCaller, session: Session) -> Response:
    """Revoke an API key; requests with it fail from now on."""
    await authorize(session, caller, name, Permission.MANAGE_API_KEYS)
    key = await session.get(ApiKey, key_id)
    if key is None or key.tenant != name:
        raise NotFound(f"API key {key_id!r} not found in tenant {name!r}", field="key_id")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        record_audit(session, caller.actor, "api_key.revoked", name, key=key.id, name=key.name, role=key.role)
    await session.commit()
    return Response(status_code=204)


async def remove_tenant(context: Context, session: AsyncSession, name: str, actor: str) -> None:
    """Cancel the tenant's subscription, mark the Tenant for deletion and forget its team; audited."""
    await load_tenant(context, name)
    billing = await session.get(TenantBilling, name)
    if billing is not None and billing.subscription_id and billing.subscription_status not in ("canceled", None):
        # Cancelled first: a deleted tenant must not go on paying, and a failure here leaves the tenant as it was.
        try:
            await context.billing.cancel_subscription(billing.subscription_id)
        except BillingError as exc:
            raise Unavailable(f"tenant {name!r} was not deleted: {exc}; retry later") from None
        record_audit(session, actor, "billing.subscription_cancelled", name, subscription=billing.subscription_id)
    try:
        await context.store.delete_tenant(name)
    except StoreNotFound:
        raise NotFound(f"tenant {name!r} not found", field="name") from None
    await forget_tenant(session, name)
    await retire_billing(session, name, actor)
    record_audit(session, actor, "tenant.deleted", name)
    await session.commit()


@router.delete("/tenants/{name}", status_code=202)
async def delete_own_tenant(name: TenantName, caller: CurrentCaller, context: Context, session: Session) -> dict:
    """Delete the tenant: its subscription is cancelled and its data handled by spec.deletionPolicy."""
    await authorize(session, caller, name, Permission.DELETE_TENANT)
    await remove_tenant(context, session, name, caller.actor)
    return {"tenant": name, "deleting": True}


async def forget_tenant(session, tenant: str) -> None:
    """Delete the tenant's memberships, keys, invitations, signup and pending domains once the tenant is deleted.

    Removing the signup frees the name for a new signup. The usage ledger and
    the audit log stay, as records of what was charged; `retire_billing`
    removes the billing state.
    """
    for table in (Membership, ApiKey, Invitation, Signup, PendingDomain):
        await session.execute(delete(table).where(table.tenant == tenant))
