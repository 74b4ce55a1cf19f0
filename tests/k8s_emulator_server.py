"""A Kubernetes API server for tests: kmock's KubernetesEmulator with the API server's rules.

kmock 0.8 serves discovery, stores objects and streams them, but treats every
write as a recursive dict merge. `LiveryKubernetesEmulator` keeps kmock's
discovery, object store (`emulator.objects`) and user reactions
(`emulator['get /api/v1/...'] << 500` still intercepts a request first). It
serves every resource request itself, with the behaviour that the operator and
the clients rely on:

- `uid`, `creationTimestamp`, a cluster-wide `resourceVersion` bumped on every
  write, and `generation` bumped when anything but metadata and status changes.
- 409 Conflict for a stale `metadata.resourceVersion` and for an existing name,
  422 when a JSON patch `test` operation fails (kopf reads 422 as "retry later"),
  404 with a `Status` body for missing objects.
- Merge, JSON, strategic merge and server-side apply patches, and
  `managedFields` with apply conflicts between field managers.
- The `status` subresource, deletion with finalizers, namespace termination and
  garbage collection through `ownerReferences`.
- Label and field selectors on lists, watches and collection deletes, paged
  lists, and watch streams that resume from a `resourceVersion` and carry
  bookmarks.
- Pruning, defaulting, OpenAPI validation and CEL rules of the CRDs in `crds/`,
  and server defaults of Secrets, Deployments and Services.

Every write happens in one event loop without awaiting, so writes are atomic
without locks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import string
import uuid
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml
from k8s_emulator_builtins import admit_builtin
from k8s_emulator_deletion import DeletionMixin
from k8s_emulator_fields import FieldPath, applied_paths, merge_apply, record_apply, record_update
from k8s_emulator_http import (
    ResourcePath,
    WatchEvent,
    decode_continue_token,
    encode_continue_token,
    field_manager_name,
    invalid,
    json_body,
    make_request,
    not_found,
    object_position,
    parse_limit,
    parse_resource_path,
    request_selector,
)
from k8s_emulator_objects import (
    ALL_VERBS,
    BUILTIN_TYPES,
    ApiError,
    ResourceType,
    bad_request,
    crd_resource_types,
    load_crds,
    metadata_errors,
    name_error,
    now_rfc3339,
)
from k8s_emulator_openapi import KUBERNETES_VERSION, drop_unknown_fields, openapi_errors
from k8s_emulator_schema import FieldError, copy_json
from k8s_emulator_patches import APPLY_PATCH_TYPE, patch_body
from k8s_emulator_watch import WatchMixin
from k8s_emulator_updates import (
    desired_state,
    keep_system_metadata,
    scope_to_subresource,
    tracks_generation,
    without_resource_version,
)
from kmock._internal import rendering

logger = logging.getLogger(__name__)

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
SERVER_VERSION = {
    "major": str(KUBERNETES_VERSION[0]),
    "minor": str(KUBERNETES_VERSION[1]),
    "gitVersion": f"v{KUBERNETES_VERSION[0]}.{KUBERNETES_VERSION[1]}.0-livery-emulator",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-08-13T00:00:00Z",
    "goVersion": "go1.22.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@attrs.define(kw_only=True)
class LiveryKubernetesEmulator(WatchMixin, DeletionMixin, kmock.KubernetesEmulator):
    """kmock's emulator with the API server behaviour listed in the module docstring."""

    crd_directory: Path | None = None
    # How many requests `emulator.requests` and object versions `.history` keep; None keeps all.
    # Long runs such as the operator benchmark set them, because every record stays in memory.
    request_log_limit: int | None = None
    history_limit: int | None = None

    _crds: list[dict[str, Any]] = attrs.field(factory=list, init=False)
    _types: dict[tuple[str, str, str], ResourceType] = attrs.field(factory=dict, init=False)
    _last_resource_version: int = attrs.field(default=0, init=False)
    _watch_events: list[WatchEvent] = attrs.field(factory=list, init=False)
    _watch_event_added: asyncio.Event = attrs.field(factory=asyncio.Event, init=False)
    _closing: bool = attrs.field(default=False, init=False)
    _request_count: int = attrs.field(default=0, init=False)
    # The user reactions in matching order, for the `_payloads` whose ids form the key.
    _user_payloads: tuple[tuple[int, ...], list[Any]] = attrs.field(factory=lambda: ((), []), init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.fallback["get /version/"] << self._serve_server_version  # the kubernetes client adds the slash
        for resource_type in BUILTIN_TYPES:
            self.declare(resource_type)
        self._crds = load_crds(self.crd_directory) if self.crd_directory else []
        for crd in self._crds:
            for resource_type in crd_resource_types(crd):
                self.declare(resource_type)
        self.create_initial_objects()

    # Discovery, served by kmock with these corrections.

    async def _serve_server_version(self, request: rendering.Request) -> dict[str, Any]:
        """Report KUBERNETES_VERSION, whose schemas the emulator validates against."""
        return dict(SERVER_VERSION)

    async def _serve_version(self, request: rendering.Request) -> dict[str, Any]:
        """List resources as kmock does, but with the verbs a status subresource really has."""
        listing = await super()._serve_version(request)
        for entry in listing["resources"]:
            if entry["name"].endswith("/status"):
                entry["verbs"] = ["get", "patch", "update"]
                entry["shortNames"], entry["categories"] = [], []
        return listing

    # Resource types.

    def declare(self, resource_type: ResourceType) -> None:
        """Serve a resource type and list it in discovery."""
        self._types[resource_type.group, resource_type.version, resource_type.plural] = resource_type
        self.resources[kmock.resource(resource_type.group, resource_type.version, resource_type.plural)] = (
            kmock.ResourceInfo(
                kind=resource_type.kind,
                singular=resource_type.singular,
                namespaced=resource_type.namespaced,
                verbs=set(ALL_VERBS),
                shortnames=set(resource_type.short_names),
                categories=set(resource_type.categories),
                subresources={"status"} if resource_type.status_subresource else set(),
            )
        )

    @property
    def resource_types(self) -> list[ResourceType]:
        return list(self._types.values())

    def find_type(self, name: str) -> ResourceType:
        """Find a type by plural, kind, short name, `plural.group` or `group/version/plural`.

        An ambiguous name (`events`) resolves to the core group, as kubectl does.
        """
        requested = name.lower()
        matches = [resource_type for resource_type in self._types.values() if requested in resource_type.names()]
        matches.sort(key=lambda resource_type: resource_type.group != "")
        if not matches:
            known = sorted(resource_type.group_resource for resource_type in self._types.values())
            raise KeyError(f"unknown resource type {name!r}, expected one of {known}")
        return matches[0]

    def _type_of(self, path: ResourcePath) -> ResourceType:
        resource_type = self._types.get((path.group, path.version, path.plural))
        if resource_type is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return resource_type

    # State.

    def create_initial_objects(self) -> None:
        """Create what every cluster starts with: the system namespaces and the served CRDs."""
        namespaces = self._types["", "v1", "namespaces"]
        for name in DEFAULT_NAMESPACES:
            self.create_object(namespaces, None, {"metadata": {"name": name}}, params={})
        crd_type = self._types["apiextensions.k8s.io", "v1", "customresourcedefinitions"]
        for crd in self._crds:
            body = copy_json(crd)
            body["status"] = {"conditions": [{"type": "Established", "status": "True", "reason": "InitialNamesAccepted"}]}
            self.create_object(crd_type, None, body, params={})

    def wipe(self) -> None:
        """Remove test reactions and every object (watchers get DELETED events), then recreate the initial ones."""
        self._payloads[:] = [payload for payload in self._payloads if -math.inf in payload.priorities]
        for resource_type, namespace, obj in list(self._iter_objects()):
            self._remove(resource_type, obj, collect_garbage=False)
        self.create_initial_objects()

    def _iter_objects(self) -> list[tuple[ResourceType, str | None, dict[str, Any]]]:
        found = []
        for (resource, namespace, _name), entry in self._objects.items():
            if entry.deleted:
                continue
            resource_type = self._types.get((resource.group, resource.version, resource.plural))
            if resource_type is not None:
                found.append((resource_type, namespace, entry.raw))
        found.sort(key=lambda item: (item[1] or "", item[2]["metadata"]["name"]))
        return found

    def _key(self, resource_type: ResourceType, namespace: str | None, name: str) -> tuple[Any, str | None, str]:
        return (kmock.resource(resource_type.group, resource_type.version, resource_type.plural), namespace, name)

    def read_object(self, resource_type: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
        key = self._key(resource_type, namespace if resource_type.namespaced else None, name)
        if key not in self._objects or self._objects[key].deleted:
            return None
        return copy_json(self._objects[key].raw)

    def _read_or_404(self, resource_type: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self.read_object(resource_type, namespace, name)
        if obj is None:
            raise not_found(resource_type, name)
        return obj

    def _next_resource_version(self) -> int:
        self._last_resource_version += 1
        return self._last_resource_version

    def _store(self, resource_type: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
        """Write `obj` with a new resourceVersion and tell the watchers."""
        resource_version = self._next_resource_version()
        obj["metadata"]["resourceVersion"] = str(resource_version)
        namespace = obj["metadata"].get("namespace")
        key = self._key(resource_type, namespace, obj["metadata"]["name"])
        # One copy serves as both the stored version and the watch event, because neither is changed in place.
        stored = copy_json(obj)
        if key in self._objects:
            history = self._objects[key].history
            history.append(stored)
            if self.history_limit is not None and len(history) > self.history_limit:
                del history[: len(history) - self.history_limit]
        else:
            self._objects[key] = stored
        self._record_event(resource_version, resource_type, namespace, "ADDED" if old is None else "MODIFIED", stored, old)
        return obj

    def _remove(self, resource_type: ResourceType, obj: dict[str, Any], *, collect_garbage: bool = True) -> dict[str, Any]:
        """Delete `obj` for good: emit DELETED, finish a terminating namespace, collect dependents."""
        final = copy_json(obj)
        resource_version = self._next_resource_version()
        final["metadata"]["resourceVersion"] = str(resource_version)
        namespace = final["metadata"].get("namespace")
        self._objects[self._key(resource_type, namespace, final["metadata"]["name"])].delete()
        self._record_event(resource_version, resource_type, namespace, "DELETED", copy_json(final), obj)

        if collect_garbage:
            self._delete_dependents(final["metadata"]["uid"])
            if namespace is not None:
                self._finish_namespace_if_empty(namespace)
        return final

    # HTTP entry point.

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        path = parse_resource_path(raw_request.path)
        if path is None:
            return await super().__call__(raw_request)

        body = await raw_request.read()
        request = make_request(raw_request, path, body, id=self._request_count)
        self._request_count += 1
        self._requests.append(request)
        if self.request_log_limit is not None and len(self._requests) > 2 * self.request_log_limit:
            del self._requests[: len(self._requests) - self.request_log_limit]
        try:
            response = await self._serve_user_reactions(request)
            if response is not None:
                return response
            return await self._serve_resource(request, path, raw_request)
        except ApiError as error:
            logger.debug("rejected %s %s with %d %s: %s", raw_request.method, raw_request.path_qs, error.code, error.reason, error.message)
            return aiohttp.web.json_response(error.status(), status=error.code)
        except Exception as error:  # an emulator bug: return 500 so that the client fails loudly
            logger.exception("emulator failed on %s %s", raw_request.method, raw_request.path_qs)
            if self._errors:
                self._errors[-1].append(error)
            internal = ApiError(500, "InternalError", f"emulator error: {error!r}")
            return aiohttp.web.json_response(internal.status(), status=500)

    async def _serve_user_reactions(self, request: rendering.Request) -> aiohttp.web.StreamResponse | None:
        """Serve the request from a reaction a test added (`emulator[...] << 500`), if one matches.

        This repeats the matching loop of kmock 0.8's `RawHandler._handle`, using its private
        `_source` and `_disabled`, for reactions without the fallback priority only.
        """
        for payload in self._sorted_user_payloads():
            if request in payload._source and not payload._disabled.is_set():
                try:
                    return await payload(request)
                except rendering.ReactionMismatchError:
                    payload._disabled.set()
                except NotImplementedError:
                    pass
        return None

    def _sorted_user_payloads(self) -> list[Any]:
        """Return the reactions without the fallback priority, highest priority first.

        Computing a payload's priorities walks kmock's DSL tree, so the sorted list is
        kept until a test adds or replaces a reaction, which changes `_payloads`.
        """
        key = tuple(id(payload) for payload in self._payloads)
        if key != self._user_payloads[0]:
            user_payloads = [payload for payload in self._payloads if -math.inf not in payload.priorities]
            user_payloads.sort(key=lambda payload: tuple(-priority for priority in payload.priorities))
            self._user_payloads = (key, user_payloads)
        return self._user_payloads[1]

    async def _serve_resource(
        self, request: rendering.Request, path: ResourcePath, raw_request: aiohttp.web.BaseRequest
    ) -> aiohttp.web.StreamResponse:
        resource_type = self._type_of(path)
        if resource_type.namespaced is False and path.namespace is not None:
            raise ApiError(404, "NotFound", f"{resource_type.group_resource} is cluster-scoped")
        if path.subresource not in (None, "status") and not (path.plural == "namespaces" and path.subresource == "finalize"):
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path.subresource})")
        if path.subresource == "status" and not resource_type.status_subresource:
            raise ApiError(404, "NotFound", f"{resource_type.group_resource} has no status subresource")

        params = dict(raw_request.query)
        method = raw_request.method.upper()
        if method == "GET" and params.get("watch") in ("true", "1"):
            return await self._serve_watch(resource_type, path, params, raw_request)

        status, payload = self._dispatch(method, resource_type, path, params, request)
        return aiohttp.web.json_response(payload, status=status)

    def _dispatch(
        self, method: str, resource_type: ResourceType, path: ResourcePath, params: dict[str, str], request: rendering.Request
    ) -> tuple[int, dict[str, Any]]:
        namespace = path.namespace if resource_type.namespaced else None
        if path.name is None:
            if method == "GET":
                return 200, self.list_objects(resource_type, namespace, params)
            if method == "POST":
                return 201, self.create_object(resource_type, namespace, json_body(request), params, field_manager_name(request, params))
            if method == "DELETE":
                return 200, self.delete_collection(resource_type, namespace, params)
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on a collection")

        if method == "GET":
            obj = self._read_or_404(resource_type, namespace, path.name)
            return 200, obj
        if method == "PUT":
            return 200, self.replace_object(
                resource_type, namespace, path.name, path.subresource, json_body(request), params, field_manager_name(request, params)
            )
        if method == "PATCH":
            return self.patch_object(resource_type, namespace, path.name, path.subresource, request, params)
        if method == "DELETE":
            options = json_body(request) if request.body.strip() else {}
            return 200, self.delete_object(resource_type, namespace, path.name, options, params)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on an object")

    # Reads.

    def list_objects(self, resource_type: ResourceType, namespace: str | None, params: dict[str, str]) -> dict[str, Any]:
        matches = request_selector(params)
        items = [
            obj
            for found_type, found_namespace, obj in self._iter_objects()
            if found_type == resource_type and (namespace is None or found_namespace == namespace) and matches(obj)
        ]
        metadata: dict[str, Any] = {"resourceVersion": str(self._last_resource_version)}

        # Pages continue after the last (namespace, name) of the previous page.
        # NOTE: a real API server serves every page from the snapshot of the first one; here
        # later pages see objects written in between.
        if params.get("continue"):
            after = decode_continue_token(params["continue"])
            items = [obj for obj in items if object_position(obj) > after]
        limit = parse_limit(params.get("limit"))
        if limit is not None and len(items) > limit:
            metadata["continue"] = encode_continue_token(object_position(items[limit - 1]))
            metadata["remainingItemCount"] = len(items) - limit
            items = items[:limit]

        return {
            "kind": f"{resource_type.kind}List",
            "apiVersion": resource_type.api_version,
            "metadata": metadata,
            "items": items,
        }

    # Create.

    def create_object(
        self,
        resource_type: ResourceType,
        namespace: str | None,
        body: dict[str, Any],
        params: dict[str, str],
        manager: str = "emulator",
    ) -> dict[str, Any]:
        obj = copy_json(body)
        metadata = obj.setdefault("metadata", {})
        self._check_kind(resource_type, obj)
        obj["apiVersion"], obj["kind"] = resource_type.api_version, resource_type.kind

        if resource_type.namespaced:
            namespace = self._check_namespace(namespace, metadata.get("namespace"))
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)

        name = metadata.get("name") or self._generate_name(resource_type, namespace, metadata.get("generateName"))
        metadata["name"] = name
        if error := name_error(resource_type, name):
            raise invalid(resource_type, name, [FieldError("metadata.name", "FieldValueInvalid", f"Invalid value: {json.dumps(name)}: {error}")])
        if self.read_object(resource_type, namespace, name) is not None:
            raise ApiError(
                409, "AlreadyExists", f'{resource_type.group_resource} "{name}" already exists',
                {"name": name, "group": resource_type.group, "kind": resource_type.plural},
            )

        for field in ("uid", "resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
            metadata.pop(field, None)
        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = now_rfc3339()
        if tracks_generation(resource_type):
            metadata["generation"] = 1
        if resource_type.status_subresource and resource_type.schema is not None:
            obj.pop("status", None)  # a CRD with a status subresource ignores status on create
        if resource_type.plural == "namespaces":
            obj.setdefault("spec", {})["finalizers"] = ["kubernetes"]
            obj["status"] = {"phase": "Active"}

        obj = self._admit(resource_type, obj, old=None, field_validation=params.get("fieldValidation"))
        record_update(obj, None, manager, "Update", None, resource_type)
        if params.get("dryRun") == "All":
            return obj
        return self._store(resource_type, obj, old=None)

    def _check_kind(self, resource_type: ResourceType, obj: dict[str, Any]) -> None:
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind is not None and kind != resource_type.kind:
            raise bad_request(f"the kind {kind!r} of the object does not match the URL's resource {resource_type.group_resource}")
        if api_version is not None and api_version != resource_type.api_version:
            raise bad_request(f"the apiVersion {api_version!r} of the object does not match the URL's {resource_type.api_version!r}")

    def _check_namespace(self, url_namespace: str | None, body_namespace: str | None) -> str:
        if url_namespace is None:
            raise bad_request("a namespaced object must be created under /namespaces/NAMESPACE/")
        if body_namespace is not None and body_namespace != url_namespace:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        namespace = self.read_object(self._types["", "v1", "namespaces"], None, url_namespace)
        if namespace is None:
            raise ApiError(404, "NotFound", f'namespaces "{url_namespace}" not found', {"name": url_namespace, "kind": "namespaces"})
        if namespace["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403, "Forbidden",
                f"unable to create new content in namespace {url_namespace} because it is being terminated",
            )
        return url_namespace

    def _generate_name(self, resource_type: ResourceType, namespace: str | None, prefix: str | None) -> str:
        if not prefix:
            raise invalid(resource_type, "", [FieldError("metadata.name", "FieldValueRequired", "Required value: name or generateName is required")])
        alphabet = string.ascii_lowercase + string.digits
        while True:
            name = prefix + "".join(secrets.choice(alphabet) for _ in range(5))
            if self.read_object(resource_type, namespace, name) is None:
                return name

    def _admit(
        self, resource_type: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None, field_validation: str | None = None
    ) -> dict[str, Any]:
        """Default and validate `obj` as the API server does for its kind, raising 422 on errors.

        Unknown fields are dropped, or rejected with 400 when the request sets
        `fieldValidation=Strict`.
        """
        name = obj["metadata"].get("name", "")
        errors = metadata_errors(obj["metadata"])
        unknown: list[str] = []
        if resource_type.schema is None:
            unknown, valid = drop_unknown_fields(obj)
            errors += admit_builtin(resource_type, obj, old)
            # The defaults that admit_builtin adds are valid values, so a valid object stays valid.
            type_errors, openapi_rule_errors = ([], []) if valid else openapi_errors(obj)
            if type_errors:
                details = "; ".join(error.render() for error in type_errors)
                raise bad_request(f'{resource_type.kind} in version "{resource_type.version}" cannot be handled as a {resource_type.kind}: {details}')
            errors += openapi_rule_errors
            admitted = obj
        else:
            admitted, schema_errors = resource_type.schema.admit(obj, old, dropped=unknown)
            errors += schema_errors
        if unknown and field_validation == "Strict":
            raise bad_request(f"strict decoding error: {', '.join(f'unknown field {json.dumps(path)}' for path in unknown)}")
        if errors:
            # The emulator's own checks and the OpenAPI schema can both find one problem.
            unique: dict[tuple[str, str], FieldError] = {}
            for error in errors:
                unique.setdefault((error.field, error.reason), error)
            raise invalid(resource_type, name, list(unique.values()))
        return admitted

    # Update.

    def replace_object(
        self,
        resource_type: ResourceType,
        namespace: str | None,
        name: str,
        subresource: str | None,
        body: dict[str, Any],
        params: dict[str, str],
        manager: str,
    ) -> dict[str, Any]:
        current = self._read_or_404(resource_type, namespace, name)
        body_name = body.get("metadata", {}).get("name")
        if body_name is not None and body_name != name:
            raise bad_request(f"the name of the object ({body_name}) does not match the name on the URL ({name})")
        if resource_type.schema is not None and not body.get("metadata", {}).get("resourceVersion"):
            raise invalid(resource_type, name, [FieldError(
                "metadata.resourceVersion", "FieldValueInvalid", "Invalid value: 0x0: must be specified for an update"
            )])
        self._check_kind(resource_type, body)
        return self._update(resource_type, current, copy_json(body), subresource, params, manager, "Update")

    def patch_object(
        self,
        resource_type: ResourceType,
        namespace: str | None,
        name: str,
        subresource: str | None,
        request: rendering.Request,
        params: dict[str, str],
    ) -> tuple[int, dict[str, Any]]:
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        current = self.read_object(resource_type, namespace, name)

        if content_type == APPLY_PATCH_TYPE:
            return self._apply(resource_type, namespace, name, subresource, current, request, params)
        if current is None:
            raise not_found(resource_type, name)

        manager = field_manager_name(request, params)
        candidate = patch_body(resource_type, current, content_type, json_body(request, expect=object))
        return 200, self._update(resource_type, current, candidate, subresource, params, manager, "Update")

    def _apply(
        self,
        resource_type: ResourceType,
        namespace: str | None,
        name: str,
        subresource: str | None,
        current: dict[str, Any] | None,
        request: rendering.Request,
        params: dict[str, str],
    ) -> tuple[int, dict[str, Any]]:
        """Server-side apply: create or merge, owning the applied fields and removing dropped ones."""
        manager = params.get("fieldManager")
        if not manager:
            raise bad_request("PATCH with application/apply-patch+yaml requires the fieldManager query parameter")
        try:
            config = yaml.safe_load(request.text)
        except yaml.YAMLError as error:
            raise bad_request(f"the apply configuration is not valid YAML: {error}") from None
        if not isinstance(config, dict):
            raise bad_request("the apply configuration must be an object")
        self._check_kind(resource_type, config)
        config_name = config.get("metadata", {}).get("name")
        if config_name is not None and config_name != name:
            raise bad_request(f"the name of the object ({config_name}) does not match the name on the URL ({name})")

        if current is None:
            if subresource is not None:
                raise not_found(resource_type, name)
            body = copy_json(config)
            body.setdefault("metadata", {})["name"] = name
            created = self.create_object(resource_type, namespace, body, {**params, "dryRun": "All"}, manager)
            created["metadata"]["managedFields"] = []
            record_apply(created, applied_paths(config, subresource, resource_type), manager, subresource, resource_type)
            if params.get("dryRun") == "All":
                return 201, created
            return 201, self._store(resource_type, created, old=None)

        candidate = merge_apply(current, config, manager, subresource, force=params.get("force") == "true",
                                 resource_type=resource_type)
        return 200, self._update(resource_type, current, candidate, subresource, params, manager, "Apply",
                                 applied=applied_paths(config, subresource, resource_type))

    def _update(
        self,
        resource_type: ResourceType,
        current: dict[str, Any],
        candidate: dict[str, Any],
        subresource: str | None,
        params: dict[str, str],
        manager: str,
        operation: str,
        applied: set[FieldPath] | None = None,
    ) -> dict[str, Any]:
        """Turn a requested new state into the stored one, enforcing the update rules."""
        name = current["metadata"]["name"]
        requested_version = candidate.get("metadata", {}).get("resourceVersion")
        if requested_version and requested_version != current["metadata"]["resourceVersion"]:
            raise ApiError(
                409, "Conflict",
                f'Operation cannot be fulfilled on {resource_type.group_resource} "{name}": '
                "the object has been modified; please apply your changes to the latest version and try again",
                {"name": name, "group": resource_type.group, "kind": resource_type.plural},
            )

        new = scope_to_subresource(resource_type, current, candidate, subresource)
        new["apiVersion"], new["kind"] = resource_type.api_version, resource_type.kind
        keep_system_metadata(new, current)
        if operation == "Apply":  # merge_apply already moved the ownership of forced fields
            new["metadata"]["managedFields"] = candidate["metadata"]["managedFields"]

        if current["metadata"].get("deletionTimestamp"):
            added = set(new["metadata"].get("finalizers") or []) - set(current["metadata"].get("finalizers") or [])
            if added:
                raise invalid(resource_type, name, [FieldError(
                    "metadata.finalizers", "FieldValueForbidden",
                    f"Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {sorted(added)}",
                )])

        new = self._admit(resource_type, new, old=current, field_validation=params.get("fieldValidation"))
        if tracks_generation(resource_type) and desired_state(new) != desired_state(current):
            new["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
        if operation == "Apply":
            record_apply(new, applied or set(), manager, subresource, resource_type)
        else:
            record_update(new, current, manager, operation, subresource, resource_type)

        if without_resource_version(new) == without_resource_version(current):
            return current  # a no-op write changes nothing, not even the resourceVersion
        if params.get("dryRun") == "All":
            return new

        stored = self._store(resource_type, new, old=current)
        if stored["metadata"].get("deletionTimestamp") and not stored["metadata"].get("finalizers"):
            if resource_type.plural != "namespaces":
                return self._remove(resource_type, stored)
            self._finish_namespace_if_empty(name)
        return stored
