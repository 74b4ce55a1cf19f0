"""Field ownership (`metadata.managedFields`) and server-side apply for the emulator.

Each field manager owns a set of leaf paths, encoded as `fieldsV1` the way the
API server records it. A path is a tuple of `fieldsV1` keys: `f:NAME` for an
object field, `v:VALUE` for an item of a set list and `k:{KEYS}` for an item of
a map list, so `("f:spec", "f:domains", 'v:"a.example.com"')` is one domain.
An Update gives its writer the fields it changed. An Apply owns exactly the
fields in its configuration, removes the ones it stopped setting, and
conflicts (409) with other owners of a field whose value it would change
unless `force=true`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from k8s_emulator_schema import copy_json
from k8s_emulator_objects import ApiError, ResourceType, now_rfc3339
from k8s_emulator_patches import MERGE_KEYS

FieldPath = tuple[str, ...]
Owners = dict[tuple[str, str, str | None], set[FieldPath]]

_SERVER_OWNED_METADATA = {
    "name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
    "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink", "generateName",
}


@dataclass(frozen=True)
class ListType:
    """How apply merges a list: whole (`atomic`), by value (`set`) or by key fields (`map`)."""

    kind: str
    keys: tuple[str, ...] = ()


ATOMIC = ListType("atomic")
_METADATA_LISTS = {"f:finalizers": ListType("set"), "f:ownerReferences": ListType("map", ("uid",))}


def list_type(resource_type: ResourceType, path: FieldPath, items: list[Any]) -> ListType:
    """Return the list type at `path`: from `x-kubernetes-list-type` for CRDs, from merge keys for built-in kinds.

    NOTE: a built-in list missing from MERGE_KEYS is atomic here, even where the API
    server's OpenAPI document marks it as a map or set.
    """
    if len(path) == 2 and path[0] == "f:metadata":
        return _METADATA_LISTS.get(path[1], ATOMIC)
    if resource_type.schema is not None:
        return _schema_list_type(resource_type.schema.schema, path)

    field = path[-1][2:] if path[-1].startswith("f:") else ""
    if field == "ports":
        has_container_ports = any(isinstance(item, dict) and "containerPort" in item for item in items)
        return ListType("map", ("containerPort",) if has_container_ports else ("port",))
    if field in MERGE_KEYS:
        return ListType("map", (MERGE_KEYS[field],))
    return ATOMIC


def _schema_list_type(schema: dict[str, Any], path: FieldPath) -> ListType:
    node: dict[str, Any] | None = schema
    for element in path:
        if node is None:
            return ATOMIC
        if element.startswith("f:"):
            properties = node.get("properties", {})
            additional = node.get("additionalProperties")
            node = properties.get(element[2:]) or (additional if isinstance(additional, dict) else None)
        else:
            node = node.get("items")
    if node is None:
        return ATOMIC
    if node.get("x-kubernetes-list-type") == "set":
        return ListType("set")
    if node.get("x-kubernetes-list-type") == "map":
        return ListType("map", tuple(node.get("x-kubernetes-list-map-keys", ())))
    return ATOMIC


def _encode(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _item_element(kind: ListType, item: Any) -> str | None:
    """Return the `v:`/`k:` element of a list item, or None when the item cannot be keyed."""
    if kind.kind == "set" and not isinstance(item, (dict, list)):
        return "v:" + _encode(item)
    if kind.kind == "map" and isinstance(item, dict) and all(key in item for key in kind.keys):
        return "k:" + _encode({key: item[key] for key in kind.keys})
    return None


def leaf_paths(obj: Any, resource_type: ResourceType, prefix: FieldPath = ()) -> set[FieldPath]:
    """Return the path of every scalar, atomic list and set or map list item in `obj`."""
    if isinstance(obj, dict) and obj:
        paths: set[FieldPath] = set()
        for key, value in obj.items():
            if not prefix and key in ("apiVersion", "kind"):
                continue
            if prefix == ("f:metadata",) and key in _SERVER_OWNED_METADATA:
                continue
            paths |= leaf_paths(value, resource_type, prefix + (f"f:{key}",))
        return paths

    if isinstance(obj, list) and obj and prefix:
        kind = list_type(resource_type, prefix, obj)
        elements = [_item_element(kind, item) for item in obj]
        if kind != ATOMIC and None not in elements:
            paths = set()
            for element, item in zip(elements, obj):
                item_path = prefix + (element,)
                paths |= (leaf_paths(item, resource_type, item_path) if kind.kind == "map" else set()) or {item_path}
            return paths
    return {prefix} if prefix else set()


def _child(container: Any, element: str) -> tuple[bool, Any]:
    if element.startswith("f:"):
        if isinstance(container, dict) and element[2:] in container:
            return True, container[element[2:]]
        return False, None
    if not isinstance(container, list):
        return False, None
    if element.startswith("v:"):
        value = json.loads(element[2:])
        return (True, value) if value in container else (False, None)
    keys = json.loads(element[2:])
    for item in container:
        if isinstance(item, dict) and all(item.get(key) == value for key, value in keys.items()):
            return True, item
    return False, None


def value_at(obj: Any, path: FieldPath) -> tuple[bool, Any]:
    """Return (found, value) for a path, following set and map list items."""
    for element in path:
        found, obj = _child(obj, element)
        if not found:
            return False, None
    return True, obj


def set_path(obj: dict[str, Any], path: FieldPath, value: Any) -> None:
    """Set the value at `path`, creating objects, lists and keyed list items on the way."""
    container: Any = obj
    for index, element in enumerate(path[:-1]):
        found, child = _child(container, element)
        if not found:
            child = [] if not path[index + 1].startswith("f:") else {}
            if element.startswith("k:"):
                child = dict(json.loads(element[2:]))
            _attach(container, element, child)
        container = child
    _attach(container, path[-1], copy_json(value), replace=True)


def _attach(container: Any, element: str, value: Any, replace: bool = False) -> None:
    if element.startswith("f:"):
        container[element[2:]] = value
        return
    found, existing = _child(container, element)
    if found and replace and element.startswith("k:"):
        container[container.index(existing)] = value
    elif not found:
        container.append(value)


def remove_path(obj: dict[str, Any], path: FieldPath) -> None:
    """Remove the field or list item at `path`, then any object or list left empty above it.

    A key field of a map list item goes only with its item, once no other field is left in it.
    """
    if _is_item_key(path):
        found, item = value_at(obj, path[:-1])
        keys = json.loads(path[-2][2:])
        if found and set(item) <= set(keys):
            remove_path(obj, path[:-1])
        return

    chain: list[Any] = [obj]
    for element in path[:-1]:
        found, child = _child(chain[-1], element)
        if not found:
            return
        chain.append(child)

    _detach(chain[-1], path[-1])
    for depth in range(len(path) - 1, 0, -1):
        if chain[depth] in ({}, []):
            _detach(chain[depth - 1], path[depth - 1])


def _detach(container: Any, element: str) -> None:
    found, value = _child(container, element)
    if not found:
        return
    if element.startswith("f:"):
        del container[element[2:]]
    else:
        container.remove(value)


def fields_v1(paths: set[FieldPath]) -> dict[str, Any]:
    """Encode leaf paths as the `fieldsV1` tree: `{"f:spec": {"f:plan": {}}}`."""
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for element in path:
            node = node.setdefault(element, {})
    return tree


def paths_from_fields_v1(tree: dict[str, Any], prefix: FieldPath = ()) -> set[FieldPath]:
    paths: set[FieldPath] = set()
    for element, child in tree.items():
        if element[:2] not in ("f:", "v:", "k:"):
            continue  # "." marks the item itself in the API server's encoding
        path = prefix + (element,)
        paths |= paths_from_fields_v1(child, path) if child else {path}
    return paths


def _ownership(obj: dict[str, Any]) -> Owners:
    owners: Owners = {}
    for entry in obj["metadata"].get("managedFields") or []:
        key = (entry.get("manager", ""), entry.get("operation", "Update"), entry.get("subresource"))
        owners[key] = paths_from_fields_v1(entry.get("fieldsV1") or {})
    return owners


def _write_ownership(obj: dict[str, Any], owners: Owners, resource_type: ResourceType) -> None:
    present = leaf_paths(obj, resource_type)
    entries = []
    for (manager, operation, subresource), paths in owners.items():
        paths = {path for path in paths if path in present}
        if not paths:
            continue
        entry = {
            "manager": manager,
            "operation": operation,
            "apiVersion": resource_type.api_version,
            "time": now_rfc3339(),
            "fieldsType": "FieldsV1",
            "fieldsV1": fields_v1(paths),
        }
        if subresource:
            entry["subresource"] = subresource
        entries.append(entry)
    obj["metadata"]["managedFields"] = entries


def record_update(
    new: dict[str, Any],
    current: dict[str, Any] | None,
    manager: str,
    operation: str,
    subresource: str | None,
    resource_type: ResourceType,
) -> None:
    """Give `manager` the fields this write changed, taking them from their previous owners."""
    owners = _ownership(new) if current is not None else {}
    changed = {
        path for path in leaf_paths(new, resource_type)
        if current is None or value_at(current, path) != value_at(new, path)
    }
    for key in owners:
        owners[key] -= changed
    owners.setdefault((manager, operation, subresource), set()).update(changed)
    _write_ownership(new, owners, resource_type)


def record_apply(
    new: dict[str, Any], applied: set[FieldPath], manager: str, subresource: str | None, resource_type: ResourceType
) -> None:
    owners = _ownership(new)
    owners[(manager, "Apply", subresource)] = set(applied)
    _write_ownership(new, owners, resource_type)


def applied_paths(config: dict[str, Any], subresource: str | None, resource_type: ResourceType) -> set[FieldPath]:
    """Return the paths an apply sets: only status through /status, and no status through the main resource."""
    paths = leaf_paths(config, resource_type)
    if subresource == "status":
        return {path for path in paths if path[0] == "f:status"}
    if resource_type.status_subresource:
        return {path for path in paths if path[0] != "f:status"}
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
    """Compute the object after an apply, raising 409 when another manager owns a changed field."""
    owners = _ownership(current)
    applied = applied_paths(config, subresource, resource_type)
    conflicts: dict[FieldPath, list[str]] = {}
    for path in sorted(applied):
        exists, current_value = value_at(current, path)
        if not exists or current_value == value_at(config, path)[1]:
            continue
        for (other, _operation, _subresource), paths in owners.items():
            if other != manager and path in paths:
                conflicts.setdefault(path, []).append(other)

    if conflicts and not force:
        raise _conflict_error(current, resource_type, conflicts)

    result = copy_json(current)
    previously_applied = owners.get((manager, "Apply", subresource), set())
    owned_by_others = set().union(*(paths for key, paths in owners.items() if key[0] != manager)) if owners else set()
    dropped = previously_applied - applied - owned_by_others
    # Key fields of map items go last, so the items can still be found by their keys.
    for path in sorted(dropped, key=lambda path: (_is_item_key(path), -len(path))):
        remove_path(result, path)
    for path in sorted(applied):
        set_path(result, path, value_at(config, path)[1])

    # Forced fields move to the applier. Fields applied with an equal value stay shared.
    for path in conflicts:
        for key in owners:
            owners[key].discard(path)
    result["metadata"]["managedFields"] = copy_json(current["metadata"].get("managedFields") or [])
    _write_ownership(result, owners, resource_type)
    return result


def _is_item_key(path: FieldPath) -> bool:
    """Tell whether `path` is a key field of a map list item, such as `name` in `k:{"name":"app"}`."""
    return len(path) >= 2 and path[-2].startswith("k:") and path[-1][2:] in json.loads(path[-2][2:])


def _conflict_error(current: dict[str, Any], resource_type: ResourceType, conflicts: dict[FieldPath, list[str]]) -> ApiError:
    causes = [
        {"type": "FieldManagerConflict", "message": f'conflict with "{other}"', "field": format_field_path(path)}
        for path, others in conflicts.items()
        for other in others
    ]
    listing = "; ".join(f"{cause['message']}: {cause['field']}" for cause in causes)
    return ApiError(
        409, "Conflict", f"Apply failed with {len(causes)} conflict{'s' if len(causes) > 1 else ''}: {listing}",
        {"name": current["metadata"]["name"], "group": resource_type.group, "kind": resource_type.plural, "causes": causes},
    )


def format_field_path(path: FieldPath) -> str:
    """Render a path as the API server prints conflicts: `.spec.containers[name="app"].image`."""
    text = ""
    for element in path:
        if element.startswith("f:"):
            text += "." + element[2:]
        elif element.startswith("v:"):
            text += f"[={element[2:]}]"
        else:
            keys = json.loads(element[2:])
            text += "[" + ",".join(f"{key}={json.dumps(value)}" for key, value in keys.items()) + "]"
    return text
