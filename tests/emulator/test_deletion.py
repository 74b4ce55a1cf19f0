"""Deletion: finalizers, namespace termination and garbage collection through owner references."""

from __future__ import annotations

import kubernetes
import pytest
from emulator_helpers import TENANTS, create_tenant
from kubernetes.client import ApiException


def add_finalizer(custom: kubernetes.client.CustomObjectsApi, name: str) -> None:
    custom.patch_cluster_custom_object(*TENANTS, name, {"metadata": {"finalizers": ["livery.dev/cleanup"]}})


def test_delete_with_finalizer_marks_object(custom: kubernetes.client.CustomObjectsApi) -> None:
    create_tenant(custom, "acme")
    add_finalizer(custom, "acme")

    custom.delete_cluster_custom_object(*TENANTS, "acme")

    tenant = custom.get_cluster_custom_object(*TENANTS, "acme")
    assert tenant["metadata"]["deletionTimestamp"].endswith("Z")
    assert tenant["metadata"]["finalizers"] == ["livery.dev/cleanup"]


def test_removing_last_finalizer_deletes_object(custom: kubernetes.client.CustomObjectsApi) -> None:
    create_tenant(custom, "acme")
    add_finalizer(custom, "acme")
    custom.delete_cluster_custom_object(*TENANTS, "acme")

    custom.patch_cluster_custom_object(*TENANTS, "acme", {"metadata": {"finalizers": None}})

    with pytest.raises(ApiException) as raised:
        custom.get_cluster_custom_object(*TENANTS, "acme")
    assert raised.value.status == 404


def test_delete_without_finalizers_removes_object(custom: kubernetes.client.CustomObjectsApi) -> None:
    create_tenant(custom, "acme")

    custom.delete_cluster_custom_object(*TENANTS, "acme")

    assert custom.list_cluster_custom_object(*TENANTS)["items"] == []


def test_new_finalizer_forbidden_while_deleting(custom: kubernetes.client.CustomObjectsApi) -> None:
    create_tenant(custom, "acme")
    add_finalizer(custom, "acme")
    custom.delete_cluster_custom_object(*TENANTS, "acme")

    with pytest.raises(ApiException) as raised:
        custom.patch_cluster_custom_object(
            *TENANTS, "acme", {"metadata": {"finalizers": ["livery.dev/cleanup", "other/late"]}}
        )

    assert raised.value.status == 422


def test_delete_missing_object_not_found(custom: kubernetes.client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as raised:
        custom.delete_cluster_custom_object(*TENANTS, "ghost")

    assert raised.value.status == 404


def test_namespace_deletion_removes_content(core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "tenant-acme"}})
    core.create_namespaced_secret("tenant-acme", {"metadata": {"name": "database"}, "stringData": {"url": "x"}})

    core.delete_namespace("tenant-acme")

    assert core.list_namespaced_secret("tenant-acme").items == []
    assert "tenant-acme" not in [item.metadata.name for item in core.list_namespace().items]


def test_namespace_waits_for_finalized_content(core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "tenant-acme"}})
    core.create_namespaced_config_map("tenant-acme", {"metadata": {"name": "held", "finalizers": ["livery.dev/hold"]}})

    core.delete_namespace("tenant-acme")

    assert core.read_namespace("tenant-acme").status.phase == "Terminating"
    with pytest.raises(ApiException) as raised:
        core.create_namespaced_config_map("tenant-acme", {"metadata": {"name": "late"}})
    assert raised.value.status == 403

    core.patch_namespaced_config_map("held", "tenant-acme", {"metadata": {"finalizers": None}})

    assert "tenant-acme" not in [item.metadata.name for item in core.list_namespace().items]


def test_owner_deletion_collects_dependents(core: kubernetes.client.CoreV1Api) -> None:
    owner = core.create_namespaced_config_map("default", {"metadata": {"name": "owner"}})
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    core.create_namespaced_secret("default", {"metadata": {"name": "dependent", "ownerReferences": [reference]}})

    core.delete_namespaced_config_map("owner", "default")

    assert [item.metadata.name for item in core.list_namespaced_secret("default").items] == []


def test_delete_collection_honours_selector(core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "acme", "labels": {"livery.dev/tenant": "acme"}}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "keep"}})

    core.delete_collection_namespaced_config_map("default", label_selector="livery.dev/tenant=acme")

    assert [item.metadata.name for item in core.list_namespaced_config_map("default").items] == ["keep"]
