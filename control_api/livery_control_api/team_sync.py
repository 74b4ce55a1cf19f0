"""Keep each tenant's team in line with the Tenant resource, which can change outside the control API.

Admins delete, re-create and edit Tenants with kubectl (or `livery apply`), so
the control API's own rows can outlive the Tenant they were made for. `sync_teams`
runs periodically and `sync_tenant_team` after an admin apply:

- the team of a name is its memberships, API keys, invitations, completed signup
  and pending domains. It is forgotten when the Tenant no longer exists. It is
  also forgotten when the Tenant under that name has another uid than the one
  recorded in `tenant_bindings`, because it was deleted and created again;
- the owner role belongs to the account named in `spec.owner.email`. Any other
  account with that role becomes an admin. The named account becomes the owner once
  it exists and has confirmed its email, because signing up proves nothing about
  the address.

A signup still waiting for payment is kept: its Tenant does not exist yet.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from sqlalchemy import bindparam, delete, select
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncSession

from livery.models.tenant import Tenant

from .audit import record_audit
from .context import AppContext
from .permissions import Role
from .tables import Account, ApiKey, Invitation, Membership, PendingDomain, Signup, TenantBinding

logger = logging.getLogger("livery.control_api.team_sync")

SYNC_ACTOR = "livery"
TEAM_TABLES = (Membership, ApiKey, Invitation, PendingDomain)


async def forget_team(session: AsyncSession, tenant: str, *, keep_pending_signup: bool) -> None:
    """Delete the rows that give anyone a part in `tenant`, and its signup unless a payment for it is pending."""
    for table in TEAM_TABLES:
        await session.execute(delete(table).where(table.tenant == tenant))
    signups = delete(Signup).where(Signup.tenant == tenant)
    if keep_pending_signup:
        signups = signups.where(Signup.state != "pending_payment")
    await session.execute(signups)
    await session.execute(delete(TenantBinding).where(TenantBinding.tenant == tenant))


def _bind_statement() -> Insert:
    statement = insert(TenantBinding.__table__).values(tenant=bindparam("tenant"), uid=bindparam("uid"))
    return statement.on_conflict_do_update(index_elements=["tenant"], set_={"uid": statement.excluded.uid})


# Built once: every signup runs it, and building the statement cost more than sending it.
BIND = _bind_statement()


async def bind(session: AsyncSession, tenant: Tenant) -> None:
    """Record the uid of `tenant` as the one its name's team belongs to."""
    if tenant.metadata.uid:
        await session.execute(BIND, {"tenant": tenant.name, "uid": tenant.metadata.uid})


async def sync_teams(context: AppContext) -> None:
    """Forget the teams of deleted or re-created Tenants and move the owner role to `spec.owner`."""
    async with context.sessions() as session:
        # Team rows are read before the Tenants are listed. A signup commits its rows only
        # after its Tenant exists, so every name read here whose Tenant exists is in the list.
        names = await _names_with_team(session)
        bindings = {row.tenant: row.uid for row in (await session.scalars(select(TenantBinding))).all()}
        tenants = {tenant.name: tenant for tenant in await context.store.list_tenants()}

        for name in sorted(names | bindings.keys()):
            tenant = tenants.get(name)
            if tenant is None:
                await _forget(session, name, "its Tenant no longer exists")
            elif name in bindings and tenant.metadata.uid and bindings[name] != tenant.metadata.uid:
                await _forget(session, name, "its Tenant was deleted and created again")
                await bind(session, tenant)
            elif name not in bindings:
                await bind(session, tenant)

        owners = await _owner_emails(session)
        for name, tenant in tenants.items():
            owner_email = _owner_email(tenant)
            if owner_email is not None and owners.get(name, set()) != {owner_email}:
                await sync_owner(session, tenant)
        await session.commit()


async def sync_tenant_team(session: AsyncSession, tenant: Tenant, *, created: bool) -> None:
    """Apply the rules above to one Tenant that an admin has just applied; `created` when it is new."""
    if created:
        await _forget(session, tenant.name, "a new Tenant took the name")
        await bind(session, tenant)
    await sync_owner(session, tenant)


async def sync_owner(session: AsyncSession, tenant: Tenant) -> None:
    """Give the owner role to the account named in `spec.owner` and make every other owner an admin."""
    owner_email = _owner_email(tenant)
    if owner_email is None:
        return
    rows = (
        await session.execute(
            select(Membership, Account.email)
            .join(Account, Account.id == Membership.account_id)
            .where(Membership.tenant == tenant.name, Membership.role == Role.OWNER.value)
        )
    ).all()
    for membership, email in rows:
        if email != owner_email:
            membership.role = Role.ADMIN.value
            record_audit(session, SYNC_ACTOR, "member.owner_replaced", tenant.name, email=email, owner=owner_email)

    account = await session.scalar(select(Account).where(Account.email == owner_email))
    if account is None or any(email == owner_email for _, email in rows):
        return
    if account.email_verified_at is None:
        logger.info("tenant %s: owner %s gets the owner role once the email is confirmed", tenant.name, owner_email)
        return
    await grant_owner(session, tenant.name, account.id)
    record_audit(session, SYNC_ACTOR, "member.owner_set", tenant.name, email=owner_email)


async def grant_owner(session: AsyncSession, tenant: str, account_id: str) -> None:
    """Make the account the tenant's owner, adding the membership or raising its role."""
    statement = insert(Membership).values(account_id=account_id, tenant=tenant, role=Role.OWNER.value)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[Membership.account_id, Membership.tenant], set_={"role": Role.OWNER.value}
        )
    )


async def _forget(session: AsyncSession, name: str, reason: str) -> None:
    await forget_team(session, name, keep_pending_signup=True)
    record_audit(session, SYNC_ACTOR, "team.forgotten", name, reason=reason)
    logger.info("forgot the team of tenant %s: %s", name, reason)


async def _names_with_team(session: AsyncSession) -> set[str]:
    names: set[str] = set()
    for table in TEAM_TABLES:
        names.update((await session.scalars(select(table.tenant).distinct())).all())
    completed = select(Signup.tenant).where(Signup.state != "pending_payment")
    names.update((await session.scalars(completed)).all())
    return names


async def _owner_emails(session: AsyncSession) -> dict[str, set[str]]:
    rows = await session.execute(
        select(Membership.tenant, Account.email)
        .join(Account, Account.id == Membership.account_id)
        .where(Membership.role == Role.OWNER.value)
    )
    owners: dict[str, set[str]] = defaultdict(set)
    for tenant, email in rows:
        owners[tenant].add(email)
    return owners


def _owner_email(tenant: Tenant) -> str | None:
    return tenant.spec.owner.email.lower() if tenant.spec.owner is not None else None
