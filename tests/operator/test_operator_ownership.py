"""Under kopf: the operator writes only to namespaces and Secrets it made for the Tenant at hand."""

from __future__ import annotations

import base64

from operator_support import tenant_manifest, unique_name, wait_for
from test_operator_e2e import condition, create_ready_tenant, operator, secret_of  # noqa: F401 - fixtures

from livery import naming
from livery_operator.builders import TENANT_UID_ANNOTATION


def test_foreign_namespace_is_left_alone(kube, operator):
    name = unique_name("foreign")
    namespace = naming.namespace_name(name)
    kube.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": {"team": "other"}}})
    kube.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "theirs", "namespace": namespace}, "data": {"a": "b"}})

    kube.create("tenants", tenant_manifest(name, "pro"))
    refused = wait_for(
        lambda: condition(kube, name, "DatabaseReady").get("reason") == "NamespaceNotOwned" and condition(kube, name, "DatabaseReady"),
        message="NamespaceNotOwned",
    )
    kube.delete("tenants", name)
    wait_for(lambda: kube.get("tenants", name) is None, timeout=60, message="Tenant gone")

    assert namespace in refused["message"]
    assert kube.get("namespaces", namespace)["metadata"]["labels"] == {"team": "other"}
    assert kube.get("configmaps", "theirs", namespace)["data"] == {"a": "b"}
    assert kube.get("secrets", naming.APP_SECRET_NAME, namespace) is None
    assert kube.get("networkpolicies", "tenant-isolation", namespace) is None


def test_planted_secret_is_not_trusted(kube, operator):
    name = unique_name("planted")
    namespace = naming.namespace_name(name)
    kube.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": naming.labels(name)}})
    planted = {
        "LIVERY_DATABASE_PASSWORD": "chosen-by-someone-else",
        "LIVERY_ISOLATION": "schema",
    }
    kube.create("secrets", {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": naming.APP_SECRET_NAME, "namespace": namespace, "labels": naming.labels(name, "app")},
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in planted.items()},
    })

    create_ready_tenant(kube, name, "pro")

    secret = kube.get("secrets", naming.APP_SECRET_NAME, namespace)
    assert secret_of(kube, name)["LIVERY_DATABASE_PASSWORD"] != "chosen-by-someone-else"
    assert secret["metadata"]["annotations"][TENANT_UID_ANNOTATION] == kube.get("tenants", name)["metadata"]["uid"]
    assert kube.get("namespaces", namespace)["metadata"]["annotations"][TENANT_UID_ANNOTATION] == kube.get("tenants", name)["metadata"]["uid"]


def test_control_secret_holds_only_control_keys(kube, operator):
    name = unique_name("control")
    create_ready_tenant(kube, name, "pro")

    app = secret_of(kube, name)
    control = kube.get("secrets", naming.CONTROL_SECRET_NAME, naming.namespace_name(name))
    decoded = {key: base64.b64decode(value).decode() for key, value in control["data"].items()}

    assert decoded == {"LIVERY_LOGIN_KEY": app["LIVERY_LOGIN_KEY"], "LIVERY_USAGE_TOKEN": app["LIVERY_USAGE_TOKEN"]}
    assert control["metadata"]["annotations"][TENANT_UID_ANNOTATION] == kube.get("tenants", name)["metadata"]["uid"]


def test_unmarked_secret_of_provisioned_tenant_kept(kube, operator):
    name = unique_name("upgrade")
    create_ready_tenant(kube, name, "pro")
    namespace = naming.namespace_name(name)
    before = secret_of(kube, name)

    # As a Secret written by a Livery that did not mark Secrets yet.
    kube.patch("secrets", naming.APP_SECRET_NAME, {"metadata": {"annotations": {TENANT_UID_ANNOTATION: None}}}, namespace)
    uid = kube.get("tenants", name)["metadata"]["uid"]
    wait_for(
        lambda: (kube.get("secrets", naming.APP_SECRET_NAME, namespace)["metadata"].get("annotations") or {}).get(TENANT_UID_ANNOTATION) == uid,
        timeout=60, message="Secret marked again",
    )

    assert secret_of(kube, name) == before


def test_deleted_control_secret_restored(kube, operator):
    name = unique_name("ctlsec")
    create_ready_tenant(kube, name, "pro")
    namespace = naming.namespace_name(name)

    kube.delete("secrets", naming.CONTROL_SECRET_NAME, namespace)

    restored = wait_for(lambda: kube.get("secrets", naming.CONTROL_SECRET_NAME, namespace), timeout=60, message="tenant-control back")
    login_key = base64.b64decode(restored["data"]["LIVERY_LOGIN_KEY"]).decode()
    assert login_key == secret_of(kube, name)["LIVERY_LOGIN_KEY"]


def test_edited_tenant_label_on_namespace_restored(kube, operator):
    name = unique_name("relabel")
    create_ready_tenant(kube, name, "pro")
    namespace = naming.namespace_name(name)

    kube.patch("namespaces", namespace, {"metadata": {"labels": {naming.TENANT_LABEL: "someone-else"}}})

    wait_for(
        lambda: kube.get("namespaces", namespace)["metadata"]["labels"].get(naming.TENANT_LABEL) == name,
        timeout=60, message="tenant label back",
    )
    assert condition(kube, name, "DatabaseReady").get("reason") != "NamespaceNotOwned"
