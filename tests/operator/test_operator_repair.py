"""Repairs under kopf: what is removed or changed by hand comes back within the drift interval.

Uses the module-scoped operator of test_operator_e2e (a new one for this module),
whose provisioner caches `ensure_database` for the default 600 s.
"""

from __future__ import annotations

import base64

import psycopg
import pytest
from operator_support import unique_name, wait_for
from psycopg import sql
from test_operator_e2e import create_ready_tenant, operator, provisioner_probe, secret_of  # noqa: F401 - fixtures

from livery import naming
from livery.reconcile import SECRET_DATABASE_PASSWORD
from livery_operator.builders import (
    LIMIT_RANGE_NAME,
    NETWORK_POLICY_NAME,
    POD_SECURITY_ENFORCE_LABEL,
    QUOTA_NAME,
    SECRET_CHECKSUM_ANNOTATION,
)

DROP_BY_HAND = {
    "database": ("enterprise", "DROP DATABASE {} WITH (FORCE)", None),
    "schema": ("pro", "DROP SCHEMA {} CASCADE", naming.SCHEMA_DATABASE),
}


def database_url(postgres_url: str, database: str | None) -> str:
    if database is None:
        return postgres_url
    return psycopg.conninfo.make_conninfo(postgres_url, dbname=database)


@pytest.mark.parametrize("isolation", ["database", "schema"])
def test_dropped_database_is_restored(isolation, kube, operator, provisioner_probe, postgres_url):
    plan, statement, database = DROP_BY_HAND[isolation]
    name = unique_name(f"dropped-{isolation[:3]}")
    create_ready_tenant(kube, name, plan)
    assert provisioner_probe(name, isolation)

    with psycopg.connect(database_url(postgres_url, database), autocommit=True) as connection:
        connection.execute(sql.SQL(statement).format(sql.Identifier(naming.postgres_identifier(name))))
    assert not provisioner_probe(name, isolation)

    wait_for(lambda: provisioner_probe(name, isolation), timeout=30, message=f"{isolation} restored")


HAND_EDITS = {
    "network-policy": (
        "networkpolicies",
        NETWORK_POLICY_NAME,
        {"spec": {"podSelector": {"matchLabels": {"nothing": "here"}}}},
        lambda obj: obj["spec"]["podSelector"] == {},
    ),
    "host-network": (
        "deployments",
        naming.APP_NAME,
        {"spec": {"template": {"spec": {"hostNetwork": True}}}},
        lambda obj: "hostNetwork" not in obj["spec"]["template"]["spec"],
    ),
    "pod-label": (
        "deployments",
        naming.APP_NAME,
        {"spec": {"template": {"metadata": {"labels": {"role": "database-client"}}}}},
        lambda obj: "role" not in obj["spec"]["template"]["metadata"]["labels"],
    ),
    "service-selector": (
        "services",
        naming.APP_NAME,
        {"spec": {"selector": {"tier": "none"}}},
        lambda obj: "tier" not in obj["spec"]["selector"],
    ),
    "livery-annotation": (
        "configmaps",
        naming.APP_CONFIG_NAME,
        {"metadata": {"annotations": {"livery.dev/suspended": "true"}}},
        lambda obj: "livery.dev/suspended" not in (obj["metadata"].get("annotations") or {}),
    ),
    "volume-source": (
        "deployments",
        naming.APP_NAME,
        {"spec": {"template": {"spec": {"volumes": [
            {"name": "config", "configMap": {"name": naming.APP_CONFIG_NAME}},
            {"name": "tmp", "hostPath": {"path": "/"}},
        ]}}}},
        lambda obj: all("hostPath" not in volume for volume in obj["spec"]["template"]["spec"]["volumes"]),
    ),
    "quota-key": (
        "resourcequotas",
        QUOTA_NAME,
        {"spec": {"hard": {"count/secrets": "0"}}},
        lambda obj: "count/secrets" not in obj["spec"]["hard"],
    ),
    "ingress-snippet": (
        "ingresses",
        naming.APP_NAME,
        {"metadata": {"annotations": {"nginx.ingress.kubernetes.io/server-snippet": "return 200;"}}},
        lambda obj: "nginx.ingress.kubernetes.io/server-snippet" not in obj["metadata"].get("annotations", {}),
    ),
}


@pytest.mark.parametrize("edit", sorted(HAND_EDITS))
def test_added_field_is_removed(edit, kube, operator):
    resource, object_name, patch, restored = HAND_EDITS[edit]
    name = unique_name("added")
    create_ready_tenant(kube, name, "pro")
    namespace = naming.namespace_name(name)

    edited = kube.patch(resource, object_name, patch, namespace=namespace)
    assert not restored(edited)

    wait_for(lambda: restored(kube.get(resource, object_name, namespace)), timeout=30, message=f"{edit} undone")


def test_added_limit_range_key_is_removed(kube, operator):
    name = unique_name("limits")
    create_ready_tenant(kube, name, "pro")
    namespace = naming.namespace_name(name)
    (item,) = kube.get("limitranges", LIMIT_RANGE_NAME, namespace)["spec"]["limits"]

    # A merge patch replaces the whole list, so the edit keeps every built field and adds `min`.
    edited = kube.patch("limitranges", LIMIT_RANGE_NAME, {"spec": {"limits": [{**item, "min": {"cpu": "1m"}}]}}, namespace=namespace)
    assert "min" in edited["spec"]["limits"][0]

    def restored() -> bool:
        limits = kube.get("limitranges", LIMIT_RANGE_NAME, namespace)["spec"]["limits"]
        return limits == [item]

    wait_for(restored, timeout=30, message="LimitRange min removed")


def test_namespace_security_label_is_reset(kube, operator):
    name = unique_name("psa")
    create_ready_tenant(kube, name, "pro")
    namespace = naming.namespace_name(name)
    edit = {
        POD_SECURITY_ENFORCE_LABEL: "privileged",
        "pod-security.kubernetes.io/warn": "privileged",
        "team": "payments",
    }

    edited = kube.patch("namespaces", namespace, {"metadata": {"labels": edit}})
    assert edited["metadata"]["labels"][POD_SECURITY_ENFORCE_LABEL] == "privileged"

    def labels() -> dict[str, str]:
        return kube.get("namespaces", namespace)["metadata"]["labels"]

    wait_for(lambda: labels()[POD_SECURITY_ENFORCE_LABEL] == "restricted", timeout=30, message="enforce label reset")
    assert "pod-security.kubernetes.io/warn" not in labels()
    assert labels()["team"] == "payments"
    assert labels()[naming.TENANT_LABEL] == name


def pod_annotations(kube, name: str) -> dict[str, str]:
    deployment = kube.get("deployments", naming.APP_NAME, naming.namespace_name(name))
    return deployment["spec"]["template"]["metadata"]["annotations"]


@pytest.mark.parametrize("change", ["edited", "deleted"])
def test_new_password_rolls_out_app(change, kube, operator):
    name = unique_name(f"pw-{change[:3]}")
    create_ready_tenant(kube, name, "pro")
    namespace = naming.namespace_name(name)
    before = pod_annotations(kube, name)[SECRET_CHECKSUM_ANNOTATION]
    old_password = secret_of(kube, name)[SECRET_DATABASE_PASSWORD]

    if change == "edited":
        encoded = base64.b64encode(b"a-new-password-set-by-hand").decode()
        kube.patch("secrets", naming.APP_SECRET_NAME, {"data": {SECRET_DATABASE_PASSWORD: encoded}}, namespace=namespace)
    else:
        assert kube.delete("secrets", naming.APP_SECRET_NAME, namespace)

    wait_for(
        lambda: pod_annotations(kube, name).get(SECRET_CHECKSUM_ANNOTATION) != before,
        timeout=30,
        message="new secret checksum in the pod template",
    )
    new_password = secret_of(kube, name)[SECRET_DATABASE_PASSWORD]
    assert new_password != old_password
    assert new_password not in pod_annotations(kube, name).values()
