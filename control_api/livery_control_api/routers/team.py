"""A tenant's team: members, invitations, API keys, and the deletion of the tenant with its team."""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi import APIRouter
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
)
from ..security import new_api_key, new_token, token_digest
from ..billing.retire import retire_billing
from ..tables import Account, ApiKey, Invitation, Membership, PendingDomain, Signup, TenantBilling
from ..tenant_access import load_tenant

router = APIRouter(prefix="/v1", tags=["team"])


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
    token = new_token()
    invitation = Invitation(
        id=str(uuid.uuid4()), tenant=name, email=email, role=body.role, token_hash=token_digest(token),
        invited_by=caller.account_id, expires_at=utcnow() + timedelta(days=context.settings.invitation_days),
    )
    session.add(invitation)
    await session.commit()
    link = f"{context.settings.public_url.rstrip('/')}/invitations/accept?token={token}"
    await context.mailer.send(email, f"You are invited to {name}", f"Open {link} to join tenant {name} as {body.role}.")
    return InvitationView(id=invitation.id, email=email, role=body.role, expires_at=invitation.expires_at)


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
    """Remove a member; the owner cannot be removed."""
    await authorize(session, caller, name, Permission.MANAGE_MEMBERS)
    membership = await session.scalar(
        select(Membership).join(Account, Account.id == Membership.account_id).where(
            Membership.tenant == name, Account.email == email.lower()
        )
    )
    if membership is None:
        raise NotFound(f"{email} is not a member of tenant {name!r}", field="email")
    if membership.role == "owner":
        raise Forbidden("the owner cannot be removed; transfer ownership first", field="email")
    await session.delete(membership)
    await session.commit()
    return Response(status_code=204)


@router.get("/tenants/{name}/api-keys", response_model=list[ApiKeyView])
async def list_api_keys(name: TenantName, caller: CurrentCaller, session: Session) -> list[ApiKeyView]:
    """Return the tenant's API keys without their secrets."""
    await authorize(session, caller, name, Permission.MANAGE_API_KEYS)
    keys = (await session.scalars(select(ApiKey).where(ApiKey.tenant == name).order_by(ApiKey.created_at))).all()
    return [
        ApiKeyView(id=key.id, name=key.name, role=key.role, created_at=key.created_at, revoked=key.revoked_at is not None)
        for key in keys
    ]


@router.post("/tenants/{name}/api-keys", response_model=ApiKeyView, status_code=201)
async def create_api_key(
    name: TenantName, body: ApiKeyRequest, caller: CurrentCaller, session: Session
) -> ApiKeyView:
    """Create an API key scoped to the tenant; the secret is in this response only."""
    role = await authorize(session, caller, name, Permission.MANAGE_API_KEYS)
    if not may_grant(role, body.role):
        raise Forbidden(f"role {role} may not create a key with role {body.role}", field="role")
    secret = new_api_key()
    key = ApiKey(
        id=str(uuid.uuid4()), tenant=name, name=body.name, role=body.role, secret_hash=token_digest(secret),
        created_by=caller.account_id,
    )
    session.add(key)
    await session.commit()
    return ApiKeyView(id=key.id, name=key.name, role=key.role, created_at=key.created_at, key=secret)


@router.delete("/tenants/{name}/api-keys/{key_id}", status_code=204)
async def revoke_api_key(name: TenantName, key_id: KeyId, caller: CurrentCaller, session: Session) -> Response:
    """Revoke an API key; requests with it fail from now on."""
    await authorize(session, caller, name, Permission.MANAGE_API_KEYS)
    key = await session.get(ApiKey, key_id)
    if key is None or key.tenant != name:
        raise NotFound(f"API key {key_id!r} not found in tenant {name!r}", field="key_id")
    key.revoked_at = key.revoked_at or utcnow()
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
