"""HTTP details of the emulator: resource URLs, request records, bodies, errors and watch lines."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import kmock
from k8s_emulator_objects import ApiError, ResourceType, bad_request, parse_field_selector, parse_label_selector
from k8s_emulator_schema import FieldError
from kmock._internal import enums, parsing, rendering

# Namespace subresources, which share the path shape of `/api/v1/namespaces/NS/PLURAL`.
_NAMESPACE_SUBRESOURCES = {"status", "finalize"}


@dataclass(frozen=True)
class ResourcePath:
    """A parsed resource URL: `/apis/GROUP/VERSION[/namespaces/NS]/PLURAL[/NAME[/SUBRESOURCE]]`."""

    group: str
    version: str
    plural: str
    namespace: str | None
    name: str | None
    subresource: str | None


def parse_resource_path(path: str) -> ResourcePath | None:
    """Parse a resource URL, or return None for discovery and other non-resource paths.

    kmock 0.8 reads `/api/v1/namespaces` and `/api/v1/namespaces/NAME` as a
    namespace prefix without a resource, so the emulator parses paths itself.
    """
    parts = [part for part in path.split("/") if part]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None

    namespace = None
    is_namespace_subresource = group == "" and len(rest) == 3 and rest[2] in _NAMESPACE_SUBRESOURCES
    if rest[0] == "namespaces" and len(rest) >= 3 and not is_namespace_subresource:
        namespace, rest = rest[1], rest[2:]

    name = rest[1] if len(rest) > 1 else None
    subresource = "/".join(rest[2:]) or None
    return ResourcePath(group, version, rest[0], namespace, name, subresource)


def make_request(raw_request: aiohttp.web.BaseRequest, path: ResourcePath, body: bytes, *, id: int) -> rendering.Request:
    """Build kmock's request record from our own path parsing, for reactions and `emulator.requests`."""
    text = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(text) if text.strip() else None
    except ValueError:
        data = None
    parsed = parsing.ParsedPath(path.group, path.version, path.plural, path.namespace, path.name, path.subresource)
    method = enums.method(raw_request.method)
    return rendering.Request(
        id=id,
        raw_request=raw_request,
        url=raw_request.url,
        method=raw_request.method,
        params=dict(raw_request.query),
        headers=dict(raw_request.headers),
        cookies=dict(raw_request.cookies),
        data=data,
        body=body,
        text=text,
        action=parsing.guess_k8s(parsed, method, dict(raw_request.query)),
        resource=kmock.resource(path.group, path.version, path.plural),
        namespace=path.namespace,
        name=path.name,
        subresource=path.subresource,
    )


def json_body(request: rendering.Request, expect: type = dict) -> Any:
    try:
        body = json.loads(request.text)
    except ValueError as error:
        raise bad_request(f"the request body is not valid JSON: {error}") from None
    if not isinstance(body, expect):
        raise bad_request(f"the request body must be a JSON {'object' if expect is dict else 'array'}")
    return body


def field_manager_name(request: rendering.Request, params: dict[str, str]) -> str:
    """Name the field manager as the API server does: `fieldManager`, else the User-Agent's program."""
    if params.get("fieldManager"):
        return params["fieldManager"]
    user_agent = request.headers.get("User-Agent", "unknown")
    return user_agent.split("/")[0] or "unknown"


def request_selector(params: dict[str, str]) -> Callable[[dict[str, Any]], bool]:
    by_labels = parse_label_selector(params.get("labelSelector"))
    by_fields = parse_field_selector(params.get("fieldSelector"))
    return lambda obj: by_labels(obj) and by_fields(obj)


def parse_resource_version(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise bad_request(f"invalid resourceVersion {text!r}: expected an integer") from None


def not_found(resource_type: ResourceType, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{resource_type.group_resource} "{name}" not found',
        {"name": name, "group": resource_type.group, "kind": resource_type.plural},
    )


def invalid(resource_type: ResourceType, name: str, errors: list[FieldError]) -> ApiError:
    rendered = [error.render() for error in errors]
    summary = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    qualified_kind = f"{resource_type.kind}.{resource_type.group}" if resource_type.group else resource_type.kind
    return ApiError(
        422, "Invalid", f'{qualified_kind} "{name}" is invalid: {summary}',
        {
            "name": name,
            "group": resource_type.group,
            "kind": resource_type.kind,
            "causes": [{"reason": error.reason, "message": error.message, "field": error.field} for error in errors],
        },
    )


@dataclass(frozen=True)
class WatchEvent:
    resource_version: int
    resource_type: ResourceType
    namespace: str | None
    type: str
    object: dict[str, Any]
    old: dict[str, Any] | None


def event_type_for_selector(event: WatchEvent, matches: Callable[[dict[str, Any]], bool]) -> str | None:
    """Translate an event for a filtered watch: leaving the selection reads as DELETED, entering as ADDED."""
    now_matches = matches(event.object)
    if event.type != "MODIFIED":
        return event.type if now_matches else None
    matched_before = event.old is not None and matches(event.old)
    if now_matches:
        return "MODIFIED" if matched_before else "ADDED"
    return "DELETED" if matched_before else None


async def write_event(response: aiohttp.web.StreamResponse, event_type: str, obj: dict[str, Any]) -> None:
    await response.write(json.dumps({"type": event_type, "object": obj}).encode() + b"\n")


def object_position(obj: dict[str, Any]) -> tuple[str, str]:
    """Return the sort key of an object in lists: (namespace, name)."""
    return obj["metadata"].get("namespace") or "", obj["metadata"]["name"]


def encode_continue_token(position: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(position)).encode()).decode()


def decode_continue_token(token: str) -> tuple[str, str]:
    try:
        namespace, name = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, TypeError):
        raise bad_request(f"invalid continue token {token!r}: pass the metadata.continue of the previous page") from None
    return str(namespace), str(name)


def parse_limit(text: str | None) -> int | None:
    """Parse the `limit` query parameter, where absent or 0 means no limit."""
    if not text:
        return None
    try:
        limit = int(text)
    except ValueError:
        raise bad_request(f"invalid limit {text!r}: expected a non-negative integer") from None
    if limit < 0:
        raise bad_request(f"invalid limit {text!r}: expected a non-negative integer")
    return limit or None
