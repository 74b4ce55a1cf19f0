"""kopf against the emulator: finalizers, events, and progress that status pruning loses."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import kopf
import kubernetes
import pytest
from emulator_helpers import TENANTS, create_tenant, tenant_manifest

DEADLINE_SECONDS = 15


def wait_for(condition: Callable[[], bool], description: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {DEADLINE_SECONDS} s waiting for {description}")
        time.sleep(0.05)


@contextlib.contextmanager
def running_kopf(registry: kopf.OperatorRegistry, settings: kopf.OperatorSettings) -> Iterator[None]:
    """Run kopf with `registry` in a thread with its own event loop until the block ends."""
    stop = threading.Event()
    ready = threading.Event()
    thread = threading.Thread(
        target=lambda: asyncio.run(
            kopf.operator(registry=registry, settings=settings, clusterwide=True, standalone=True,
                          stop_flag=stop, ready_flag=ready)
        ),
        daemon=True,
    )
    thread.start()
    assert ready.wait(DEADLINE_SECONDS), "kopf did not start"
    try:
        yield
    finally:
        stop.set()
        thread.join(DEADLINE_SECONDS)


@pytest.fixture(params=["login-handler", "kubeconfig"])
def operator(request: pytest.FixtureRequest, kube_clean: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Run kopf in a thread with one create and one delete handler, and yield the handler calls.

    kopf either gets the server from a login handler and lists, then watches, or
    reads the kubeconfig through the kubernetes client and requests the initial
    events from the watch.
    """
    calls: list[str] = []
    registry = kopf.OperatorRegistry()
    use_kubeconfig = request.param == "kubeconfig"

    if use_kubeconfig:
        # kubernetes.config reads $KUBECONFIG once, at import, into this default.
        monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kube_clean.kubeconfig))
        kopf.on.login(registry=registry)(kopf.login_via_client)
    else:

        @kopf.on.login(registry=registry)
        def login(**_: Any) -> kopf.ConnectionInfo:
            return kube_clean.connection_info()

    @kopf.on.create(*TENANTS, registry=registry)
    def created(name: str, body: kopf.Body, **_: Any) -> None:
        calls.append(f"create {name}")
        kopf.info(body, reason="Created", message=f"tenant {name} created")

    @kopf.on.delete(*TENANTS, registry=registry)
    def deleted(name: str, **_: Any) -> None:
        calls.append(f"delete {name}")

    settings = kopf.OperatorSettings()
    settings.scanning.disabled = True
    settings.watching.server_timeout = 60
    settings.watching.initial_streaming = use_kubeconfig

    with running_kopf(registry, settings):
        yield calls


def test_kopf_finalizer_added_and_released(operator: list[str], custom: kubernetes.client.CustomObjectsApi) -> None:
    create_tenant(custom, "acme")
    wait_for(lambda: "create acme" in operator, "the create handler")
    wait_for(lambda: bool(custom.get_cluster_custom_object(*TENANTS, "acme")["metadata"].get("finalizers")), "kopf's finalizer")

    custom.delete_cluster_custom_object(*TENANTS, "acme")

    wait_for(lambda: not custom.list_cluster_custom_object(*TENANTS)["items"], "the tenant to disappear")
    assert operator == ["create acme", "delete acme"]


def test_kopf_posts_events_for_handlers(operator: list[str], custom: kubernetes.client.CustomObjectsApi, kube_clean: Any) -> None:
    create_tenant(custom, "acme")

    wait_for(lambda: any(event["involvedObject"]["name"] == "acme" for event in kube_clean.list("events")), "an event about acme")

    events = [event for event in kube_clean.list("events") if event["involvedObject"]["name"] == "acme"]
    assert [(event["reason"], event["message"]) for event in events] == [("Created", "tenant acme created")]
    assert events[0]["metadata"]["namespace"] == "default"


def run_kopf_with_flaky_handler(kube: Any, storage: kopf.ProgressStorage) -> list[int]:
    """Run kopf with a create handler that fails once, and return the `retry` number of each call."""
    retries: list[int] = []
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kube.connection_info()

    @kopf.on.create(*TENANTS, registry=registry)
    def flaky(retry: int, **_: Any) -> None:
        retries.append(retry)
        if len(retries) == 1:
            raise kopf.TemporaryError("fails on the first call", delay=0.1)

    settings = kopf.OperatorSettings()
    settings.scanning.disabled = True
    settings.persistence.progress_storage = storage
    with running_kopf(registry, settings):
        kube.create("tenants", tenant_manifest("acme"))
        wait_for(lambda: len(retries) >= 2, "the retried handler")
    return retries


def test_kopf_progress_in_status_is_pruned(kube_clean: Any) -> None:
    retries = run_kopf_with_flaky_handler(kube_clean, kopf.StatusProgressStorage())

    # The API server drops status.kopf, so kopf loses the record of the failed attempt.
    assert retries[:2] == [0, 0]


def test_kopf_progress_in_annotations_survives(kube_clean: Any) -> None:
    retries = run_kopf_with_flaky_handler(kube_clean, kopf.AnnotationsProgressStorage())

    assert retries[:2] == [0, 1]
