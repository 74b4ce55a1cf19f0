"""The status subresource: each endpoint changes only its own part of the object."""

from __future__ import annotations

from typing import Any

import httpx
import kubernetes
from emulator_helpers import MERGE_PATCH, TENANTS, TENANTS_PATH, create_tenant


def test_status_write_ignores_spec(custom: kubernetes.client.CustomObjectsApi) -> None:
    create_tenant(custom, "acme")

    patched = custom.patch_cluster_custom_object_status(
        *TENANTS, "acme", {"spec": {"displayName": "Changed"}, "status": {"phase": "Ready"}}
    )

    assert patched["spec"]["displayName"] == "Acme"
    assert patched["status"]["phase"] == "Ready"


def test_status_write_ignores_metadata(custom: kubernetes.client.CustomObjectsApi) -> None:
    create_tenant(custom, "acme")

    patched = custom.patch_cluster_custom_object_status(
        *TENANTS, "acme", {"metadata": {"labels": {"tier": "gold"}}, "status": {"phase": "Ready"}}
    )

    assert "labels" not in patched["metadata"]


def test_main_write_ignores_status(custom: kubernetes.client.CustomObjectsApi) -> None:
    create_tenant(custom, "acme")
    custom.patch_cluster_custom_object_status(*TENANTS, "acme", {"status": {"phase": "Ready"}})

    patched = custom.patch_cluster_custom_object(
        *TENANTS, "acme", {"spec": {"displayName": "Acme Inc"}, "status": {"phase": "Failed"}}
    )

    assert patched["spec"]["displayName"] == "Acme Inc"
    assert patched["status"]["phase"] == "Ready"


def test_create_ignores_status(http: httpx.Client) -> None:
    manifest: dict[str, Any] = {
        "apiVersion": "livery.dev/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": "acme"},
        "spec": {"displayName": "Acme", "plan": "free"},
        "status": {"phase": "Ready"},
    }

    response = http.post(TENANTS_PATH, json=manifest)

    assert response.status_code == 201
    assert "status" not in response.json()


def test_replace_status_through_subresource(http: httpx.Client, custom: kubernetes.client.CustomObjectsApi) -> None:
    tenant = create_tenant(custom, "acme")
    tenant["status"] = {"phase": "Ready", "observedGeneration": 1}
    tenant["spec"]["displayName"] = "Ignored"

    response = http.put(f"{TENANTS_PATH}/acme/status", json=tenant)

    assert response.status_code == 200
    assert response.json()["status"] == {"phase": "Ready", "observedGeneration": 1}
    assert response.json()["spec"]["displayName"] == "Acme"


def test_status_of_kind_without_subresource_missing(http: httpx.Client) -> None:
    http.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "config"}})

    response = http.patch("/api/v1/namespaces/default/configmaps/config/status", json={}, headers=MERGE_PATCH)

    assert response.status_code == 404
