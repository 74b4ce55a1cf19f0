"""The patch formats of the Kubernetes API: JSON merge, strategic merge and JSON patch.

Server-side apply lives in `k8s_emulator_fields`, because it depends on field ownership.
"""

from __future__ import annotations

from typing import Any

import jsonpatch
from k8s_emulator_objects import ApiError, ResourceType
from k8s_emulator_schema import copy_json

MERGE_PATCH_TYPE = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH_TYPE = "application/strategic-merge-patch+json"
JSON_PATCH_TYPE = "application/json-patch+json"
APPLY_PATCH_TYPE = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH_TYPE, MERGE_PATCH_TYPE, STRATEGIC_MERGE_PATCH_TYPE, APPLY_PATCH_TYPE)

# patchMergeKey of the built-in list fields that operators patch, from the Kubernetes API types.
# `ports` is keyed by `containerPort` in containers and by `port` in Services.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
}
# Lists of scalars whose patchStrategy is merge: a patch adds its items instead of replacing the list.
_MERGED_SCALAR_LISTS = {"finalizers"}


def patch_body(resource_type: ResourceType, current: dict[str, Any], content_type: str, patch: Any) -> dict[str, Any]:
    """Return `current` with a merge, strategic merge or JSON patch applied; raise 415 or 422 if it cannot be."""
    if content_type == MERGE_PATCH_TYPE:
        return merge_patch(current, _expect(patch, dict))
    if content_type == STRATEGIC_MERGE_PATCH_TYPE:
        if resource_type.schema is not None:
            raise ApiError(
                415, "UnsupportedMediaType",
                "strategic merge patch is not supported for custom resources: use application/merge-patch+json",
            )
        return strategic_merge_patch(current, _expect(patch, dict))
    if content_type == JSON_PATCH_TYPE:
        return apply_json_patch(current, _expect(patch, list))
    raise ApiError(
        415, "UnsupportedMediaType",
        f"the body of the request was in an unknown format {content_type!r}: accepted media types are {', '.join(PATCH_TYPES)}",
    )


def _expect(patch: Any, kind: type) -> Any:
    if not isinstance(patch, kind):
        raise ApiError(400, "BadRequest", f"the patch must be a JSON {'object' if kind is dict else 'array'}")
    return patch


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply a JSON merge patch (RFC 7386): objects merge, `null` deletes, lists replace."""
    if not isinstance(patch, dict):
        return copy_json(patch)
    result = copy_json(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: dict[str, Any]) -> Any:
    """Apply a strategic merge patch: lists with a merge key merge item by item.

    Supports the `$patch: replace|delete` and `$deleteFromPrimitiveList/FIELD`
    directives. NOTE: `$setElementOrder` and `$retainKeys` are ignored, and lists
    missing from the merge key table above are replaced as in a merge patch.
    """
    if patch.get("$patch") == "replace":
        return {key: copy_json(value) for key, value in patch.items() if key != "$patch"}
    result = copy_json(target) if isinstance(target, dict) else {}

    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [item for item in result.get(field) or [] if item not in value]
            continue

        current = result.get(key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and value.get("$patch") == "delete":
            result.pop(key, None)
        elif isinstance(value, dict):
            result[key] = strategic_merge_patch(current, value)
        elif isinstance(value, list) and isinstance(current, list):
            result[key] = _merge_list(key, current, value)
        else:
            result[key] = copy_json(value)
    return result


def _merge_list(field: str, current: list[Any], patch: list[Any]) -> list[Any]:
    merge_key = MERGE_KEYS.get(field)
    if field == "ports":
        merge_key = "containerPort" if any("containerPort" in item for item in current + patch if isinstance(item, dict)) else "port"
    if field in _MERGED_SCALAR_LISTS:
        return current + [item for item in patch if item not in current]
    if merge_key is None:
        return copy_json(patch)

    result = copy_json(current)
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise ApiError(422, "Invalid", f"{field}: every item of a strategic merge patch needs the merge key {merge_key!r}")
        index = next((i for i, existing in enumerate(result) if existing.get(merge_key) == item[merge_key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(strategic_merge_patch({}, item))
        else:
            result[index] = strategic_merge_patch(result[index], item)
    return result


def apply_json_patch(current: dict[str, Any], operations: list[Any]) -> dict[str, Any]:
    try:
        return jsonpatch.apply_patch(current, operations)
    except jsonpatch.JsonPatchTestFailed as error:
        # The API server rejects a failed `test` with 422, which kopf reads as "changed meanwhile, retry".
        raise ApiError(422, "Invalid", f"the JSON patch test operation failed: {error}") from None
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
        raise ApiError(422, "Invalid", f"the JSON patch cannot be applied: {error}") from None
