"""Reading Tenants from API objects: unknown status fields and objects the models reject."""

from __future__ import annotations

import pytest
from operator_support import load_plan, tenant_manifest
from pydantic import ValidationError

from livery_operator.directory import TenantDirectory
from livery_operator.reconciler import minimal_tenant, parse_tenant


def test_parse_drops_status_with_unknown_fields():
    body = tenant_manifest("acme", "pro")
    body["status"] = {"phase": "Ready", "kopf": {"progress": {}}}

    tenant = parse_tenant(body)

    assert tenant.name == "acme"
    assert tenant.status is None


def test_parse_rejects_invalid_spec():
    body = tenant_manifest("acme", "pro", primaryColor="red")

    with pytest.raises(ValidationError):
        parse_tenant(body)


def test_minimal_tenant_keeps_valid_deletion_policy():
    body = {"metadata": {"name": "acme", "uid": "u-1"}, "spec": {"deletionPolicy": "Delete", "plan": 7}}

    tenant = minimal_tenant(body)

    assert tenant.spec.deletion_policy == "Delete"
    assert tenant.spec.plan == "unknown"
    assert tenant.spec.isolation is None


def test_minimal_tenant_defaults_to_retain():
    tenant = minimal_tenant({"metadata": {"name": "acme"}, "spec": {"deletionPolicy": "Shred"}})

    assert tenant.spec.deletion_policy == "Retain"


def directory_with_plans() -> TenantDirectory:
    """Return a directory with the bundled plans: pro has the customDomains feature, free does not."""
    directory = TenantDirectory("saas.test")
    for plan in ("free", "pro"):
        directory.add_plan(load_plan(plan).to_json())
    return directory


def tenant_body(name: str, created: str, domains: list[str], served: list[str] | None = None, plan: str = "pro") -> dict:
    body = tenant_manifest(name, plan, domains=domains)
    body["metadata"]["creationTimestamp"] = created
    if served is not None:
        body["status"] = {"hosts": served}
    return body


def test_first_claim_by_creation_time_wins():
    directory = directory_with_plans()
    directory.add_tenant(tenant_body("newer", "2026-02-01T00:00:00Z", ["shop.example.test", "own.example.test"]))
    directory.add_tenant(tenant_body("older", "2026-01-01T00:00:00Z", ["shop.example.test"]))

    holders = directory.holders(["shop.example.test", "own.example.test", "unclaimed.example.test"])

    assert holders["shop.example.test"] == "older"
    assert holders["own.example.test"] == "newer"
    assert "unclaimed.example.test" not in holders


def test_served_claim_beats_older_claim():
    directory = directory_with_plans()
    directory.add_tenant(tenant_body("newer", "2026-02-01T00:00:00Z", ["shop.example.test"], served=["shop.example.test"]))
    directory.add_tenant(tenant_body("older", "2026-01-01T00:00:00Z", ["shop.example.test"]))

    holders = directory.holders(["shop.example.test"])

    assert holders["shop.example.test"] == "newer"


def test_directory_drops_claims_of_changed_and_removed_tenants():
    directory = directory_with_plans()
    directory.add_tenant(tenant_body("older", "2026-01-01T00:00:00Z", ["shop.example.test"]))
    directory.add_tenant(tenant_body("newer", "2026-02-01T00:00:00Z", ["shop.example.test"]))

    directory.add_tenant(tenant_body("older", "2026-01-01T00:00:00Z", []))
    assert directory.holders(["shop.example.test"]) == {"shop.example.test": "newer"}

    directory.remove_tenant("newer")
    assert directory.holders(["shop.example.test"]) == {}
    assert directory.tenant_names() == ["older"]
    assert directory.tenants_on_plan("pro") == ["older"]


def test_claim_without_custom_domain_feature_ignored():
    directory = directory_with_plans()
    directory.add_tenant(tenant_body("older", "2026-01-01T00:00:00Z", ["shop.example.test"], plan="free"))
    directory.add_tenant(tenant_body("newer", "2026-02-01T00:00:00Z", ["shop.example.test"]))

    holders = directory.holders(["shop.example.test", "older.saas.test"])

    assert holders["shop.example.test"] == "newer"
    assert holders["older.saas.test"] == "older"
