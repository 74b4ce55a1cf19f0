"""Admission of Livery resources: CRD pruning, defaults, OpenAPI validation and CEL rules."""

from __future__ import annotations

import httpx
import kubernetes
import pytest
from emulator_helpers import TENANTS, TENANTS_PATH, create_tenant, tenant_manifest
from k8s_emulator import CRD_DIRECTORY
from k8s_emulator_objects import load_crds
from k8s_emulator_schema import CustomResourceSchema, definition_problems
from kubernetes.client import ApiException


@pytest.mark.parametrize("name", ["1", "9lives", "a", "ab", "ac--me", "x" * 41])
def test_invalid_tenant_name_rejected_at_admission(http: httpx.Client, name: str) -> None:
    response = http.post(TENANTS_PATH, json=tenant_manifest(name))

    assert response.status_code == 422
    status = response.json()
    assert status["reason"] == "Invalid"
    assert len(status["details"]["causes"]) == 1
    assert "metadata.name: must be 3 to 40 characters" in status["message"]
    assert http.get(TENANTS_PATH).json()["items"] == []


def test_name_outside_rfc1123_rejected_before_rules(http: httpx.Client) -> None:
    response = http.post(TENANTS_PATH, json=tenant_manifest("acme-"))

    assert response.status_code == 422
    assert "RFC 1123 subdomain" in response.json()["message"]


@pytest.mark.parametrize("name", ["admin", "www", "kube-acme", "tenant-acme"])
def test_reserved_tenant_name_rejected(http: httpx.Client, name: str) -> None:
    response = http.post(TENANTS_PATH, json=tenant_manifest(name))

    assert response.status_code == 422
    assert "is reserved for the platform" in response.json()["message"]


def test_invalid_plan_name_rejected(http: httpx.Client) -> None:
    plan = {"apiVersion": "livery.dev/v1alpha1", "kind": "Plan", "metadata": {"name": "9x"}, "spec": {"displayName": "Nine"}}

    response = http.post("/apis/livery.dev/v1alpha1/plans", json=plan)

    assert response.status_code == 422
    assert "must be a DNS label" in response.json()["message"]


def test_changing_isolation_rejected(custom: kubernetes.client.CustomObjectsApi) -> None:
    create_tenant(custom, "acme", isolation="shared")

    with pytest.raises(ApiException) as raised:
        custom.patch_cluster_custom_object(*TENANTS, "acme", {"spec": {"isolation": "database"}})

    assert raised.value.status == 422
    assert "spec.isolation: Forbidden" in raised.value.body
    assert custom.get_cluster_custom_object(*TENANTS, "acme")["spec"]["isolation"] == "shared"


def test_setting_unset_isolation_allowed(custom: kubernetes.client.CustomObjectsApi) -> None:
    create_tenant(custom, "acme")

    patched = custom.patch_cluster_custom_object(*TENANTS, "acme", {"spec": {"isolation": "schema"}})

    assert patched["spec"]["isolation"] == "schema"


def test_removing_isolation_allowed(http: httpx.Client, custom: kubernetes.client.CustomObjectsApi) -> None:
    create_tenant(custom, "acme", isolation="shared")

    response = http.patch(
        f"{TENANTS_PATH}/acme", json={"spec": {"isolation": None}}, headers={"Content-Type": "application/merge-patch+json"}
    )

    assert response.status_code == 200
    assert "isolation" not in custom.get_cluster_custom_object(*TENANTS, "acme")["spec"]


def test_missing_required_field_names_path(http: httpx.Client) -> None:
    manifest = tenant_manifest("acme")
    del manifest["spec"]["plan"]

    response = http.post(TENANTS_PATH, json=manifest)

    assert response.status_code == 422
    causes = response.json()["details"]["causes"]
    assert causes == [{"reason": "FieldValueRequired", "message": "Required value", "field": "spec.plan"}]


def test_enum_violation_lists_supported_values(http: httpx.Client) -> None:
    response = http.post(TENANTS_PATH, json=tenant_manifest("acme", isolation="cluster"))

    assert response.status_code == 422
    message = response.json()["message"]
    assert 'spec.isolation: Unsupported value: "cluster"' in message
    assert '"database", "schema", "shared"' in message


def test_pattern_violation_names_field(http: httpx.Client) -> None:
    manifest = tenant_manifest("acme", branding={"primaryColor": "#000000</style>"})

    response = http.post(TENANTS_PATH, json=manifest)

    assert response.status_code == 422
    assert [cause["field"] for cause in response.json()["details"]["causes"]] == ["spec.branding.primaryColor"]


def test_every_error_reported_at_once(http: httpx.Client) -> None:
    manifest = tenant_manifest("9lives", isolation="cluster")
    del manifest["spec"]["displayName"]

    response = http.post(TENANTS_PATH, json=manifest)

    assert response.status_code == 422
    messages = [f"{cause['field']}: {cause['message']}" for cause in response.json()["details"]["causes"]]
    assert len(messages) == 3
    assert any("metadata.name: must be 3 to 40 characters" in message for message in messages)
    assert any(message.startswith("spec.displayName: Required value") for message in messages)
    assert any(message.startswith("spec.isolation: Unsupported value") for message in messages)


def test_unknown_spec_field_pruned(custom: kubernetes.client.CustomObjectsApi) -> None:
    tenant = create_tenant(custom, "acme", colour="blue")

    assert "colour" not in tenant["spec"]


def test_unknown_status_field_pruned(custom: kubernetes.client.CustomObjectsApi) -> None:
    create_tenant(custom, "acme")
    kopf_progress = {"kopf": {"progress": {"create_fn": {"retries": 1, "delayed": "2026-01-01T00:00:00Z"}}}}

    patched = custom.patch_cluster_custom_object_status(*TENANTS, "acme", {"status": {"phase": "Provisioning", **kopf_progress}})

    assert patched["status"] == {"phase": "Provisioning"}
    assert custom.get_cluster_custom_object(*TENANTS, "acme")["status"] == {"phase": "Provisioning"}


def test_schema_defaults_applied(custom: kubernetes.client.CustomObjectsApi) -> None:
    tenant = create_tenant(custom, "acme")

    assert tenant["spec"]["suspended"] is False
    assert tenant["spec"]["deletionPolicy"] == "Retain"


def test_defaults_applied_inside_lists(custom: kubernetes.client.CustomObjectsApi) -> None:
    create_tenant(custom, "acme")
    condition = {"type": "Ready", "status": "False", "reason": "Provisioning"}

    patched = custom.patch_cluster_custom_object_status(*TENANTS, "acme", {"status": {"conditions": [condition]}})

    assert patched["status"]["conditions"] == [{**condition, "message": ""}]


def test_invalid_status_rejected(custom: kubernetes.client.CustomObjectsApi) -> None:
    create_tenant(custom, "acme")

    with pytest.raises(ApiException) as raised:
        custom.patch_cluster_custom_object_status(*TENANTS, "acme", {"status": {"phase": "Happy"}})

    assert raised.value.status == 422
    assert "status.phase" in raised.value.body


def test_rule_reading_undeclared_field_rejects_crd() -> None:
    schema = {
        "type": "object",
        "properties": {"metadata": {"type": "object"}, "spec": {"type": "object", "properties": {"plan": {"type": "string"}}}},
        "x-kubernetes-validations": [{"rule": "self.spec.plans != ''", "fieldPath": ".metadata.name"}],
    }

    problems = definition_problems(schema)

    assert problems == [
        "rule at <root> \"self.spec.plans != ''\": undefined field 'spec.plans'",
        "rule at <root>: fieldPath '.metadata.name' does not name a field of the schema",
    ]



def test_rule_on_list_items_names_item() -> None:
    item_rule = {"rule": "self.replicas > 0", "message": "must be positive"}
    schema = CustomResourceSchema({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "pools": {
                        "type": "array",
                        "items": {"type": "object", "properties": {"replicas": {"type": "integer"}}, "x-kubernetes-validations": [item_rule]},
                    },
                },
            },
        },
    })

    _, errors = schema.admit({"spec": {"pools": [{"replicas": 1}, {"replicas": 0}]}}, old=None)

    assert [error.render() for error in errors] == ['spec.pools[1]: Invalid value: "object": must be positive']


def test_shipped_crds_are_valid_definitions() -> None:
    for crd in load_crds(CRD_DIRECTORY):
        for version in crd["spec"]["versions"]:
            assert definition_problems(version["schema"]["openAPIV3Schema"]) == [], crd["metadata"]["name"]


def test_schema_with_undeclared_rule_field_refused() -> None:
    schema = {"type": "object", "properties": {"spec": {"type": "object"}}, "x-kubernetes-validations": [{"rule": "self.specs.x == 1"}]}

    with pytest.raises(ValueError, match="undefined field 'specs.x'"):
        CustomResourceSchema(schema)


def test_rule_evaluation_error_rejects_object() -> None:
    schema = CustomResourceSchema({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"plan": {"type": "string"}}}},
        "x-kubernetes-validations": [{"rule": "self.spec.plan != ''", "message": "plan must be set"}],
    })

    _, errors = schema.admit({"spec": {}}, old=None)

    assert len(errors) == 1
    assert errors[0].field == "<nil>"
    assert errors[0].message.endswith("evaluating rule: plan must be set")


def test_unknown_spec_field_rejected_when_strict(http: httpx.Client) -> None:
    response = http.post(TENANTS_PATH, params={"fieldValidation": "Strict"}, json=tenant_manifest("acme", colour="blue"))

    assert response.status_code == 400
    assert 'unknown field "spec.colour"' in response.json()["message"]
    assert http.get(f"{TENANTS_PATH}/acme").status_code == 404
