"""Object metadata, conflicts, namespaces and selectors, through the official client and raw HTTP."""

from __future__ import annotations

import httpx
import kubernetes
import pytest
from emulator_helpers import JSON_PATCH, MERGE_PATCH, TENANTS, TENANTS_PATH, create_tenant, tenant_manifest
from kubernetes.client import ApiException


def test_create_sets_server_metadata(custom: kubernetes.client.CustomObjectsApi) -> None:
    tenant = create_tenant(custom, "acme")

    metadata = tenant["metadata"]
    assert len(metadata["uid"]) == 36
    assert metadata["creationTimestamp"].endswith("Z")
    assert int(metadata["resourceVersion"]) > 0
    assert metadata["generation"] == 1


def test_every_write_bumps_resource_version(custom: kubernetes.client.CustomObjectsApi) -> None:
    created = create_tenant(custom, "acme")

    patched = custom.patch_cluster_custom_object(*TENANTS, "acme", {"metadata": {"labels": {"tier": "gold"}}})

    assert int(patched["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])


def test_noop_patch_keeps_resource_version(custom: kubernetes.client.CustomObjectsApi) -> None:
    created = create_tenant(custom, "acme")

    patched = custom.patch_cluster_custom_object(*TENANTS, "acme", {"spec": {"plan": "free"}})

    assert patched["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_create_existing_name_conflicts(custom: kubernetes.client.CustomObjectsApi) -> None:
    create_tenant(custom, "acme")

    with pytest.raises(ApiException) as raised:
        create_tenant(custom, "acme")

    assert raised.value.status == 409
    assert '"reason": "AlreadyExists"' in raised.value.body


def test_read_missing_object_returns_status_body(http: httpx.Client) -> None:
    response = http.get(f"{TENANTS_PATH}/ghost")

    assert response.status_code == 404
    status = response.json()
    assert status["kind"] == "Status"
    assert status["reason"] == "NotFound"
    assert status["message"] == 'tenants.livery.dev "ghost" not found'
    assert status["details"]["name"] == "ghost"


def test_merge_patch_stale_version_conflicts(http: httpx.Client, custom: kubernetes.client.CustomObjectsApi) -> None:
    created = create_tenant(custom, "acme")
    custom.patch_cluster_custom_object(*TENANTS, "acme", {"spec": {"displayName": "Acme Inc"}})
    stale = created["metadata"]["resourceVersion"]

    response = http.patch(
        f"{TENANTS_PATH}/acme",
        json={"metadata": {"resourceVersion": stale}, "spec": {"displayName": "Lost update"}},
        headers=MERGE_PATCH,
    )

    assert response.status_code == 409
    assert response.json()["reason"] == "Conflict"
    assert custom.get_cluster_custom_object(*TENANTS, "acme")["spec"]["displayName"] == "Acme Inc"


def test_replace_stale_version_conflicts(custom: kubernetes.client.CustomObjectsApi) -> None:
    created = create_tenant(custom, "acme")
    custom.patch_cluster_custom_object(*TENANTS, "acme", {"spec": {"displayName": "Acme Inc"}})
    created["spec"]["displayName"] = "Lost update"

    with pytest.raises(ApiException) as raised:
        custom.replace_cluster_custom_object(*TENANTS, "acme", created)

    assert raised.value.status == 409


def test_json_patch_failed_test_rejected(http: httpx.Client, custom: kubernetes.client.CustomObjectsApi) -> None:
    created = create_tenant(custom, "acme")
    custom.patch_cluster_custom_object(*TENANTS, "acme", {"metadata": {"labels": {"a": "b"}}})
    operations = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": created["metadata"]["resourceVersion"]},
        {"op": "add", "path": "/metadata/finalizers", "value": ["livery.dev/cleanup"]},
    ]

    response = http.patch(f"{TENANTS_PATH}/acme", json=operations, headers=JSON_PATCH)

    # The API server rejects a failed `test` operation with 422, which kopf retries.
    assert response.status_code == 422
    assert "finalizers" not in custom.get_cluster_custom_object(*TENANTS, "acme")["metadata"]


def test_json_patch_current_version_applies(http: httpx.Client, custom: kubernetes.client.CustomObjectsApi) -> None:
    created = create_tenant(custom, "acme")
    operations = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": created["metadata"]["resourceVersion"]},
        {"op": "add", "path": "/metadata/finalizers", "value": ["livery.dev/cleanup"]},
    ]

    response = http.patch(f"{TENANTS_PATH}/acme", json=operations, headers=JSON_PATCH)

    assert response.status_code == 200
    assert response.json()["metadata"]["finalizers"] == ["livery.dev/cleanup"]


def test_spec_change_bumps_generation(custom: kubernetes.client.CustomObjectsApi) -> None:
    create_tenant(custom, "acme")

    patched = custom.patch_cluster_custom_object(*TENANTS, "acme", {"spec": {"displayName": "Acme Inc"}})

    assert patched["metadata"]["generation"] == 2


def test_metadata_change_keeps_generation(custom: kubernetes.client.CustomObjectsApi) -> None:
    create_tenant(custom, "acme")

    patched = custom.patch_cluster_custom_object(
        *TENANTS, "acme", {"metadata": {"labels": {"tier": "gold"}, "annotations": {"note": "x"}}}
    )

    assert patched["metadata"]["generation"] == 1


def test_status_change_keeps_generation(custom: kubernetes.client.CustomObjectsApi) -> None:
    create_tenant(custom, "acme")

    patched = custom.patch_cluster_custom_object_status(*TENANTS, "acme", {"status": {"phase": "Ready"}})

    assert patched["status"]["phase"] == "Ready"
    assert patched["metadata"]["generation"] == 1


def test_namespace_created_and_read_by_path(core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "tenant-acme", "labels": {"livery.dev/tenant": "acme"}}})

    namespace = core.read_namespace("tenant-acme")

    assert namespace.metadata.labels == {"livery.dev/tenant": "acme"}
    assert namespace.status.phase == "Active"


def test_namespace_list_has_kind_and_version(http: httpx.Client) -> None:
    response = http.get("/api/v1/namespaces")

    assert response.status_code == 200
    listing = response.json()
    assert listing["kind"] == "NamespaceList"
    assert listing["apiVersion"] == "v1"
    assert int(listing["metadata"]["resourceVersion"]) > 0
    assert "default" in [item["metadata"]["name"] for item in listing["items"]]


def test_create_in_missing_namespace_fails(core: kubernetes.client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as raised:
        core.create_namespaced_config_map("nowhere", {"metadata": {"name": "config"}})

    assert raised.value.status == 404
    assert 'namespaces \\"nowhere\\" not found' in raised.value.body


def test_generate_name_makes_unique_names(core: kubernetes.client.CoreV1Api) -> None:
    body = {"metadata": {"generateName": "kopf-event-"}, "message": "hello", "involvedObject": {"name": "acme"}}

    first = core.create_namespaced_event("default", body)
    second = core.create_namespaced_event("default", body)

    assert first.metadata.name.startswith("kopf-event-")
    assert first.metadata.name != second.metadata.name


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("livery.dev/tenant=acme", ["acme-config"]),
        ("livery.dev/tenant==acme", ["acme-config"]),
        ("livery.dev/tenant!=acme", ["globex-config", "plain-config"]),
        ("livery.dev/tenant in (acme,globex)", ["acme-config", "globex-config"]),
        ("livery.dev/tenant notin (acme)", ["globex-config", "plain-config"]),
        ("livery.dev/tenant", ["acme-config", "globex-config"]),
        ("!livery.dev/tenant", ["plain-config"]),
        ("app.kubernetes.io/managed-by=livery,livery.dev/tenant=globex", ["globex-config"]),
    ],
)
def test_label_selector_filters_list(core: kubernetes.client.CoreV1Api, selector: str, expected: list[str]) -> None:
    managed = {"app.kubernetes.io/managed-by": "livery"}
    for name, labels in [
        ("acme-config", {**managed, "livery.dev/tenant": "acme"}),
        ("globex-config", {**managed, "livery.dev/tenant": "globex"}),
        ("plain-config", {}),
    ]:
        core.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": labels}})

    listing = core.list_namespaced_config_map("default", label_selector=selector)

    assert sorted(item.metadata.name for item in listing.items) == expected


def test_field_selector_filters_by_name(custom: kubernetes.client.CustomObjectsApi) -> None:
    create_tenant(custom, "acme")
    create_tenant(custom, "globex")

    listing = custom.list_cluster_custom_object(*TENANTS, field_selector="metadata.name=globex")

    assert [item["metadata"]["name"] for item in listing["items"]] == ["globex"]


def test_tenant_list_has_kind(custom: kubernetes.client.CustomObjectsApi) -> None:
    create_tenant(custom, "acme")

    listing = custom.list_cluster_custom_object(*TENANTS)

    assert listing["kind"] == "TenantList"
    assert listing["apiVersion"] == "livery.dev/v1alpha1"
    assert [item["kind"] for item in listing["items"]] == ["Tenant"]


def test_dry_run_stores_nothing(http: httpx.Client) -> None:
    response = http.post(TENANTS_PATH, params={"dryRun": "All"}, json=tenant_manifest("acme"))

    assert response.status_code == 201
    assert http.get(f"{TENANTS_PATH}/acme").status_code == 404


def test_secret_string_data_stored_as_base64(core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_secret("default", {"metadata": {"name": "database"}, "stringData": {"url": "postgresql://x"}})

    secret = core.read_namespaced_secret("database", "default")

    assert secret.data == {"url": "cG9zdGdyZXNxbDovL3g="}
    assert secret.string_data is None
    assert secret.type == "Opaque"


def deployment_manifest(labels: dict[str, str]) -> dict:
    return {
        "metadata": {"name": "app"},
        "spec": {
            "selector": {"matchLabels": {"app": "tenant"}},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}},
        },
    }


def test_deployment_gets_server_defaults(api_client: kubernetes.client.ApiClient, kube_clean: object) -> None:
    apps = kubernetes.client.AppsV1Api(api_client)

    deployment = apps.create_namespaced_deployment("default", deployment_manifest({"app": "tenant"}))

    assert deployment.spec.replicas == 1
    assert deployment.spec.revision_history_limit == 10
    assert deployment.spec.strategy.type == "RollingUpdate"


def test_deployment_selector_must_match_labels(api_client: kubernetes.client.ApiClient, kube_clean: object) -> None:
    apps = kubernetes.client.AppsV1Api(api_client)

    with pytest.raises(ApiException) as raised:
        apps.create_namespaced_deployment("default", deployment_manifest({"app": "other"}))

    assert raised.value.status == 422
    assert "spec.template.metadata.labels" in raised.value.body


def test_deployment_selector_immutable(api_client: kubernetes.client.ApiClient, kube_clean: object) -> None:
    apps = kubernetes.client.AppsV1Api(api_client)
    apps.create_namespaced_deployment("default", deployment_manifest({"app": "tenant", "tier": "web"}))

    with pytest.raises(ApiException) as raised:
        apps.patch_namespaced_deployment("app", "default", {"spec": {"selector": {"matchLabels": {"tier": "web"}}}})

    assert raised.value.status == 422
    assert "field is immutable" in raised.value.body


def test_service_keeps_allocated_cluster_ip(core: kubernetes.client.CoreV1Api) -> None:
    created = core.create_namespaced_service("default", {"metadata": {"name": "app"}, "spec": {"ports": [{"port": 80}]}})
    replacement = {"metadata": {"name": "app"}, "spec": {"ports": [{"port": 8080}]}}

    replaced = core.replace_namespaced_service("app", "default", replacement)

    assert created.spec.cluster_ip.startswith("10.96.")
    assert replaced.spec.cluster_ip == created.spec.cluster_ip
    assert replaced.spec.ports[0].target_port == 8080


def test_list_pages_with_limit_and_continue(core: kubernetes.client.CoreV1Api) -> None:
    for name in ("a1", "b2", "c3"):
        core.create_namespaced_config_map("default", {"metadata": {"name": name}})

    first = core.list_namespaced_config_map("default", limit=2)
    second = core.list_namespaced_config_map("default", limit=2, _continue=first.metadata._continue)

    assert [item.metadata.name for item in first.items] == ["a1", "b2"]
    assert first.metadata.remaining_item_count == 1
    assert [item.metadata.name for item in second.items] == ["c3"]
    assert second.metadata._continue is None


@pytest.mark.parametrize(
    "metadata",
    [
        {"labels": {"livery.dev/tenant": "x" * 64}},
        {"labels": {"livery.dev/tenant": "acme corp"}},
        {"labels": {"Livery.dev/tenant": "acme"}},
        {"finalizers": ["livery.dev/clean up"]},
    ],
)
def test_invalid_metadata_rejected(core: kubernetes.client.CoreV1Api, metadata: dict) -> None:
    with pytest.raises(ApiException) as raised:
        core.create_namespaced_config_map("default", {"metadata": {"name": "config", **metadata}})

    assert raised.value.status == 422
    assert core.list_namespaced_config_map("default").items == []
