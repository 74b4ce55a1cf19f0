"""Manifests and request headers shared by the emulator's self-tests."""

from __future__ import annotations

from typing import Any

import kubernetes

TENANTS = ("livery.dev", "v1alpha1", "tenants")
TENANTS_PATH = "/apis/livery.dev/v1alpha1/tenants"
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}
APPLY_PATCH = {"Content-Type": "application/apply-patch+yaml"}


def tenant_manifest(name: str, **spec: Any) -> dict[str, Any]:
    """Return a valid Tenant manifest; keyword arguments override or add spec fields."""
    return {
        "apiVersion": "livery.dev/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": name},
        "spec": {"displayName": name.title(), "plan": "free", **spec},
    }


def create_tenant(custom: kubernetes.client.CustomObjectsApi, name: str, **spec: Any) -> dict[str, Any]:
    return custom.create_cluster_custom_object(*TENANTS, tenant_manifest(name, **spec))
