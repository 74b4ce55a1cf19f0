"""Patch content types: strategic merge, server-side apply with field managers, and bad requests."""

from __future__ import annotations

import httpx
import kubernetes
import yaml
from emulator_helpers import APPLY_PATCH, MERGE_PATCH, TENANTS_PATH, create_tenant, tenant_manifest


def apply(http: httpx.Client, manifest: dict, manager: str, force: bool = False) -> httpx.Response:
    params = {"fieldManager": manager}
    if force:
        params["force"] = "true"
    name = manifest["metadata"]["name"]
    return http.patch(f"{TENANTS_PATH}/{name}", content=yaml.safe_dump(manifest), headers=APPLY_PATCH, params=params)


def edit_spec(http: httpx.Client, name: str, spec: dict, manager: str) -> None:
    """Merge-patch a Tenant's spec as field manager `manager`, as `kubectl edit` would."""
    response = http.patch(
        f"{TENANTS_PATH}/{name}", json={"spec": spec}, params={"fieldManager": manager}, headers=MERGE_PATCH
    )
    response.raise_for_status()


def test_apply_creates_missing_object(http: httpx.Client) -> None:
    response = apply(http, tenant_manifest("acme"), "livery-control-api")

    assert response.status_code == 201
    managers = [(entry["manager"], entry["operation"]) for entry in response.json()["metadata"]["managedFields"]]
    assert managers == [("livery-control-api", "Apply")]


def test_apply_records_owned_fields(http: httpx.Client) -> None:
    response = apply(http, tenant_manifest("acme"), "livery-control-api")

    fields = response.json()["metadata"]["managedFields"][0]["fieldsV1"]
    assert fields["f:spec"] == {"f:displayName": {}, "f:plan": {}}


def test_apply_conflicts_with_other_manager(http: httpx.Client) -> None:
    apply(http, tenant_manifest("acme"), "livery-control-api")
    edit_spec(http, "acme", {"plan": "pro"}, "kubectl-edit")

    response = apply(http, tenant_manifest("acme", plan="enterprise"), "livery-control-api")

    assert response.status_code == 409
    causes = response.json()["details"]["causes"]
    assert causes == [{"type": "FieldManagerConflict", "message": 'conflict with "kubectl-edit"', "field": ".spec.plan"}]
    assert http.get(f"{TENANTS_PATH}/acme").json()["spec"]["plan"] == "pro"


def test_forced_apply_takes_ownership(http: httpx.Client) -> None:
    apply(http, tenant_manifest("acme"), "livery-control-api")
    edit_spec(http, "acme", {"plan": "pro"}, "kubectl-edit")

    response = apply(http, tenant_manifest("acme", plan="enterprise"), "livery-control-api", force=True)

    assert response.status_code == 200
    assert response.json()["spec"]["plan"] == "enterprise"
    owners = {entry["manager"] for entry in response.json()["metadata"]["managedFields"]}
    assert owners == {"livery-control-api"}


def test_apply_keeps_fields_of_other_managers(http: httpx.Client) -> None:
    apply(http, tenant_manifest("acme"), "livery-control-api")
    edit_spec(http, "acme", {"suspended": True}, "kubectl-edit")

    response = apply(http, tenant_manifest("acme", displayName="Acme Inc"), "livery-control-api")

    assert response.status_code == 200
    assert response.json()["spec"]["suspended"] is True
    assert response.json()["spec"]["displayName"] == "Acme Inc"


def test_apply_removes_fields_it_stopped_setting(http: httpx.Client) -> None:
    apply(http, tenant_manifest("acme", domains=["acme.example.com"]), "livery-control-api")

    response = apply(http, tenant_manifest("acme"), "livery-control-api")

    assert response.status_code == 200
    assert "domains" not in response.json()["spec"]


def test_apply_without_field_manager_rejected(http: httpx.Client) -> None:
    response = http.patch(f"{TENANTS_PATH}/acme", content=yaml.safe_dump(tenant_manifest("acme")), headers=APPLY_PATCH)

    assert response.status_code == 400
    assert "fieldManager" in response.json()["message"]


def test_strategic_merge_rejected_for_crds(custom: kubernetes.client.CustomObjectsApi, http: httpx.Client) -> None:
    create_tenant(custom, "acme")

    response = http.patch(
        f"{TENANTS_PATH}/acme",
        json={"spec": {"branding": {"primaryColor": "#112233"}}},
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )

    assert response.status_code == 415


def app_deployment(containers: list[dict]) -> dict:
    return {
        "metadata": {"name": "app"},
        "spec": {
            "selector": {"matchLabels": {"app": "tenant"}},
            "template": {"metadata": {"labels": {"app": "tenant"}}, "spec": {"containers": containers}},
        },
    }


def test_strategic_merge_merges_containers_by_name(api_client: kubernetes.client.ApiClient, kube_clean: object) -> None:
    apps = kubernetes.client.AppsV1Api(api_client)
    app = {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
    apps.create_namespaced_deployment("default", app_deployment([app, {"name": "proxy", "image": "proxy:1"}]))
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2", "env": [{"name": "B", "value": "3"}]}]}}}}

    patched = apps.patch_namespaced_deployment("app", "default", patch)

    containers = {container.name: container for container in patched.spec.template.spec.containers}
    assert containers["app"].image == "app:2"
    assert [(variable.name, variable.value) for variable in containers["app"].env] == [("A", "1"), ("B", "3")]
    assert containers["proxy"].image == "proxy:1"


def test_strategic_merge_deletes_marked_item(api_client: kubernetes.client.ApiClient, kube_clean: object) -> None:
    apps = kubernetes.client.AppsV1Api(api_client)
    apps.create_namespaced_deployment("default", app_deployment([{"name": "app", "image": "app:1"}, {"name": "proxy", "image": "proxy:1"}]))
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "proxy", "$patch": "delete"}]}}}}

    patched = apps.patch_namespaced_deployment("app", "default", patch)

    assert [container.name for container in patched.spec.template.spec.containers] == ["app"]


def test_strategic_merge_adds_finalizers(core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "config", "finalizers": ["livery.dev/a"]}})

    patched = core.patch_namespaced_config_map("config", "default", {"metadata": {"finalizers": ["livery.dev/b"]}})

    assert patched.metadata.finalizers == ["livery.dev/a", "livery.dev/b"]


def test_unknown_patch_type_rejected(custom: kubernetes.client.CustomObjectsApi, http: httpx.Client) -> None:
    create_tenant(custom, "acme")

    response = http.patch(f"{TENANTS_PATH}/acme", json={"spec": {}}, headers={"Content-Type": "text/plain"})

    assert response.status_code == 415


def test_malformed_json_rejected(http: httpx.Client) -> None:
    response = http.post(TENANTS_PATH, content=b"{not json", headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert response.json()["kind"] == "Status"


def test_wrong_kind_for_url_rejected(http: httpx.Client) -> None:
    manifest = tenant_manifest("acme")
    manifest["kind"] = "Plan"

    response = http.post(TENANTS_PATH, json=manifest)

    assert response.status_code == 400
    assert http.get(TENANTS_PATH).json()["items"] == []


def test_apply_merges_set_list_items(http: httpx.Client) -> None:
    apply(http, tenant_manifest("acme", domains=["shop.acme.test"]), "livery-control-api")
    admin_config = {"apiVersion": "livery.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": "acme"}, "spec": {"domains": ["admin.acme.test"]}}
    apply(http, admin_config, "kubectl")

    response = apply(http, tenant_manifest("acme", domains=["new.acme.test"]), "livery-control-api")

    assert response.status_code == 200
    assert sorted(response.json()["spec"]["domains"]) == ["admin.acme.test", "new.acme.test"]


def test_apply_owns_set_items_by_value(http: httpx.Client) -> None:
    response = apply(http, tenant_manifest("acme", domains=["shop.acme.test"]), "livery-control-api")

    fields = response.json()["metadata"]["managedFields"][0]["fieldsV1"]
    assert fields["f:spec"]["f:domains"] == {'v:"shop.acme.test"': {}}


def apply_deployment(http: httpx.Client, containers: list[dict], manager: str) -> httpx.Response:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", **app_deployment(containers)}
    return http.patch(
        "/apis/apps/v1/namespaces/default/deployments/app",
        content=yaml.safe_dump(deployment),
        headers=APPLY_PATCH,
        params={"fieldManager": manager},
    )


def test_apply_merges_containers_by_name(http: httpx.Client) -> None:
    apply_deployment(http, [{"name": "app", "image": "app:1"}], "livery-operator")
    apply_deployment(http, [{"name": "proxy", "image": "proxy:1"}], "mesh-injector")

    response = apply_deployment(http, [{"name": "app", "image": "app:2"}], "livery-operator")

    assert response.status_code == 200
    containers = {container["name"]: container["image"] for container in response.json()["spec"]["template"]["spec"]["containers"]}
    assert containers == {"app": "app:2", "proxy": "proxy:1"}


def test_apply_conflict_names_container_field(http: httpx.Client) -> None:
    apply_deployment(http, [{"name": "app", "image": "app:1"}], "livery-operator")

    response = apply_deployment(http, [{"name": "app", "image": "app:debug"}], "kubectl")

    assert response.status_code == 409
    fields = [cause["field"] for cause in response.json()["details"]["causes"]]
    assert fields == ['.spec.template.spec.containers[name="app"].image']


def test_apply_drops_container_it_stopped_applying(http: httpx.Client) -> None:
    apply_deployment(http, [{"name": "app", "image": "app:1"}, {"name": "debug", "image": "debug:1"}], "livery-operator")

    response = apply_deployment(http, [{"name": "app", "image": "app:1"}], "livery-operator")

    assert response.status_code == 200
    assert [container["name"] for container in response.json()["spec"]["template"]["spec"]["containers"]] == ["app"]


def test_apply_ignores_status_on_main_resource(http: httpx.Client) -> None:
    manifest = {**tenant_manifest("acme"), "status": {"phase": "Ready"}}

    response = apply(http, manifest, "livery-control-api")

    assert response.status_code == 201
    assert "status" not in response.json()
    assert "f:status" not in response.json()["metadata"]["managedFields"][0]["fieldsV1"]
