"""Derived names and values that every part of Livery shares."""

from __future__ import annotations

import pytest

from livery.models.plan import Plan
from livery.models.tenant import Tenant
from livery.naming import (
    effective_isolation,
    effective_limits,
    label_selector,
    labels,
    namespace_name,
    postgres_identifier,
    primary_host,
    quoted_identifier,
    storage_prefix,
    tenant_hosts,
)

PLAN = Plan.model_validate(
    {
        "apiVersion": "livery.dev/v1alpha1",
        "kind": "Plan",
        "metadata": {"name": "pro"},
        "spec": {
            "displayName": "Pro",
            "isolation": "schema",
            "limits": {"users": 25, "storageMiB": 1024, "apiRequestsPerMinute": 600, "replicas": 2},
        },
    }
)


def tenant(name: str = "acme-corp", **spec: object) -> Tenant:
    return Tenant.model_validate(
        {
            "apiVersion": "livery.dev/v1alpha1",
            "kind": "Tenant",
            "metadata": {"name": name},
            "spec": {"displayName": "Acme", "plan": "pro", **spec},
        }
    )


def test_namespace_name() -> None:
    assert namespace_name("acme-corp") == "tenant-acme-corp"


def test_labels_and_selector() -> None:
    assert labels("acme") == {"app.kubernetes.io/managed-by": "livery", "livery.dev/tenant": "acme"}
    assert labels("acme", "app")["app.kubernetes.io/component"] == "app"
    assert label_selector("acme") == "app.kubernetes.io/managed-by=livery,livery.dev/tenant=acme"


def test_postgres_identifier_replaces_dashes() -> None:
    assert postgres_identifier("acme-corp") == "tenant_acme_corp"


def test_postgres_identifier_of_longest_name_fits() -> None:
    name = "a" + "-b" * 19 + "c"  # 40 characters, the longest valid tenant name

    identifier = postgres_identifier(name)

    assert len(name) == 40
    assert len(identifier.encode()) <= 63
    assert identifier == "tenant_" + name.replace("-", "_")


def test_overlong_identifier_gets_hash_suffix() -> None:
    first = postgres_identifier("x" * 70 + "a")
    second = postgres_identifier("x" * 70 + "b")

    assert len(first.encode()) == 63
    assert first != second


def test_quoted_identifier_renders_with_quotes() -> None:
    assert quoted_identifier("acme-corp").as_string(None) == '"tenant_acme_corp"'


def test_hosts_primary_first_without_duplicates() -> None:
    acme = tenant(domains=["shop.acme.example.com", "acme-corp.example.com"])

    assert primary_host("acme-corp", "example.com") == "acme-corp.example.com"
    assert tenant_hosts(acme, "example.com") == ["acme-corp.example.com", "shop.acme.example.com"]


def test_effective_limits_apply_overrides() -> None:
    limits = effective_limits(PLAN, tenant(limits={"users": 100}))

    assert limits.users == 100
    assert limits.storage_mi_b == 1024
    assert limits.replicas == 2
    assert limits.cpu == "500m"


def test_effective_limits_without_overrides() -> None:
    assert effective_limits(PLAN, tenant()) == PLAN.spec.limits.merged_with(None)


@pytest.mark.parametrize(("own", "expected"), [(None, "schema"), ("database", "database")])
def test_effective_isolation(own: str | None, expected: str) -> None:
    assert effective_isolation(PLAN, tenant(isolation=own)) == expected


def test_storage_prefix() -> None:
    assert storage_prefix("acme") == "tenants/acme/"
