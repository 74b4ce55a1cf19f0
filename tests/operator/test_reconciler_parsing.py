"""Reading Tenants from API objects: unknown status fields and objects the models reject."""

from __future__ import annotations

import pytest
from operator_support import tenant_manifest
from pydantic import ValidationError

from livery.reconcile.hosts import REQUESTED, SERVED
from livery_operator.reconciler import claimed_hosts, minimal_tenant, parse_tenant


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


def test_first_claim_by_creation_time_wins():
    index = {
        "shop.example.test": [(REQUESTED, "2026-02-01T00:00:00Z", "newer"), (REQUESTED, "2026-01-01T00:00:00Z", "older")],
        "own.example.test": [(REQUESTED, "2026-03-01T00:00:00Z", "newer")],
    }

    claims = claimed_hosts(index)

    assert claims["shop.example.test"] == "older"
    assert claims["own.example.test"] == "newer"


def test_served_claim_beats_older_claim():
    index = {"shop.example.test": [(SERVED, "2026-02-01T00:00:00Z", "newer"), (REQUESTED, "2026-01-01T00:00:00Z", "older")]}

    claims = claimed_hosts(index)

    assert claims["shop.example.test"] == "newer"
