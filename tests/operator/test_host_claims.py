"""Which tenant serves a host: the shared rules and the reconcile that applies them."""

from __future__ import annotations

from operator_support import MemoryDriver, unique_name

from livery.reconcile import ReconcileSettings, reconcile_tenant
from livery.reconcile.hosts import assign_hosts, host_claims

SETTINGS = ReconcileSettings(base_domain="saas.test", url_scheme="https")


def holders(*tenants: tuple[str, str, list[str], list[str]]) -> dict[str, str]:
    """Return host -> holder for tenants given as (name, creationTimestamp, domains, status.hosts)."""
    claims: dict[str, list] = {}
    for name, created, domains, served in tenants:
        for host, claim in host_claims(name, created, domains, served, "saas.test").items():
            claims.setdefault(host, []).append(claim)
    return assign_hosts(claims)


def test_served_host_stays_with_holder():
    result = holders(
        ("older", "2026-01-01T00:00:00Z", ["shop.example.com"], []),
        ("newer", "2026-02-01T00:00:00Z", ["shop.example.com"], ["newer.saas.test", "shop.example.com"]),
    )

    assert result["shop.example.com"] == "newer"


def test_oldest_new_claimant_wins():
    result = holders(
        ("zeta", "2026-01-01T00:00:00Z", ["shop.example.com"], []),
        ("alpha", "2026-02-01T00:00:00Z", ["shop.example.com"], []),
    )

    assert result["shop.example.com"] == "zeta"


def test_name_breaks_creation_tie():
    result = holders(
        ("zeta", "2026-01-01T00:00:00Z", ["shop.example.com"], []),
        ("alpha", "2026-01-01T00:00:00Z", ["shop.example.com"], []),
    )

    assert result["shop.example.com"] == "alpha"


def test_primary_host_cannot_be_claimed():
    result = holders(
        ("own", "2026-01-01T00:00:00Z", ["vic.saas.test"], ["vic.saas.test"]),
        ("vic", "2026-02-01T00:00:00Z", [], []),
    )

    assert result["vic.saas.test"] == "vic"


def test_base_domain_names_claim_nothing():
    claims = host_claims("own", "2026-01-01T00:00:00Z", ["saas.test", "x.y.saas.test", "shop.example.com"], [], "saas.test")

    assert sorted(claims) == ["own.saas.test", "shop.example.com"]


async def test_domain_under_base_domain_is_rejected(make_tenant, plans, provisioner):
    tenant = make_tenant(unique_name("own"), "pro", domains=["vic.saas.test", "shop.own.test"])
    driver = MemoryDriver()

    result = await reconcile_tenant(
        tenant, plans["pro"], driver=driver, provisioner=provisioner, settings=SETTINGS, claimed_hosts={}
    )

    routing = result.status.condition("RoutingReady")
    assert routing.status == "False"
    assert routing.reason == "DomainNotAllowed"
    assert "vic.saas.test" in routing.message
    assert driver.routes[tenant.name].hosts == [f"{tenant.name}.saas.test", "shop.own.test"]
    assert result.status.hosts == [f"{tenant.name}.saas.test", "shop.own.test"]


async def test_downgrade_stops_serving_custom_domains(make_tenant, plans, provisioner):
    tenant = make_tenant(unique_name("down"), "pro", domains=["shop.down.test"])
    driver = MemoryDriver()
    first = await reconcile_tenant(
        tenant, plans["pro"], driver=driver, provisioner=provisioner, settings=SETTINGS, claimed_hosts={}
    )
    tenant.spec.plan = "free"
    tenant.status = first.status

    result = await reconcile_tenant(
        tenant, plans["free"], driver=driver, provisioner=provisioner, settings=SETTINGS, claimed_hosts={}
    )

    routing = result.status.condition("RoutingReady")
    assert first.status.hosts == [f"{tenant.name}.saas.test", "shop.down.test"]
    assert routing.status == "False"
    assert routing.reason == "CustomDomainsNotInPlan"
    assert "shop.down.test" in routing.message
    assert driver.routes[tenant.name].hosts == [f"{tenant.name}.saas.test"]
    assert result.status.hosts == [f"{tenant.name}.saas.test"]
