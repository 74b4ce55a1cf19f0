"""Update rules: what each endpoint may change, what bumps `generation`, what counts as a no-op."""

from __future__ import annotations

from typing import Any

from k8s_emulator_schema import copy_json
from k8s_emulator_objects import ResourceType


def tracks_generation(resource_type: ResourceType) -> bool:
    return resource_type.schema is not None or resource_type.status_subresource


def desired_state(obj: dict[str, Any]) -> dict[str, Any]:
    """The part of an object whose changes bump `generation`: all but metadata and status."""
    return {key: value for key, value in obj.items() if key not in ("metadata", "status", "apiVersion", "kind")}


def without_resource_version(obj: dict[str, Any]) -> dict[str, Any]:
    copied = copy_json(obj)
    copied["metadata"].pop("resourceVersion", None)
    for entry in copied["metadata"].get("managedFields") or []:
        entry.pop("time", None)
    return copied


def scope_to_subresource(
    resource_type: ResourceType, current: dict[str, Any], candidate: dict[str, Any], subresource: str | None
) -> dict[str, Any]:
    """Keep only what the endpoint may change: status via /status, the rest via the main resource."""
    if subresource == "status":
        new = copy_json(current)
        if "status" in candidate:
            new["status"] = copy_json(candidate["status"])
        else:
            new.pop("status", None)
        return new
    new = copy_json(candidate)
    new.setdefault("metadata", {})
    if resource_type.status_subresource:
        if "status" in current:
            new["status"] = copy_json(current["status"])
        else:
            new.pop("status", None)
    return new


_SYSTEM_METADATA = ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation")


def keep_system_metadata(new: dict[str, Any], current: dict[str, Any]) -> None:
    metadata = new.setdefault("metadata", {})
    for field in _SYSTEM_METADATA:
        if field in current["metadata"]:
            metadata[field] = current["metadata"][field]
        else:
            metadata.pop(field, None)
    metadata["resourceVersion"] = current["metadata"]["resourceVersion"]
    metadata["managedFields"] = copy_json(current["metadata"].get("managedFields") or [])
