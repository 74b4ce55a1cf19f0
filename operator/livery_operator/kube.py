"""A small async client for the Kubernetes API: get, list, create, server-side apply, merge and JSON patch, delete.

It reads credentials the way kubectl does, through the `kubernetes` package's
config loaders (in-cluster service account first, then `KUBECONFIG` or
`~/.kube/config`), and sends requests with aiohttp.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp
import kubernetes

FIELD_MANAGER = "livery-operator"
REQUEST_TIMEOUT_SECONDS = 30.0
MAX_CONNECTIONS = 50


@dataclass(frozen=True)
class Kind:
    """Location of a kind in the API: path prefix, plural name and whether it is namespaced."""

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


class Response:
    """Status and body of one API response, read in full."""

    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code = status_code
        self.content = content

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")


class KubeClient:
    """Async JSON requests against one API server, over aiohttp (the HTTP stack kopf uses too)."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None, ssl: Any = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Accept": "application/json", **(headers or {})}
        self.ssl = ssl
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_configuration(cls, configuration: kubernetes.client.Configuration) -> KubeClient:
        headers: dict[str, str] = {}
        # NOTE: the token is read once at start; a rotated service account token needs a restart.
        token = (configuration.api_key or {}).get("authorization") or (configuration.api_key or {}).get("BearerToken")
        if token:
            headers["Authorization"] = token if token.lower().startswith("bearer ") else f"Bearer {token}"
        context: Any = None
        if configuration.host.startswith("https"):
            if configuration.verify_ssl:
                context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
            else:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if configuration.cert_file:
                context.load_cert_chain(configuration.cert_file, configuration.key_file)
        return cls(configuration.host, headers, context)

    def _client_session(self) -> aiohttp.ClientSession:
        # Created lazily, inside the event loop that uses it.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
                connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS, ssl=self.ssl if self.ssl is not None else True),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: Any = None,
        content_type: str = "application/json",
    ) -> Response:
        data = None if json_body is None else json.dumps(json_body)
        headers = {"Content-Type": content_type} if data is not None else None
        try:
            async with self._client_session().request(
                method, self.base_url + path, params=params, data=data, headers=headers
            ) as response:
                return Response(response.status, await response.read())
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise KubeError(f"{method} {path} failed: {type(exc).__name__}: {exc}") from exc

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
            "POST", object_path(kind, None, namespace), params={"fieldManager": FIELD_MANAGER}, json_body=obj
        )
        return _checked(response, "CREATE", kind, name)

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply `obj` with the operator's field manager, taking over conflicting fields."""
        kind, name, namespace = _identity(obj)
        response = await self.request(
            "PATCH",
            object_path(kind, name, namespace),
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            json_body=obj,
            content_type="application/apply-patch+yaml",
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
            json_body=patch,
            content_type="application/merge-patch+json",
        )
        return _checked(response, "PATCH", kind, name)

    async def json_patch(
        self, kind: str, name: str, operations: list[dict[str, Any]], namespace: str | None = None
    ) -> dict[str, Any]:
        """Apply JSON patch (RFC 6902) `operations` to the object and return it."""
        response = await self.request(
            "PATCH",
            object_path(kind, name, namespace),
            params={"fieldManager": FIELD_MANAGER},
            json_body=operations,
            content_type="application/json-patch+json",
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


def _checked(response: Response, verb: str, kind: str, name: str | None) -> dict[str, Any]:
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
