"""The operator's view of every Tenant's host claims and plan, and of every Plan.

A reconcile needs all tenants' claims to decide who holds a custom domain, and a
Plan change needs the tenants on that Plan. The directory is filled by one LIST
of Tenants and Plans at start-up and kept current by the watch events that kopf
delivers. It replaces kopf indices, because kopf 1.45 holds back every handler
until each listed object has been indexed and wakes every waiting object on each
one, which grows with the square of the number of tenants when the operator
restarts.

A Tenant created after the start-up LIST is newer than every listed one, so its
claims never outrank theirs. The reconcile of a listed tenant is therefore right
even before the new tenant's first watch event arrives.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from livery.reconcile.hosts import PRIMARY, HostClaim, host_claims


class TenantDirectory:
    """Host claims and plan name of each known Tenant, and each Plan object by name."""

    def __init__(self, base_domain: str) -> None:
        self.base_domain = base_domain
        # host -> tenant -> that tenant's claim on the host.
        self._claims_by_host: dict[str, dict[str, HostClaim]] = {}
        # tenant -> the hosts it claims, to remove its old claims on a change.
        self._hosts_of: dict[str, tuple[str, ...]] = {}
        self._plan_of: dict[str, str] = {}
        self._plans: dict[str, dict[str, Any]] = {}

    # Tenants.

    def add_tenant(self, body: Mapping[str, Any]) -> None:
        """Record a Tenant object's claims and plan, replacing what was known of it."""
        metadata = body.get("metadata") or {}
        spec = body.get("spec") or {}
        status = body.get("status") or {}
        name = metadata["name"]
        claims = host_claims(
            name,
            metadata.get("creationTimestamp") or "",
            spec.get("domains") or [],
            status.get("hosts") or [],
            self.base_domain,
        )
        self._forget_claims(name)
        for host, claim in claims.items():
            self._claims_by_host.setdefault(host, {})[name] = claim
        self._hosts_of[name] = tuple(claims)
        self._plan_of[name] = str(spec.get("plan") or "")

    def remove_tenant(self, name: str) -> None:
        self._forget_claims(name)
        self._hosts_of.pop(name, None)
        self._plan_of.pop(name, None)

    def _forget_claims(self, name: str) -> None:
        for host in self._hosts_of.get(name, ()):
            holders = self._claims_by_host.get(host)
            if holders is None:
                continue
            holders.pop(name, None)
            if not holders:
                del self._claims_by_host[host]

    def tenant_names(self) -> list[str]:
        return sorted(self._plan_of)

    def tenants_on_plan(self, plan: str) -> list[str]:
        return sorted(name for name, plan_name in self._plan_of.items() if plan_name == plan)

    def holders(self, hosts: Iterable[str]) -> dict[str, str]:
        """Return host -> the tenant whose claim on it wins, for `hosts` that anyone claims.

        A custom domain claimed by a tenant whose plan lacks the customDomains feature (or
        is missing) does not count, so the domain stays free for a tenant that may serve it.
        """
        holders = {}
        for host in hosts:
            claims = [
                claim for claim in (self._claims_by_host.get(host) or {}).values()
                if claim[0] == PRIMARY or self._may_serve_custom_domains(claim[2])
            ]
            if claims:
                holders[host] = min(claims)[2]
        return holders

    def _may_serve_custom_domains(self, tenant: str) -> bool:
        plan = self._plans.get(self._plan_of.get(tenant, ""))
        features = ((plan or {}).get("spec") or {}).get("features") or {}
        return bool(features.get("customDomains"))

    # Plans.

    def add_plan(self, body: Mapping[str, Any]) -> None:
        """Record a Plan object; only the fields the Plan model reads are kept."""
        fields = {key: copy.deepcopy(body[key]) for key in ("apiVersion", "kind", "metadata", "spec") if key in body}
        self._plans[body["metadata"]["name"]] = fields

    def remove_plan(self, name: str) -> None:
        self._plans.pop(name, None)

    def plan(self, name: str) -> dict[str, Any] | None:
        return self._plans.get(name)
