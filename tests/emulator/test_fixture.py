"""The `kube` fixture: kubeconfig, discovery, helpers, reset and fault injection."""

from __future__ import annotations

from typing import Any

import httpx
import kubernetes
import pytest
import yaml
from emulator_helpers import TENANTS, create_tenant, tenant_manifest
from kubernetes.client import ApiException


def test_kubeconfig_points_at_local_server(kube: Any) -> None:
    config = yaml.safe_load(kube.kubeconfig.read_text())

    server = config["clusters"][0]["cluster"]["server"]
    assert server == kube.url
    assert server.startswith("http://127.0.0.1:")


def test_dynamic_client_discovers_livery_kinds(api_client: kubernetes.client.ApiClient, kube_clean: Any) -> None:
    dynamic = kubernetes.dynamic.DynamicClient(api_client)

    tenants = dynamic.resources.get(api_version="livery.dev/v1alpha1", kind="Tenant")

    assert tenants.name == "tenants"
    assert tenants.namespaced is False


@pytest.mark.parametrize(
    ("api_version", "kind", "namespaced"),
    [
        ("v1", "Namespace", False),
        ("v1", "Secret", True),
        ("v1", "ConfigMap", True),
        ("v1", "Service", True),
        ("v1", "ServiceAccount", True),
        ("v1", "Event", True),
        ("v1", "ResourceQuota", True),
        ("v1", "LimitRange", True),
        ("apps/v1", "Deployment", True),
        ("events.k8s.io/v1", "Event", True),
        ("networking.k8s.io/v1", "Ingress", True),
        ("networking.k8s.io/v1", "NetworkPolicy", True),
        ("coordination.k8s.io/v1", "Lease", True),
        ("livery.dev/v1alpha1", "Plan", False),
    ],
)
def test_discovery_lists_kind(http: httpx.Client, api_version: str, kind: str, namespaced: bool) -> None:
    path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"

    response = http.get(path)

    assert response.status_code == 200
    resources = {item["kind"]: item for item in response.json()["resources"] if "/" not in item["name"]}
    assert resources[kind]["namespaced"] is namespaced


def test_set_deployment_available_reports_replicas(api_client: kubernetes.client.ApiClient, kube_clean: Any) -> None:
    apps = kubernetes.client.AppsV1Api(api_client)
    deployment = {
        "metadata": {"name": "app"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "tenant"}},
            "template": {"metadata": {"labels": {"app": "tenant"}}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}},
        },
    }
    apps.create_namespaced_deployment("default", deployment)

    kube_clean.set_deployment_available("default", "app", replicas=2)

    status = apps.read_namespaced_deployment("app", "default").status
    assert status.ready_replicas == 2
    assert status.available_replicas == 2
    assert status.observed_generation == 1


def test_helpers_read_and_delete(kube_clean: Any, custom: kubernetes.client.CustomObjectsApi) -> None:
    create_tenant(custom, "acme")

    assert kube_clean.get("tenants", "acme")["spec"]["plan"] == "free"
    assert [item["metadata"]["name"] for item in kube_clean.list("tn")] == ["acme"]
    assert kube_clean.delete("tenants", "acme") is True
    assert kube_clean.get("tenants", "acme") is None
    assert kube_clean.delete("tenants", "acme") is False


def test_reset_keeps_system_namespaces(kube: Any, custom: kubernetes.client.CustomObjectsApi) -> None:
    create_tenant(custom, "acme")

    kube.reset()

    assert custom.list_cluster_custom_object(*TENANTS)["items"] == []
    assert kube.get("namespaces", "default") is not None


def test_both_event_apis_store_events(api_client: kubernetes.client.ApiClient, kube_clean: Any) -> None:
    core = kubernetes.client.CoreV1Api(api_client)
    events = kubernetes.client.EventsV1Api(api_client)
    core.create_namespaced_event("default", {"metadata": {"name": "core"}, "involvedObject": {"name": "acme"}, "message": "m"})
    events.create_namespaced_event("default", {"metadata": {"name": "modern"}, "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "livery", "reportingInstance": "x", "action": "Provision", "reason": "Created"})

    assert [item.metadata.name for item in core.list_namespaced_event("default").items] == ["core"]
    assert [item.metadata.name for item in events.list_namespaced_event("default").items] == ["modern"]


def test_user_reaction_intercepts_request(kube_clean: Any, custom: kubernetes.client.CustomObjectsApi) -> None:
    create_tenant(custom, "acme")
    kube_clean.emulator["get /apis/livery.dev/v1alpha1/tenants/acme"] << 503

    with pytest.raises(ApiException) as raised:
        custom.get_cluster_custom_object(*TENANTS, "acme")

    assert raised.value.status == 503


def test_reset_drops_user_reactions(kube: Any, custom: kubernetes.client.CustomObjectsApi) -> None:
    create_tenant(custom, "acme")
    kube.emulator["get /apis/livery.dev/v1alpha1/tenants/acme"] << 503

    kube.reset()
    create_tenant(custom, "acme")

    assert custom.get_cluster_custom_object(*TENANTS, "acme")["metadata"]["name"] == "acme"


def test_create_takes_namespace_from_manifest(kube_clean: Any) -> None:
    created = kube_clean.create("configmaps", {"metadata": {"name": "config", "namespace": "default"}})

    assert created["metadata"]["namespace"] == "default"


def test_apply_helper_conflicts_without_force(kube_clean: Any) -> None:
    manifest = tenant_manifest("acme")
    kube_clean.apply("tenants", manifest, field_manager="livery-control-api")
    manifest["spec"]["plan"] = "pro"

    with pytest.raises(httpx.HTTPStatusError) as raised:
        kube_clean.apply("tenants", manifest, field_manager="kubectl")

    assert raised.value.response.status_code == 409
    assert kube_clean.apply("tenants", manifest, field_manager="kubectl", force=True)["spec"]["plan"] == "pro"


def test_events_found_by_involved_object(api_client: kubernetes.client.ApiClient, kube_clean: Any) -> None:
    core = kubernetes.client.CoreV1Api(api_client)
    for name, kind in [("tenant-event", "Tenant"), ("plan-event", "Plan")]:
        event = {"metadata": {"name": name}, "involvedObject": {"kind": kind, "name": "acme"}, "message": "m"}
        core.create_namespaced_event("default", event)

    listing = core.list_event_for_all_namespaces(field_selector="involvedObject.kind=Tenant,involvedObject.name=acme")

    assert [item.metadata.name for item in listing.items] == ["tenant-event"]


def test_status_subresource_lists_its_own_verbs(http: httpx.Client) -> None:
    response = http.get("/apis/livery.dev/v1alpha1")

    assert response.status_code == 200
    verbs = {item["name"]: sorted(item["verbs"]) for item in response.json()["resources"]}
    assert verbs["tenants/status"] == ["get", "patch", "update"]
    assert "watch" in verbs["tenants"]


def test_server_version_supports_crd_rules(api_client: kubernetes.client.ApiClient, kube_clean: Any) -> None:
    version = kubernetes.client.VersionApi(api_client).get_code()

    assert (int(version.major), int(version.minor)) >= (1, 28)
