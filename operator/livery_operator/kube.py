"""A small async client for the Kubernetes API: get, list, create, server-side apply, delete.

It reads credentials the way kubectl does, through the `kubernetes` package's
config loaders (in-cluster service account first, then `KUBECONFIG` or
`~/.kube/config`), and sends requests with httpx.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import kubernetes

FIELD_MANAGER = "livery-operator"
REQUEST_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Kind:
    """Where a kind lives in the API: path prefix, plural name and whether it is namespaced."""

    prefix: str
    plural: str
    namespaced: bool


KINDS: dict[str, Kind] = {
    "Namespace": Kind("/api/v1", "namespaces", False),
    "Secret": Kind("/api/v1", "secrets", True),
    "ConfigMap": Kind("/api/v1", "configmaps", True),
    "Service": Kind("/api/v1", "services", True),
    "ResourceQuota": Kind("/api/v1", "resourcequotas", True),
    "LimitRange": Kind("/api/v1", "limitranges", True),
    "Event": Kind("/api/v1", "events", True),
    "Deployment": Kind("/apis/apps/v1", "deployments", True),
    "Ingress": Kind("/apis/networking.k8s.io/v1", "ingresses", True),
    "NetworkPolicy": Kind("/apis/networking.k8s.io/v1", "networkpolicies", True),
    "Tenant": Kind("/apis/livery.dev/v1alpha1", "tenants", False),
    "Plan": Kind("/apis/livery.dev/v1alpha1", "plans", False),
}


class KubeError(Exception):
    """An API request failed; `status` is the HTTP status, or 0 when no response came."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status

    @property
    def temporary(self) -> bool:
        return self.status == 0 or self.status == 409 or self.status == 429 or self.status >= 500


def object_path(kind: str, name: str | None = None, namespace: str | None = None) -> str:
    """Return the API path of a kind's collection, or of one object when `name` is given."""
    info = KINDS[kind]
    path = info.prefix
    if info.namespaced:
        if namespace is None:
            raise ValueError(f"{kind} is namespaced, so a namespace is required")
        path += f"/namespaces/{namespace}"
    path += f"/{info.plural}"
    if name is not None:
        path += f"/{name}"
    return path


def load_client_configuration(kubeconfig: str | None = None) -> kubernetes.client.Configuration:
    """Load API server address and credentials: in-cluster first, then the kubeconfig file."""
    configuration = kubernetes.client.Configuration()
    if kubeconfig is None:
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)
            return configuration
        except kubernetes.config.ConfigException:
            pass
    kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    return configuration


class KubeClient:
    """Async JSON requests against one API server."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    @classmethod
    def from_configuration(cls, configuration: kubernetes.client.Configuration) -> KubeClient:
        headers = {"Accept": "application/json"}
        token = (configuration.api_key or {}).get("authorization") or (configuration.api_key or {}).get("BearerToken")
        if token:
            headers["Authorization"] = token if token.lower().startswith("bearer ") else f"Bearer {token}"
        verify: bool | str = configuration.ssl_ca_cert or bool(configuration.verify_ssl)
        cert = (configuration.cert_file, configuration.key_file) if configuration.cert_file else None
        http = httpx.AsyncClient(
            base_url=configuration.host,
            headers=headers,
            verify=verify,
            cert=cert,
            timeout=REQUEST_TIMEOUT_SECONDS,
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=50),
        )
        return cls(http)

    async def close(self) -> None:
        await self.http.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise KubeError(f"{method} {path} failed: {type(exc).__name__}: {exc}") from exc
        return response

    async def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """Return the object, or None when it does not exist."""
        response = await self.request("GET", object_path(kind, name, namespace))
        if response.status_code == 404:
            return None
        return _checked(response, "GET", kind, name)

    async def list(
        self, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        params = {"labelSelector": label_selector} if label_selector else None
        if KINDS[kind].namespaced and namespace is None:
            path = f"{KINDS[kind].prefix}/{KINDS[kind].plural}"
        else:
            path = object_path(kind, None, namespace)
        response = await self.request("GET", path, params=params)
        if response.status_code == 404:
            return []
        return list(_checked(response, "LIST", kind, None).get("items") or [])

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        kind, name, namespace = _identity(obj)
        response = await self.request(
            "POST", object_path(kind, None, namespace), params={"fieldManager": FIELD_MANAGER}, json=obj
        )
        return _checked(response, "CREATE", kind, name)

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply `obj` with the operator's field manager, taking over conflicting fields."""
        kind, name, namespace = _identity(obj)
        response = await self.request(
            "PATCH",
            object_path(kind, name, namespace),
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            content=json.dumps(obj),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        return _checked(response, "APPLY", kind, name)

    async def merge_patch(
        self, kind: str, name: str, patch: dict[str, Any], namespace: str | None = None, subresource: str | None = None
    ) -> dict[str, Any]:
        path = object_path(kind, name, namespace) + (f"/{subresource}" if subresource else "")
        response = await self.request(
            "PATCH",
            path,
            params={"fieldManager": FIELD_MANAGER},
            content=json.dumps(patch),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        return _checked(response, "PATCH", kind, name)

    async def delete(self, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete the object; return False when it did not exist."""
        response = await self.request("DELETE", object_path(kind, name, namespace))
        if response.status_code == 404:
            return False
        _checked(response, "DELETE", kind, name)
        return True


def _identity(obj: dict[str, Any]) -> tuple[str, str, str | None]:
    metadata = obj["metadata"]
    return obj["kind"], metadata["name"], metadata.get("namespace")


def _checked(response: httpx.Response, verb: str, kind: str, name: str | None) -> dict[str, Any]:
    if response.status_code >= 400:
        try:
            detail = response.json().get("message") or response.text
        except ValueError:
            detail = response.text
        target = f"{kind} {name}" if name else kind
        raise KubeError(f"{verb} {target} failed with HTTP {response.status_code}: {detail[:300]}", response.status_code)
    if not response.content:
        return {}
    return response.json()
