"""Field ownership (`metadata.managedFields`) and server-side apply for the emulator.

Each field manager owns a set of leaf paths, encoded as `fieldsV1` the way
the API server records it. An Update gives its writer the fields it changed.
An Apply owns exactly the fields in its configuration, removes the ones it
stopped setting, and conflicts (409) with other owners of a field whose value
it would change unless `force=true`.
"""

from __future__ import annotations

import copy
from typing import Any

from k8s_emulator_objects import ApiError, ResourceType, now_rfc3339

FieldPath = tuple[str, ...]
_SERVER_OWNED_METADATA = {
    "name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
    "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink", "generateName",
}


def leaf_paths(obj: Any, prefix: FieldPath = ()) -> set[FieldPath]:
    """Return the paths of every scalar and list in `obj`. A list counts as one atomic field."""
    if isinstance(obj, dict) and obj:
        paths: set[FieldPath] = set()
        for key, value in obj.items():
            if not prefix and key in ("apiVersion", "kind"):
                continue
            if prefix == ("metadata",) and key in _SERVER_OWNED_METADATA:
                continue
            paths |= leaf_paths(value, prefix + (key,))
        return paths
    return {prefix} if prefix else set()


def value_at(obj: Any, path: FieldPath) -> tuple[bool, Any]:
    for part in path:
        if not isinstance(obj, dict) or part not in obj:
            return False, None
        obj = obj[part]
    return True, obj


def remove_path(obj: dict[str, Any], path: FieldPath) -> None:
    """Remove the field at `path` and any object left empty above it."""
    parents = [obj]
    for part in path[:-1]:
        child = parents[-1].get(part)
        if not isinstance(child, dict):
            return
        parents.append(child)
    parents[-1].pop(path[-1], None)
    for depth in range(len(path) - 1, 0, -1):
        if parents[depth] == {}:
            parents[depth - 1].pop(path[depth - 1], None)


def fields_v1(paths: set[FieldPath]) -> dict[str, Any]:
    """Encode leaf paths as the `fieldsV1` tree: `{"f:spec": {"f:plan": {}}}`."""
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for part in path:
            node = node.setdefault(f"f:{part}", {})
    return tree


def paths_from_fields_v1(tree: dict[str, Any], prefix: FieldPath = ()) -> set[FieldPath]:
    paths: set[FieldPath] = set()
    for key, child in tree.items():
        if not key.startswith("f:"):
            continue
        path = prefix + (key[2:],)
        paths |= paths_from_fields_v1(child, path) if child else {path}
    return paths



def _ownership(obj: dict[str, Any]) -> dict[tuple[str, str, str | None], set[FieldPath]]:
    owners: dict[tuple[str, str, str | None], set[FieldPath]] = {}
    for entry in obj["metadata"].get("managedFields") or []:
        key = (entry.get("manager", ""), entry.get("operation", "Update"), entry.get("subresource"))
        owners[key] = paths_from_fields_v1(entry.get("fieldsV1") or {})
    return owners


def _write_ownership(obj: dict[str, Any], owners: dict[tuple[str, str, str | None], set[FieldPath]], api_version: str) -> None:
    present = leaf_paths(obj)
    entries = []
    for (manager, operation, subresource), paths in owners.items():
        paths = {path for path in paths if path in present}
        if not paths:
            continue
        entry = {
            "manager": manager,
            "operation": operation,
            "apiVersion": api_version,
            "time": now_rfc3339(),
            "fieldsType": "FieldsV1",
            "fieldsV1": fields_v1(paths),
        }
        if subresource:
            entry["subresource"] = subresource
        entries.append(entry)
    obj["metadata"]["managedFields"] = entries


def record_update(
    new: dict[str, Any], current: dict[str, Any] | None, manager: str, operation: str, subresource: str | None
) -> None:
    """Give `manager` the fields this write changed, taking them from their previous owners."""
    owners = _ownership(new) if current is not None else {}
    changed = {
        path for path in leaf_paths(new)
        if current is None or value_at(current, path) != value_at(new, path)
    }
    for key in owners:
        owners[key] -= changed
    owners.setdefault((manager, operation, subresource), set()).update(changed)
    _write_ownership(new, owners, new["apiVersion"])


def record_apply(new: dict[str, Any], applied: set[FieldPath], manager: str, subresource: str | None) -> None:
    owners = _ownership(new)
    owners[(manager, "Apply", subresource)] = set(applied)
    _write_ownership(new, owners, new["apiVersion"])


def applied_paths(config: dict[str, Any], subresource: str | None) -> set[FieldPath]:
    paths = leaf_paths(config)
    if subresource == "status":
        return {path for path in paths if path[0] == "status"}
    return paths


def merge_apply(
    current: dict[str, Any],
    config: dict[str, Any],
    manager: str,
    subresource: str | None,
    *,
    force: bool,
    resource_type: ResourceType,
) -> dict[str, Any]:
    """Compute the object after an apply, raising 409 when another manager owns a changed field.

    NOTE: every list is one atomic field here, but the API server merges lists
    marked `x-kubernetes-list-type: map` or `set` item by item.
    """
    owners = _ownership(current)
    applied = applied_paths(config, subresource)
    conflicts: dict[FieldPath, list[str]] = {}
    for path in sorted(applied):
        exists, current_value = value_at(current, path)
        if not exists or current_value == value_at(config, path)[1]:
            continue
        for (other, _operation, _subresource), paths in owners.items():
            if other != manager and path in paths:
                conflicts.setdefault(path, []).append(other)

    if conflicts and not force:
        causes = [
            {"type": "FieldManagerConflict", "message": f'conflict with "{other}"', "field": "." + ".".join(path)}
            for path, others in conflicts.items()
            for other in others
        ]
        listing = "; ".join(f"{cause['message']}: {cause['field']}" for cause in causes)
        raise ApiError(
            409, "Conflict", f"Apply failed with {len(causes)} conflict{'s' if len(causes) > 1 else ''}: {listing}",
            {"name": current["metadata"]["name"], "group": resource_type.group, "kind": resource_type.plural, "causes": causes},
        )

    result = copy.deepcopy(current)
    previously_applied = owners.get((manager, "Apply", subresource), set())
    owned_by_others = set().union(*(paths for key, paths in owners.items() if key[0] != manager)) if owners else set()
    for path in previously_applied - applied - owned_by_others:
        remove_path(result, path)
    for path in applied:
        _set_path(result, path, value_at(config, path)[1])

    # Forced fields move to the applier. Fields applied with an equal value stay shared.
    for path in conflicts:
        for key in owners:
            owners[key].discard(path)
    result["metadata"]["managedFields"] = copy.deepcopy(current["metadata"].get("managedFields") or [])
    _write_ownership(result, owners, resource_type.api_version)
    return result


def _set_path(obj: dict[str, Any], path: FieldPath, value: Any) -> None:
    for part in path[:-1]:
        child = obj.get(part)
        if not isinstance(child, dict):
            child = obj[part] = {}
        obj = child
    obj[path[-1]] = copy.deepcopy(value)
