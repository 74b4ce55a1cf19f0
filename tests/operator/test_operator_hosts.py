"""Host claims under kopf: a tenant keeps the hosts it serves when another tenant lists them.

Uses the module-scoped operator of test_operator_e2e (a new one for this module).
"""

from __future__ import annotations

from operator_support import tenant_manifest, unique_name, wait_for
from test_operator_e2e import condition, create_ready_tenant, operator, status_of  # noqa: F401 - `operator` is a fixture

from livery import naming


def ingress_hosts(kube, name: str) -> list[str]:
    ingress = kube.get("ingresses", naming.APP_NAME, naming.namespace_name(name)) or {"spec": {"rules": []}}
    return [rule["host"] for rule in ingress["spec"]["rules"]]


def routing_reason(kube, name: str, reason: str) -> dict | None:
    routing = condition(kube, name, "RoutingReady")
    return routing if routing.get("reason") == reason else None


def test_other_primary_host_not_taken(kube, operator):
    own = unique_name("own")
    victim = unique_name("vic")
    create_ready_tenant(kube, own, "pro")
    create_ready_tenant(kube, victim, "pro")

    kube.patch("tenants", own, {"spec": {"domains": [f"{victim}.saas.test"]}})

    routing = wait_for(lambda: routing_reason(kube, own, "DomainNotAllowed"), message="DomainNotAllowed")
    assert f"{victim}.saas.test" in routing["message"]
    assert ingress_hosts(kube, own) == [f"{own}.saas.test"]
    assert ingress_hosts(kube, victim) == [f"{victim}.saas.test"]
    assert status_of(kube, victim)["hosts"] == [f"{victim}.saas.test"]
    assert condition(kube, victim, "RoutingReady")["status"] == "True"


def test_served_domain_stays_with_holder(kube, operator):
    early = unique_name("early")
    later = unique_name("later")
    create_ready_tenant(kube, early, "pro")
    create_ready_tenant(kube, later, "pro", domains=["shop.holder.test"])

    kube.patch("tenants", early, {"spec": {"domains": ["shop.holder.test"]}})

    routing = wait_for(lambda: routing_reason(kube, early, "HostConflict"), message="HostConflict")
    assert "shop.holder.test" in routing["message"]
    assert ingress_hosts(kube, early) == [f"{early}.saas.test"]
    assert ingress_hosts(kube, later) == [f"{later}.saas.test", "shop.holder.test"]
    assert "shop.holder.test" in status_of(kube, later)["hosts"]


def test_new_claimant_waits_for_release(kube, operator):
    holder = unique_name("hold")
    claimant = unique_name("claim")
    create_ready_tenant(kube, holder, "pro", domains=["shop.release.test"])
    kube.create("tenants", tenant_manifest(claimant, "pro", domains=["shop.release.test"]))
    wait_for(lambda: routing_reason(kube, claimant, "HostConflict"), message="HostConflict")

    kube.patch("tenants", holder, {"spec": {"domains": []}})

    wait_for(lambda: "shop.release.test" in ingress_hosts(kube, claimant), timeout=30, message="claimant serves the host")
