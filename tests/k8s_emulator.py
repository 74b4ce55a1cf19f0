"""Test fixtures for a Kubernetes API: `kube` (one server per session) and `kube_clean`.

No kube-apiserver can run on the test machines, so the operator's and the
control API's Kubernetes tests send HTTP requests to `LiveryKubernetesEmulator`
(kmock's KubernetesEmulator plus the API server rules in `k8s_emulator_server`).
It is served on 127.0.0.1 from a background thread with its own event loop.
kopf, the official `kubernetes` client and httpx reach it through the
kubeconfig file that the fixture writes:

    def test_something(kube_clean):
        api = kubernetes.client.CoreV1Api(kube_clean.api_client())
        ...  # or kopf with a login handler that returns kube_clean.connection_info()
        kube_clean.set_deployment_available("tenant-acme", "app", replicas=1)

Setting $KUBECONFIG in a test is not enough for `kubernetes.config.load_kube_config()`,
which reads the variable once when `kubernetes` is imported: pass `kube.kubeconfig`
as its `config_file` instead.

Helpers on the fixture read and write over HTTP like any client, so they
get exactly the responses the operator gets. Read `kube.emulator.objects`
only while no client writes, because the server thread changes it.

A test makes the server fail a request with kmock's syntax, for example
`kube.emulator["get /api/v1/namespaces/default/secrets/db"] << 503`.
`kube.reset()` and the `kube_clean` fixture remove such reactions.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml

if TYPE_CHECKING:
    from k8s_emulator_objects import ResourceType

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
CRD_DIRECTORY = REPO_ROOT / "crds"
STARTUP_TIMEOUT_SECONDS = 10


class KubeCluster:
    """A running emulator: its URL, kubeconfig and helpers that stand in for kubectl and the kubelet."""

    def __init__(self, kubeconfig_directory: Path, crd_directory: Path = CRD_DIRECTORY) -> None:
        # Imported here, so that test sessions without Kubernetes tests do not load aiohttp and CEL.
        from k8s_emulator_server import LiveryKubernetesEmulator

        self.emulator = LiveryKubernetesEmulator(crd_directory=crd_directory)
        self.kubeconfig = kubeconfig_directory / "kubeconfig.yaml"
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._startup_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="kube-emulator", daemon=True)
        self._http: httpx.Client | None = None

    # Lifecycle.

    def start(self) -> KubeCluster:
        self._thread.start()
        if not self._started.wait(STARTUP_TIMEOUT_SECONDS):
            raise RuntimeError(f"the Kubernetes emulator did not start within {STARTUP_TIMEOUT_SECONDS} s")
        if self._startup_error is not None:
            raise RuntimeError("the Kubernetes emulator failed to start") from self._startup_error
        self._write_kubeconfig()
        self._http = httpx.Client(base_url=self.url, timeout=10)
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.close()
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # start() raises it when it happens before the server is up
            if self._started.is_set():
                logger.exception("the Kubernetes emulator at %s stopped with an error", self.url)
            self._startup_error = error
            self._started.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        # The aiohttp server is used directly: kmock.Server would also patch aiohttp's
        # resolver process-wide, which the clients in other threads do not need.
        import aiohttp.test_utils

        server = aiohttp.test_utils.RawTestServer(self.emulator, host="127.0.0.1", port=0)
        async with self.emulator:
            await server.start_server()
            try:
                self.url = str(server.make_url("")).rstrip("/")
                self._started.set()
                await self._stop.wait()
                await self.emulator.close_watches()
            finally:
                await server.close()

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "livery-emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "livery-emulator", "user": {}}],  # the emulator checks no credentials
            "contexts": [
                {
                    "name": "livery-emulator",
                    "context": {"cluster": "livery-emulator", "user": "livery-emulator", "namespace": "default"},
                }
            ],
            "current-context": "livery-emulator",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")

    # Clients.

    def api_client(self) -> Any:
        """Return a `kubernetes.client.ApiClient` configured from the kubeconfig. The caller closes it."""
        import kubernetes

        return kubernetes.config.new_client_from_config(config_file=str(self.kubeconfig))

    def connection_info(self) -> Any:
        """Return `kopf.ConnectionInfo` for a kopf `@kopf.on.login()` handler."""
        import kopf

        return kopf.ConnectionInfo(server=self.url, default_namespace="default")

    # Helpers.

    def resource_type(self, resource: str) -> ResourceType:
        """Resolve a plural, kind, short name or `plural.group` (`tenants`, `Deployment`, `ing`)."""
        return self.emulator.find_type(resource)

    def path(self, resource: str, name: str | None = None, namespace: str | None = None) -> str:
        resource_type = self.resource_type(resource)
        prefix = f"/apis/{resource_type.group}/{resource_type.version}" if resource_type.group else "/api/v1"
        if resource_type.namespaced and namespace is not None:
            prefix += f"/namespaces/{namespace}"
        elif resource_type.namespaced and name is not None:
            raise ValueError(f"{resource_type.group_resource} is namespaced: pass namespace= to address {name!r}")
        path = f"{prefix}/{resource_type.plural}"
        return f"{path}/{name}" if name is not None else path

    def get(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """Return the object, or None when it does not exist."""
        response = self._client().get(self.path(resource, name, namespace))
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def list(self, resource: str, namespace: str | None = None, label_selector: str | None = None) -> list[dict[str, Any]]:
        """Return the objects of a type, across namespaces unless `namespace` is given."""
        params = {"labelSelector": label_selector} if label_selector else {}
        response = self._client().get(self.path(resource, namespace=namespace), params=params)
        response.raise_for_status()
        return response.json()["items"]

    def create(self, resource: str, body: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Create an object as a client would, raising `httpx.HTTPStatusError` when the server rejects it.

        The namespace defaults to the manifest's `metadata.namespace`.
        """
        namespace = namespace or body.get("metadata", {}).get("namespace")
        response = self._client().post(self.path(resource, namespace=namespace), json=body)
        response.raise_for_status()
        return response.json()

    def apply(self, resource: str, body: dict[str, Any], field_manager: str = "kubectl", force: bool = False) -> dict[str, Any]:
        """Server-side apply a manifest as `kubectl apply --server-side` does, creating it if missing.

        Raises `httpx.HTTPStatusError`, with 409 when another field manager owns a changed field
        and `force` is false.
        """
        metadata = body.get("metadata", {})
        params = {"fieldManager": field_manager, "force": "true" if force else "false"}
        response = self._client().patch(
            self.path(resource, metadata["name"], metadata.get("namespace")),
            params=params,
            content=json.dumps(body),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        response.raise_for_status()
        return response.json()

    def patch(
        self, resource: str, name: str, patch: dict[str, Any], namespace: str | None = None, subresource: str | None = None
    ) -> dict[str, Any]:
        """Merge-patch an object (or its `status` subresource) and return the stored result."""
        path = self.path(resource, name, namespace) + (f"/{subresource}" if subresource else "")
        response = self._client().patch(path, json=patch, headers={"Content-Type": "application/merge-patch+json"})
        response.raise_for_status()
        return response.json()

    def delete(self, resource: str, name: str, namespace: str | None = None) -> bool:
        """Request deletion and return False when the object did not exist.

        An object with finalizers only gets `deletionTimestamp` and stays until they are removed.
        """
        response = self._client().delete(self.path(resource, name, namespace))
        if response.status_code == 404:
            return False
        response.raise_for_status()
        return True

    def set_deployment_available(self, namespace: str, name: str, replicas: int) -> dict[str, Any]:
        """Report `replicas` ready and available for a Deployment, as the kubelet and controller would."""
        deployment = self.get("deployments", name, namespace)
        if deployment is None:
            raise LookupError(f'deployment "{name}" not found in namespace "{namespace}"')
        status = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                {"type": "Available", "status": "True" if replicas > 0 else "False", "reason": "MinimumReplicasAvailable"},
            ],
        }
        return self.patch("deployments", name, {"status": status}, namespace=namespace, subresource="status")

    def reset(self) -> None:
        """Remove every object and test reaction, then recreate the initial objects. The server and its URL stay."""
        self._call_in_server_loop(self.emulator.wipe)

    def compact(self) -> None:
        """Drop the watch history, so watches resuming from an older resourceVersion get 410 Gone."""
        self._call_in_server_loop(self.emulator.compact_watch_history)

    def _call_in_server_loop(self, function: Callable[[], None]) -> None:
        """Run `function` in the server's event loop, where every other write happens."""
        if self._loop is None:
            raise RuntimeError("the Kubernetes emulator is not running")

        async def call() -> None:
            function()

        asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout=10)

    def _client(self) -> httpx.Client:
        if self._http is None:
            raise RuntimeError("the Kubernetes emulator is not running")
        return self._http


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """Serve one Kubernetes API emulator for the whole test session."""
    cluster = KubeCluster(tmp_path_factory.mktemp("kube")).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def kube_clean(kube: KubeCluster) -> Iterator[KubeCluster]:
    """Give one test an emulator with only the initial objects, and wipe what it made afterwards."""
    kube.reset()
    yield kube
    kube.reset()
