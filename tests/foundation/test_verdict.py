"""The pydantic models and the CRD schema accept and reject exactly the same manifests."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from livery.models.plan import Plan
from livery.models.rules import COLOUR, HOSTNAME, RESERVED_TENANT_NAMES, TENANT_NAME_PATTERN
from livery.models.tenant import Tenant, check_tenant_update

from crd_verdict import crd_errors

MODELS = {"Tenant": Tenant, "Plan": Plan}


def model_accepts(document: dict[str, Any]) -> bool:
    try:
        MODELS[document["kind"]].model_validate(document)
    except ValidationError:
        return False
    return True


def valid_tenant(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "livery.dev/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": "acme"},
        "spec": {"displayName": "Acme", "plan": "free", **spec},
    }


tenant_names = st.one_of(
    st.from_regex(TENANT_NAME_PATTERN, fullmatch=True).filter(lambda name: len(name) <= 45),
    st.sampled_from(
        [*RESERVED_TENANT_NAMES, "1", "9lives", "a", "ab", "abc", "a--b", "xn--acme", "kube-acme", "tenant-acme",
         "Acme", "acme-", "-acme", "acme_corp", "acme.corp", "a" * 40, "a" * 41, "acme\n", "acme-corp"]
    ),
    st.text(alphabet="abz09-_.A\n", max_size=44),
)
colours = st.one_of(
    st.from_regex(COLOUR.pattern, fullmatch=True),
    st.sampled_from(["blue", "#fff", "#0000000", "#000000</style><img src=x onerror=alert(1)>", "#00000g", ""]),
    st.text(alphabet="#0aFg<", max_size=8),
)
hosts = st.one_of(
    st.from_regex(HOSTNAME.pattern, fullmatch=True),
    st.sampled_from(
        ["shop.acme.com", "*.acme.com", "1.2.3.4", "acme.com:443", "ACME.com", "localhost", "a..b", "acme.com.",
         "-acme.com", "acme-.com", "xn--bcher-kva.example", "a" * 64 + ".com", ("a" * 63 + ".") * 4 + "com"]
    ),
    st.text(alphabet="ab.-*:1", max_size=20),
)
integers = st.one_of(st.integers(min_value=-3, max_value=200_000), st.sampled_from(["3", 1.5, 5.0, 0.0, True, None]))
short_text = st.one_of(
    st.text(max_size=110),
    st.sampled_from(["", " ", "x" * 100, "x" * 101, "A\x00B", "Acme\x1b[31m", "\u00e9" * 100, "Acme\n"]),
    st.none(),
    st.just(7),
)
isolation = st.sampled_from(["database", "schema", "shared", "cluster", "", None, 1])
plan_names = st.one_of(st.sampled_from(["free", "pro", "enterprise", "Pro", "-x", "p" * 63, "p" * 64, ""]), st.text(max_size=5))


valid_names = st.from_regex(TENANT_NAME_PATTERN, fullmatch=True).filter(
    lambda name: 3 <= len(name) <= 40 and name not in RESERVED_TENANT_NAMES and not name.startswith(("kube-", "tenant-"))
)
valid_hosts = st.from_regex(HOSTNAME.pattern, fullmatch=True).filter(lambda host: len(host) <= 253)
valid_colours = st.from_regex(COLOUR.pattern, fullmatch=True)
valid_display_names = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=100
).filter(lambda text: text.strip(" "))


@st.composite
def valid_specs(draw: st.DrawFn) -> dict[str, Any]:
    """Draw a valid Tenant spec with a random subset of the optional fields."""
    spec: dict[str, Any] = {
        "displayName": draw(valid_display_names),
        "plan": draw(st.sampled_from(["free", "pro", "enterprise", "p" * 63])),
    }
    if draw(st.booleans()):
        spec["isolation"] = draw(st.sampled_from(["database", "schema", "shared"]))
    if draw(st.booleans()):
        spec["domains"] = draw(st.lists(valid_hosts, max_size=3, unique=True))
    if draw(st.booleans()):
        spec["branding"] = {
            "primaryColor": draw(valid_colours),
            "accentColor": draw(valid_colours),
            "productName": draw(valid_display_names),
            "logoUrl": draw(st.sampled_from(["https://cdn.example.com/logo.png", "/branding/logo.png"])),
            "customCss": draw(st.sampled_from(["", "a{}", "x" * 20480])),
        }
    if draw(st.booleans()):
        spec["suspended"] = draw(st.booleans())
    if draw(st.booleans()):
        spec["deletionPolicy"] = draw(st.sampled_from(["Retain", "Delete", "Snapshot"]))
    if draw(st.booleans()):
        spec["limits"] = {"users": draw(st.integers(1, 100_000)), "cpu": "500m", "memory": "2Gi"}
    if draw(st.booleans()):
        spec["owner"] = {"email": "owner@acme.example.com"}
    return spec


# Each breakage sets one field to a value that may or may not be valid.
BREAKAGES: dict[str, st.SearchStrategy[Any]] = {
    "metadata.name": tenant_names,
    "spec.displayName": short_text,
    "spec.plan": plan_names,
    "spec.isolation": isolation,
    "spec.domains": st.lists(hosts, max_size=4),
    "spec.domains.duplicate": st.just(None),
    "spec.branding.primaryColor": colours,
    "spec.branding.accentColor": colours,
    "spec.branding.productName": short_text,
    "spec.branding.logoUrl": st.sampled_from(
        ["https://cdn.example.com/logo.png", "http://cdn.example.com/logo.png", "javascript:alert(1)",
         "https://x.com/a b.png", "https://x.com/a).png", "/branding/logo.png", "/branding/../x"]
    ),
    "spec.branding.customCss": st.sampled_from(["", "a{}", "x" * 20480, "x" * 20481, "\u00e9" * 10241, "a{}\x00"]),
    "spec.suspended": st.sampled_from([True, False, "true", 1, None]),
    "spec.deletionPolicy": st.sampled_from(["Retain", "Delete", "Snapshot", "retain", "Archive"]),
    "spec.limits.users": integers,
    "spec.limits.storageMiB": integers,
    "spec.limits.replicas": integers,
    "spec.limits.cpu": st.sampled_from(["500m", "1", "1.5", "0.5m", "-1", "abc", "2000000m"]),
    "spec.limits.memory": st.sampled_from(["512Mi", "2Gi", "1G", "0Mi", "1.5Gi", "Mi"]),
    "spec.owner.email": st.sampled_from(["owner@acme.com", "owner", "a@b", "two@@acme.com", "o w@acme.com", "x@y.z"]),
    "spec.bogus": st.just("x"),
}


@st.composite
def tenant_manifests(draw: st.DrawFn) -> dict[str, Any]:
    """Draw a valid Tenant manifest, then change up to three fields to arbitrary values."""
    document = {
        "apiVersion": "livery.dev/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": draw(valid_names)},
        "spec": draw(valid_specs()),
    }
    for path in draw(st.lists(st.sampled_from(sorted(BREAKAGES)), max_size=3, unique=True)):
        value = draw(BREAKAGES[path])
        if path == "spec.domains.duplicate":
            domains = document["spec"].setdefault("domains", [])
            if domains:
                domains.append(domains[0])
            continue
        *parents, last = path.split(".")
        node = document
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return document


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(tenant_manifests())
def test_tenant_verdicts_agree(document: dict[str, Any]) -> None:
    errors = crd_errors(document)

    assert model_accepts(document) == (not errors), errors


@settings(max_examples=200, deadline=None)
@given(
    name=st.one_of(st.sampled_from(["free", "pro", "x", "Pro", "p" * 64]), st.text(max_size=4)),
    users=integers,
    storage=integers,
    rate=integers,
    isolation=isolation,
    price=st.one_of(st.sampled_from(["price_1Abc", "price_", "prod_1", "price_a-b"]), st.none()),
    cents=integers,
)
def test_plan_verdicts_agree(
    name: str, users: Any, storage: Any, rate: Any, isolation: Any, price: Any, cents: Any
) -> None:
    document = {
        "apiVersion": "livery.dev/v1alpha1",
        "kind": "Plan",
        "metadata": {"name": name},
        "spec": {
            "displayName": "Plan",
            "isolation": isolation,
            "limits": {"users": users, "storageMiB": storage, "apiRequestsPerMinute": rate},
            "billing": {"stripePriceId": price, "monthlyPriceCents": cents},
        },
    }
    errors = crd_errors(document)

    assert model_accepts(document) == (not errors), errors


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(name=valid_names, spec=valid_specs())
def test_valid_manifests_accepted_by_both(name: str, spec: dict[str, Any]) -> None:
    document = {"apiVersion": "livery.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": name}, "spec": spec}

    assert crd_errors(document) == []
    assert model_accepts(document)


@pytest.mark.parametrize(
    "name", ["1", "9lives", "a", "ab", "a--b", "xn--acme", "admin", "kube-system", "tenant-x", "acme\n", "\uff41cme"]
)
def test_bad_tenant_names_rejected_by_both(name: str) -> None:
    document = valid_tenant()
    document["metadata"]["name"] = name

    assert crd_errors(document)
    assert not model_accepts(document)


@pytest.mark.parametrize(
    ("old", "new", "allowed"),
    [
        ("shared", "shared", True),
        ("shared", "schema", False),
        ("database", None, True),
        (None, "schema", True),
        (None, None, True),
    ],
)
def test_isolation_change_rule_agrees(old: str | None, new: str | None, allowed: bool) -> None:
    before = valid_tenant(isolation=old)
    after = valid_tenant(isolation=new)

    api_errors = crd_errors(after, old=before)
    model_errors = check_tenant_update(
        Tenant.model_validate(before).spec, Tenant.model_validate(after).spec
    )

    assert (not api_errors) is allowed
    assert (not model_errors) is allowed
