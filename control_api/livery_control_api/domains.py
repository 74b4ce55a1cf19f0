"""Custom domains: claimed with a DNS TXT challenge, unique across tenants, never under the base domain.

A claim stays pending until its TXT record verifies, for at most
`PENDING_DAYS`. Several tenants may claim one domain: the first that proves
it with DNS (or an admin's write) gets it, so a claim that never verifies
cannot keep a domain from its owner. Pending and verified domains together
count against `MAX_DOMAINS` per tenant.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from livery.models.tenant import MAX_DOMAINS, Tenant

from .context import AppContext
from .dependencies import utcnow
from .errors import Conflict, Forbidden, InvalidInput, NotFound
from .schemas import DomainView
from .tables import PendingDomain
from .tenant_access import apply_spec, load_plan, load_tenant

CHALLENGE_LABEL = "_livery-challenge"
CHALLENGE_PREFIX = "livery-verification="
PENDING_DAYS = 7


def _live(statement):
    """Restrict a PendingDomain query to claims that have not expired."""
    return statement.where(PendingDomain.created_at >= utcnow() - timedelta(days=PENDING_DAYS))


def challenge_name(domain: str) -> str:
    return f"{CHALLENGE_LABEL}.{domain}"


def pending_view(row: PendingDomain) -> DomainView:
    return DomainView(
        domain=row.domain, verified=False, txt_name=challenge_name(row.domain), txt_value=CHALLENGE_PREFIX + row.token
    )


async def list_domains(session: AsyncSession, tenant: Tenant) -> list[DomainView]:
    verified = [DomainView(domain=domain, verified=True) for domain in tenant.spec.domains or []]
    pending = (await session.scalars(_live(select(PendingDomain).where(PendingDomain.tenant == tenant.name)))).all()
    return verified + [pending_view(row) for row in pending if row.domain not in (tenant.spec.domains or [])]


async def _claimed_by(context: AppContext, domain: str) -> str | None:
    """Return the tenant whose spec.domains contains `domain`, if any."""
    for other in await context.store.list_tenants():
        if domain in (other.spec.domains or []):
            return other.name
    return None


def _check_not_platform_host(context: AppContext, domain: str) -> None:
    base = context.settings.base_domain
    if domain == base or domain.endswith("." + base):
        raise InvalidInput(
            f"domain {domain!r} is under the platform's base domain {base!r}; every tenant already has "
            f"<name>.{base}, so add a domain you own instead",
            field="domain",
        )


async def check_domains_available(context: AppContext, session: AsyncSession, name: str, domains: list[str]) -> None:
    """Reject `domains` for tenant `name` when one is under the base domain or claimed by another tenant.

    Admin writes through `/v1/admin/apply` skip the TXT challenge but not these rules,
    because a host served for two tenants, or a tenant's primary host taken as
    another tenant's custom domain, would route one tenant's users to another.
    """
    if not domains:
        return
    for domain in domains:
        _check_not_platform_host(context, domain)
    wanted = set(domains)
    for other in await context.store.list_tenants():
        clash = wanted & set(other.spec.domains or [])
        if other.name != name and clash:
            raise Conflict(
                f"domain {sorted(clash)[0]!r} is already used by another tenant", field="spec.domains", code="domain_taken"
            )
    # Other tenants' pending claims lose to this verified write.
    await session.execute(delete(PendingDomain).where(PendingDomain.domain.in_(wanted), PendingDomain.tenant != name))


async def request_domain(context: AppContext, session: AsyncSession, name: str, domain: str) -> DomainView:
    """Reserve `domain` for the tenant and return the TXT record that proves ownership."""
    tenant = await load_tenant(context, name)
    plan = await load_plan(context, tenant.spec.plan)
    if not plan.spec.features.custom_domains:
        raise Forbidden(
            f"plan {plan.name!r} does not include custom domains; upgrade to a plan with customDomains",
            field="domain", code="feature_unavailable",
        )
    _check_not_platform_host(context, domain)
    if domain in (tenant.spec.domains or []):
        raise Conflict(f"domain {domain!r} is already verified for this tenant", field="domain")
    owner = await _claimed_by(context, domain)
    if owner is not None:
        raise Conflict(f"domain {domain!r} is already used by another tenant", field="domain", code="domain_taken")

    await session.execute(
        delete(PendingDomain).where(PendingDomain.created_at < utcnow() - timedelta(days=PENDING_DAYS))
    )
    existing = await session.get(PendingDomain, (domain, name))
    if existing is not None:
        await session.commit()
        return pending_view(existing)
    pending = await session.scalar(
        _live(select(func.count()).select_from(PendingDomain).where(PendingDomain.tenant == name))
    )
    if len(tenant.spec.domains or []) + pending >= MAX_DOMAINS:
        raise InvalidInput(
            f"a tenant may have at most {MAX_DOMAINS} custom domains, pending ones included; it has "
            f"{len(tenant.spec.domains or [])} verified and {pending} pending; remove one first",
            field="domain",
        )
    row = PendingDomain(domain=domain, tenant=name, token=secrets.token_hex(16))
    session.add(row)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise Conflict(f"domain {domain!r} is already used by another tenant", field="domain", code="domain_taken") from None
    return pending_view(row)


async def verify_domain(context: AppContext, session: AsyncSession, name: str, domain: str) -> DomainView:
    """Add `domain` to spec.domains once its TXT record carries the tenant's token."""
    row = await session.get(PendingDomain, (domain, name), with_for_update=True)
    if row is None or row.created_at < utcnow() - timedelta(days=PENDING_DAYS):
        raise NotFound(
            f"no pending domain {domain!r} for tenant {name!r} (claims expire after {PENDING_DAYS} days); add it first",
            field="domain",
        )
    expected = CHALLENGE_PREFIX + row.token
    records = await context.dns.txt_records(challenge_name(domain))
    if expected not in records:
        raise Conflict(
            f"TXT record {challenge_name(domain)} with value {expected} not found; create it at your DNS provider "
            "and retry (DNS changes can take a few minutes)",
            field="domain", code="dns_unverified",
        )
    # Checked again here: another tenant may have been given the domain by an admin meanwhile.
    owner = await _claimed_by(context, domain)
    if owner is not None and owner != name:
        raise Conflict(f"domain {domain!r} is already used by another tenant", field="domain", code="domain_taken")
    tenant = await load_tenant(context, name)
    domains = list(tenant.spec.domains or [])
    if domain not in domains:
        domains.append(domain)
        await apply_spec(context, name, {"domains": domains})
    # The other tenants' claims on this domain lost.
    await session.execute(delete(PendingDomain).where(PendingDomain.domain == domain))
    await session.commit()
    return DomainView(domain=domain, verified=True)


async def remove_domain(context: AppContext, session: AsyncSession, name: str, domain: str) -> None:
    tenant = await load_tenant(context, name)
    row = await session.get(PendingDomain, (domain, name))
    domains = list(tenant.spec.domains or [])
    if domain not in domains and row is None:
        raise NotFound(f"tenant {name!r} has no domain {domain!r}", field="domain")
    if domain in domains:
        domains.remove(domain)
        await apply_spec(context, name, {"domains": domains or None})
    if row is not None:
        await session.delete(row)
        await session.commit()
