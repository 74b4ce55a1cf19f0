"""Which tenant serves each host.

Every tenant is served at its primary host `<name>.<base domain>`, which no other
tenant can take. A custom domain from spec.domains is served only when:

- it is neither the base domain nor under it, because those names are the platform's
  and the primary hosts of other tenants;
- no other tenant holds it. A tenant holds a custom domain it already serves (listed
  in its status.hosts), so a later claim never takes a host away from a running
  tenant. Among tenants that do not serve it yet, the oldest creationTimestamp wins,
  then the smallest name.

The operator (from its directory of Tenants and Plans) and the embedded runtime (from its
store) both build the claims with `host_claims` and pick the holders with `assign_hosts`. A
tenant whose plan lacks the customDomains feature claims only its primary host, so a domain
it lists but may not serve stays free for a tenant that may.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .. import naming
from ..models.tenant import Tenant

# Precedence of a claim, smallest first.
PRIMARY = 0
SERVED = 1
REQUESTED = 2

# (precedence, creationTimestamp, tenant name): the smallest claim of a host wins it.
HostClaim = tuple[int, str, str]


def domain_allowed(host: str, base_domain: str) -> bool:
    """Return whether `host` may be a custom domain: not the base domain and not under it."""
    return host != base_domain and not host.endswith("." + base_domain)


def host_claims(
    name: str, created: str, domains: Iterable[str], served: Iterable[str], base_domain: str
) -> dict[str, HostClaim]:
    """Return the claim of tenant `name` on each host it may be served at.

    `served` is the tenant's status.hosts. Custom domains that `domain_allowed`
    rejects claim nothing.
    """
    primary = naming.primary_host(name, base_domain)
    claims: dict[str, HostClaim] = {primary: (PRIMARY, created, name)}
    already_served = set(served)
    for host in domains:
        if host in claims or not domain_allowed(host, base_domain):
            continue
        precedence = SERVED if host in already_served else REQUESTED
        claims[host] = (precedence, created, name)
    return claims


def tenant_host_claims(tenant: Tenant, base_domain: str, *, custom_domains: bool = True) -> dict[str, HostClaim]:
    """Return `host_claims` of a Tenant model; without `custom_domains` (its plan lacks them) only the primary host."""
    served = (tenant.status.hosts if tenant.status is not None else None) or []
    created = tenant.metadata.creation_timestamp or ""
    domains = (tenant.spec.domains or []) if custom_domains else []
    return host_claims(tenant.name, str(created), domains, served, base_domain)


def assign_hosts(claims: Mapping[str, Iterable[HostClaim]]) -> dict[str, str]:
    """Return host -> the tenant whose claim on it wins."""
    holders: dict[str, str] = {}
    for host, entries in claims.items():
        ranked = sorted(entries)
        if ranked:
            holders[host] = ranked[0][2]
    return holders


@dataclass
class HostSplit:
    """The hosts one tenant requests, sorted by whether it may serve them."""

    served: list[str] = field(default_factory=list)
    # Custom domains that another tenant holds: host -> holder.
    conflicts: dict[str, str] = field(default_factory=dict)
    # Custom domains that `domain_allowed` rejects.
    not_allowed: list[str] = field(default_factory=list)
    # Custom domains of a tenant whose plan lacks the customDomains feature.
    not_in_plan: list[str] = field(default_factory=list)


def split_hosts(
    tenant: Tenant, base_domain: str, holders: Mapping[str, str], *, custom_domains: bool = True
) -> HostSplit:
    """Sort the tenant's hosts into served, held by another tenant, not allowed and not in the plan.

    A host missing from `holders` is served, so a caller that knows no other tenant
    passes an empty mapping. With `custom_domains` False (a plan without the
    feature, for example after a downgrade) only the primary host is served.
    """
    split = HostSplit()
    primary = naming.primary_host(tenant.name, base_domain)
    for host in naming.tenant_hosts(tenant, base_domain):
        if host != primary and not domain_allowed(host, base_domain):
            split.not_allowed.append(host)
            continue
        if host != primary and not custom_domains:
            split.not_in_plan.append(host)
            continue
        holder = holders.get(host, tenant.name) if host != primary else tenant.name
        if holder == tenant.name:
            split.served.append(host)
        else:
            split.conflicts[host] = holder
    return split
