"""The resource store on a cluster: Tenant and Plan custom resources through the Kubernetes API.

Writes use server-side apply with the caller's field manager. An apply request
must carry every field the manager owns, since the API server removes owned
fields that an apply leaves out, so `apply_tenant` rebuilds the manager's
applied configuration from `metadata.managedFields` and merges the patch into
it. Fields that other managers own (an admin's `kubectl` edits) are never sent
and so never touched.

The official client is synchronous; each call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from ..models.base import API_GROUP, API_VERSION, GROUP_VERSION
from ..models.errors import format_validation_error
from ..models.plan import Plan
from ..models.tenant import Tenant, TenantStatus, check_tenant_update
from ..naming import CONTROL_SECRET_NAME, TENANT_EVENT_NAMESPACE, namespace_name
from .base import AlreadyExists, Conflict, Event, Invalid, NotFound, ResourceStore, StoreError

logger = logging.getLogger("livery.store.kubernetes")

TENANTS = "tenants"
PLANS = "plans"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"

ResultT = TypeVar("ResultT")


def deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Return `base` with `patch` merged in as a JSON merge patch (RFC 7386).

    Objects merge key by key, lists and scalars replace, and a null removes the key.
    """
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def owned_values(obj: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """Return the parts of `obj` named by a `fieldsV1` tree (`{"f:spec": {"f:plan": {}}}`).

    A field whose entry has no `f:` children is taken whole; that covers
    scalars and atomic lists, which is every list in the Livery CRDs.
    """
    result: dict[str, Any] = {}
    for key, children in fields.items():
        if not key.startswith("f:"):
            continue
        name = key[2:]
        if name not in obj:
            continue
        nested = {child: value for child, value in (children or {}).items() if child.startswith("f:")}
        if nested and isinstance(obj[name], dict):
            result[name] = owned_values(obj[name], nested)
        else:
            result[name] = copy.deepcopy(obj[name])
    return result


def managed_spec(obj: dict[str, Any], field_manager: str) -> dict[str, Any]:
    """Return the spec fields that `field_manager` owns through apply, with their current values."""
    owned: dict[str, Any] = {}
    for entry in obj.get("metadata", {}).get("managedFields") or []:
        if entry.get("manager") != field_manager or entry.get("operation") != "Apply":
            continue
        fields = (entry.get("fieldsV1") or {}).get("f:spec")
        if fields:
            owned = deep_merge(owned, owned_values(obj.get("spec", {}), fields))
    return owned


class KubernetesStore(ResourceStore):
    """Tenant and Plan resources in a Kubernetes cluster."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._api_client = api_client
        self._custom = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)

    @classmethod
    def from_kubeconfig(cls, path: str | None = None) -> "KubernetesStore":
        """Connect with the kubeconfig at `path`, else the in-cluster service account, else ~/.kube/config."""
        configuration = client.Configuration()
        if path is None:
            try:
                config.load_incluster_config(client_configuration=configuration)
                return cls(client.ApiClient(configuration))
            except config.ConfigException:
                pass
        config.load_kube_config(config_file=path, client_configuration=configuration)
        return cls(client.ApiClient(configuration))

    def close(self) -> None:
        self._api_client.close()

    async def _call(self, function: Callable[..., ResultT], *args: Any, **kwargs: Any) -> ResultT:
        return await asyncio.to_thread(function, *args, **kwargs)

    async def _read_raw(self, plural: str, name: str) -> dict[str, Any] | None:
        try:
            return await self._call(self._custom.get_cluster_custom_object, API_GROUP, API_VERSION, plural, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _store_error(exc, f"read {plural}/{name}") from None

    async def get_tenant(self, name: str) -> Tenant:
        raw = await self._read_raw(TENANTS, name)
        if raw is None:
            raise NotFound(f"tenant {name!r} not found")
        return _tenant_from_raw(raw)

    async def list_tenants(self) -> list[Tenant]:
        try:
            listing = await self._call(self._custom.list_cluster_custom_object, API_GROUP, API_VERSION, TENANTS)
        except ApiException as exc:
            if exc.status == 404:
                return []
            raise _store_error(exc, "list tenants") from None
        tenants = [_tenant_from_raw(item) for item in listing.get("items", [])]
        return sorted(tenants, key=lambda tenant: tenant.name)

    async def apply_tenant(self, name: str, spec_patch: dict[str, Any], field_manager: str) -> Tenant:
        current = await self._read_raw(TENANTS, name)
        current_spec = (current or {}).get("spec") or {}
        merged_spec = deep_merge(current_spec, spec_patch)
        candidate = _validate_tenant(name, merged_spec, current_spec if current is not None else None)

        applied_spec = deep_merge(managed_spec(current, field_manager), spec_patch) if current else merged_spec
        body = {"apiVersion": GROUP_VERSION, "kind": "Tenant", "metadata": {"name": name}, "spec": applied_spec}
        raw = await self._apply(TENANTS, name, body, field_manager, exists=current is not None)
        logger.info("applied tenant %s as %s: %s", name, field_manager, ", ".join(sorted(spec_patch)))
        return _tenant_from_raw(raw) if raw else candidate

    async def create_tenant(self, name: str, spec: dict[str, Any], field_manager: str) -> Tenant:
        _validate_tenant(name, spec, None)
        body = {"apiVersion": GROUP_VERSION, "kind": "Tenant", "metadata": {"name": name}, "spec": spec}
        try:
            raw = await self._call(
                self._custom.create_cluster_custom_object, API_GROUP, API_VERSION, TENANTS, body,
                field_manager=field_manager,
            )
        except ApiException as exc:
            if exc.status == 409:
                raise AlreadyExists(f"tenant {name!r} already exists") from None
            raise _store_error(exc, f"create tenants/{name}") from None
        logger.info("created tenant %s as %s", name, field_manager)
        return _tenant_from_raw(raw or await self._read_raw(TENANTS, name) or body)

    async def _apply(self, plural: str, name: str, body: dict[str, Any], field_manager: str, exists: bool) -> dict[str, Any]:
        result = await self._apply_or_create(plural, name, body, field_manager, exists)
        if result is None:
            # kubernetes-client 37 decodes only 200 responses of a patch; an apply that
            # creates the object returns 201, so read the stored object back.
            result = await self._read_raw(plural, name)
        if result is None:
            raise StoreError(f"apply {plural}/{name} succeeded but the object cannot be read back")
        return result

    async def _apply_or_create(
        self, plural: str, name: str, body: dict[str, Any], field_manager: str, exists: bool
    ) -> dict[str, Any] | None:
        try:
            return await self._call(
                self._custom.patch_cluster_custom_object,
                API_GROUP,
                API_VERSION,
                plural,
                name,
                body,
                field_manager=field_manager,
                force=True,
                _content_type=APPLY_CONTENT_TYPE,
            )
        except ApiException as exc:
            # A real API server creates the object on apply. An API server without
            # server-side apply returns 404 for a new object, so create it instead.
            if exc.status != 404 or exists:
                raise _store_error(exc, f"apply {plural}/{name}") from None
        try:
            return await self._call(
                self._custom.create_cluster_custom_object,
                API_GROUP,
                API_VERSION,
                plural,
                body,
                field_manager=field_manager,
            )
        except ApiException as exc:
            raise _store_error(exc, f"create {plural}/{name}") from None

    async def delete_tenant(self, name: str) -> None:
        try:
            await self._call(self._custom.delete_cluster_custom_object, API_GROUP, API_VERSION, TENANTS, name)
        except ApiException as exc:
            if exc.status == 404:
                raise NotFound(f"tenant {name!r} not found") from None
            raise _store_error(exc, f"delete tenants/{name}") from None

    async def get_plan(self, name: str) -> Plan:
        raw = await self._read_raw(PLANS, name)
        if raw is None:
            raise NotFound(f"plan {name!r} not found")
        return Plan.model_validate(_without_server_fields(raw))

    async def list_plans(self) -> list[Plan]:
        try:
            listing = await self._call(self._custom.list_cluster_custom_object, API_GROUP, API_VERSION, PLANS)
        except ApiException as exc:
            if exc.status == 404:
                return []
            raise _store_error(exc, "list plans") from None
        plans = [Plan.model_validate(_without_server_fields(item)) for item in listing.get("items", [])]
        return sorted(plans, key=lambda plan: plan.name)

    async def apply_plan(self, plan: Plan, field_manager: str) -> Plan:
        body = plan.to_json()
        body.pop("status", None)
        body["metadata"] = {"name": plan.name}
        exists = await self._read_raw(PLANS, plan.name) is not None
        raw = await self._apply(PLANS, plan.name, body, field_manager, exists=exists)
        return Plan.model_validate(_without_server_fields(raw))

    async def tenant_events(self, name: str) -> list[Event]:
        selector = f"involvedObject.kind=Tenant,involvedObject.name={name}"
        try:
            listing = await self._call(self._core.list_namespaced_event, TENANT_EVENT_NAMESPACE, field_selector=selector)
        except ApiException as exc:
            if exc.status == 404:
                return []
            raise _store_error(exc, f"list events of tenant {name}") from None
        events = []
        for item in listing.items:
            involved = item.involved_object
            # Some API servers ignore field selectors, so filter here too.
            if involved is None or involved.kind != "Tenant" or involved.name != name:
                continue
            timestamp = item.last_timestamp or item.event_time or item.first_timestamp
            events.append(
                Event(
                    type=item.type or "Normal",
                    reason=item.reason or "",
                    message=item.message or "",
                    timestamp=timestamp.isoformat() if timestamp is not None else "",
                    count=item.count or 1,
                )
            )
        return sorted(events, key=lambda event: event.timestamp)

    async def read_tenant_secret(self, name: str) -> dict[str, str] | None:
        try:
            secret = await self._call(self._core.read_namespaced_secret, CONTROL_SECRET_NAME, namespace_name(name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _store_error(exc, f"read the secret of tenant {name}") from None
        return {key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()}


def _validate_tenant(name: str, spec: dict[str, Any], old_spec: dict[str, Any] | None) -> Tenant:
    document = {"apiVersion": GROUP_VERSION, "kind": "Tenant", "metadata": {"name": name}, "spec": spec}
    try:
        tenant = Tenant.model_validate(document)
    except ValidationError as exc:
        raise Invalid(format_validation_error(exc)) from None
    if old_spec is not None:
        try:
            old = Tenant.model_validate({**document, "spec": old_spec})
        except ValidationError:
            return tenant
        errors = check_tenant_update(old.spec, tenant.spec)
        if errors:
            raise Invalid(errors)
    return tenant


def _without_server_fields(raw: dict[str, Any]) -> dict[str, Any]:
    document = {key: raw[key] for key in ("apiVersion", "kind", "metadata", "spec", "status") if key in raw}
    metadata = dict(document.get("metadata") or {})
    metadata.pop("managedFields", None)
    document["metadata"] = metadata
    return document


def _tenant_from_raw(raw: dict[str, Any]) -> Tenant:
    document = _without_server_fields(raw)
    try:
        return Tenant.model_validate(document)
    except ValidationError:
        # A status written by a newer operator may carry fields this version does not know.
        # The spec still has to be valid, so only the status is dropped.
        status = document.pop("status", None)
        tenant = Tenant.model_validate(document)
        if isinstance(status, dict):
            known = {key: value for key, value in status.items() if key in TenantStatus.model_fields or key in _STATUS_ALIASES}
            try:
                tenant.status = TenantStatus.model_validate(known)
            except ValidationError:
                logger.warning("tenant %s has a status this version cannot read; showing none", tenant.name)
        return tenant


_STATUS_ALIASES = {field.alias for field in TenantStatus.model_fields.values() if field.alias}


def _store_error(exc: ApiException, action: str) -> StoreError:
    if exc.status == 409:
        return Conflict(f"{action}: conflict, re-read and retry")
    if exc.status == 422:
        return Invalid([f"(resource): rejected by the API server: {_status_message(exc)}"])
    return StoreError(f"{action} failed: HTTP {exc.status} {exc.reason}")


def _status_message(exc: ApiException) -> str:
    """Return the message of the API server's Status body (the CEL or schema rule that failed), else the reason."""
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return str(exc.reason)
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) and message else str(exc.reason)
