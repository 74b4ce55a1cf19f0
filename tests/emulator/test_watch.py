"""Watch streams: live delivery, resuming from a resourceVersion, selectors and expiry."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import kubernetes
from emulator_helpers import TENANTS, TENANTS_PATH, create_tenant

WATCH_TIMEOUT_SECONDS = 10


def collect_events(stream_function: Any, count: int, **kwargs: Any) -> list[tuple[str, str]]:
    """Read `count` events from a watch and return (type, name) pairs."""
    watch = kubernetes.watch.Watch()
    events = []
    for event in watch.stream(stream_function, timeout_seconds=WATCH_TIMEOUT_SECONDS, **kwargs):
        obj = event["object"]
        name = obj["metadata"]["name"] if isinstance(obj, dict) else obj.metadata.name
        events.append((event["type"], name))
        if len(events) == count:
            watch.stop()
    return events


def wait_until_watching(kube: Any, requests_before: int) -> None:
    """Wait until the server has received a new watch request for Tenants, so later writes arrive live."""
    deadline = time.monotonic() + WATCH_TIMEOUT_SECONDS
    while not any(
        request.params.get("watch") == "true" and getattr(request.resource, "plural", None) == "tenants"
        for request in list(kube.emulator)[requests_before:]
    ):
        assert time.monotonic() < deadline, "the watch request never reached the server"
        time.sleep(0.01)


def test_watch_resumes_from_resource_version(custom: kubernetes.client.CustomObjectsApi) -> None:
    since = custom.list_cluster_custom_object(*TENANTS)["metadata"]["resourceVersion"]
    create_tenant(custom, "acme")
    custom.patch_cluster_custom_object(*TENANTS, "acme", {"spec": {"displayName": "Acme Inc"}})
    custom.delete_cluster_custom_object(*TENANTS, "acme")

    events = collect_events(custom.list_cluster_custom_object, 3, group="livery.dev", version="v1alpha1",
                            plural="tenants", resource_version=since)

    assert events == [("ADDED", "acme"), ("MODIFIED", "acme"), ("DELETED", "acme")]


def test_watch_from_scratch_lists_existing_objects(custom: kubernetes.client.CustomObjectsApi) -> None:
    create_tenant(custom, "acme")
    create_tenant(custom, "globex")

    events = collect_events(custom.list_cluster_custom_object, 2, group="livery.dev", version="v1alpha1", plural="tenants")

    assert events == [("ADDED", "acme"), ("ADDED", "globex")]


def test_watch_delivers_live_events(custom: kubernetes.client.CustomObjectsApi, kube_clean: Any) -> None:
    since = custom.list_cluster_custom_object(*TENANTS)["metadata"]["resourceVersion"]
    received: list[tuple[str, str]] = []
    requests_before = len(list(kube_clean.emulator))
    reader = threading.Thread(
        target=lambda: received.extend(
            collect_events(custom.list_cluster_custom_object, 1, group="livery.dev", version="v1alpha1",
                           plural="tenants", resource_version=since)
        )
    )
    reader.start()
    wait_until_watching(kube_clean, requests_before)

    create_tenant(custom, "acme")

    reader.join(WATCH_TIMEOUT_SECONDS)
    assert received == [("ADDED", "acme")]


def test_watch_event_carries_resource_version(custom: kubernetes.client.CustomObjectsApi) -> None:
    since = custom.list_cluster_custom_object(*TENANTS)["metadata"]["resourceVersion"]
    created = create_tenant(custom, "acme")

    watch = kubernetes.watch.Watch()
    stream = watch.stream(custom.list_cluster_custom_object, "livery.dev", "v1alpha1", "tenants",
                          resource_version=since, timeout_seconds=WATCH_TIMEOUT_SECONDS)
    event = next(stream)
    watch.stop()

    assert event["object"]["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_selector_watch_reports_leaving_as_deleted(core: kubernetes.client.CoreV1Api) -> None:
    since = core.list_namespaced_config_map("default").metadata.resource_version
    labels = {"livery.dev/tenant": "acme"}
    core.create_namespaced_config_map("default", {"metadata": {"name": "acme", "labels": labels}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "other"}})
    core.patch_namespaced_config_map("acme", "default", {"metadata": {"labels": {"livery.dev/tenant": None}}})

    events = collect_events(core.list_namespaced_config_map, 2, namespace="default",
                            label_selector="livery.dev/tenant=acme", resource_version=since)

    assert events == [("ADDED", "acme"), ("DELETED", "acme")]


def test_watch_scoped_to_namespace(core: kubernetes.client.CoreV1Api) -> None:
    since = core.list_config_map_for_all_namespaces().metadata.resource_version
    core.create_namespace({"metadata": {"name": "tenant-acme"}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "elsewhere"}})
    core.create_namespaced_config_map("tenant-acme", {"metadata": {"name": "here"}})

    events = collect_events(core.list_namespaced_config_map, 1, namespace="tenant-acme", resource_version=since)

    assert events == [("ADDED", "here")]


def test_watch_ends_after_timeout_seconds(http: httpx.Client) -> None:
    response = http.get(TENANTS_PATH, params={"watch": "true", "timeoutSeconds": "0"})

    assert response.status_code == 200
    assert response.text == ""


def test_expired_resource_version_gets_gone_event(http: httpx.Client, kube_clean: Any) -> None:
    kube_clean.compact()
    http.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "one"}})

    response = http.get(TENANTS_PATH, params={"watch": "true", "resourceVersion": "1", "timeoutSeconds": "1"})

    assert response.status_code == 200
    event = response.json()
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410


def test_initial_events_end_with_bookmark(http: httpx.Client, custom: kubernetes.client.CustomObjectsApi) -> None:
    create_tenant(custom, "acme")
    params = {"watch": "true", "sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan", "timeoutSeconds": "0"}

    response = http.get(TENANTS_PATH, params=params)

    assert response.status_code == 200
    events = [json.loads(line) for line in response.text.splitlines()]
    assert [event["type"] for event in events] == ["ADDED", "BOOKMARK"]
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
