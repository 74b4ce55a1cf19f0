"""Fields of tenant objects that must match what the operator builds exactly.

Server-side apply changes only the fields the operator sets, and `contains()`
compares only those, so a field added by hand (or by another field manager)
would stay forever: a `matchLabels` that narrows a NetworkPolicy to no pod,
`hostNetwork: true` in the app's pod template, or a `server-snippet` annotation
on the Ingress. For the fields listed here a live value that differs from the
built one, added fields included, is put back with a JSON patch that replaces
or removes it.

Values the API server fills in by default are not drift: before comparing,
empty maps and lists, null and false are dropped. The NetworkPolicy spec is
compared as it is, because there an empty selector (`namespaceSelector: {}`,
every namespace) means something else than a missing one (this namespace).
"""

from __future__ import annotations

import operator
from typing import Any

# Pod spec fields that widen what the app's pods may do or reach; compared exactly.
POD_SECURITY_FIELDS = (
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "hostUsers",
    "shareProcessNamespace",
    "securityContext",
    "serviceAccountName",
    "serviceAccount",
    "automountServiceAccountToken",
    "nodeName",
    "runtimeClassName",
    "initContainers",
    "ephemeralContainers",
)
# Pod spec lists compared by item name, because the API server adds defaults inside each item.
POD_NAMED_LISTS = ("containers", "volumes")
POD_SPEC = ("spec", "template", "spec")

Path = tuple[str, ...]
# Paths compared after dropping empty values, by kind.
EXACT_PATHS: dict[str, tuple[Path, ...]] = {
    "Ingress": (("metadata", "annotations"), ("spec",)),
    "Deployment": tuple(POD_SPEC + (field,) for field in POD_SECURITY_FIELDS),
}
# Paths compared value for value, by kind.
RAW_PATHS: dict[str, tuple[Path, ...]] = {
    "NetworkPolicy": (("spec",),),
}


def restore_operations(live: dict[str, Any], desired: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the JSON patch operations that put the exactly compared fields of `live` back to `desired`."""
    kind = desired.get("kind", "")
    operations: list[dict[str, Any]] = []
    for path in EXACT_PATHS.get(kind, ()):
        operations.extend(_restore(_get(live, path), _get(desired, path), path, same=_same))
    for path in RAW_PATHS.get(kind, ()):
        operations.extend(_restore(_get(live, path), _get(desired, path), path, same=operator.eq))
    if kind == "Deployment":
        for field in POD_NAMED_LISTS:
            path = POD_SPEC + (field,)
            operations.extend(_restore(_get(live, path), _get(desired, path), path, same=_same_names))
        operations.extend(_restore_container_security(live, desired))
    return operations


def _restore(live_value: Any, desired_value: Any, path: Path, *, same: Any) -> list[dict[str, Any]]:
    if same(live_value, desired_value):
        return []
    pointer = _pointer(path)
    if _normalized(desired_value) is None:
        return [{"op": "remove", "path": pointer}] if live_value is not None else []
    # "add" replaces a member that exists and creates one that does not (RFC 6902, section 4.1).
    return [{"op": "add", "path": pointer, "value": desired_value}]


def _restore_container_security(live: dict[str, Any], desired: dict[str, Any]) -> list[dict[str, Any]]:
    """Return operations that reset each app container's securityContext, matched by container name."""
    live_containers = _get(live, POD_SPEC + ("containers",)) or []
    desired_by_name = {item.get("name"): item for item in _get(desired, POD_SPEC + ("containers",)) or []}
    operations: list[dict[str, Any]] = []
    for index, container in enumerate(live_containers):
        wanted = desired_by_name.get(container.get("name"))
        if wanted is None:
            continue
        path = POD_SPEC + ("containers", str(index), "securityContext")
        operations.extend(_restore(container.get("securityContext"), wanted.get("securityContext"), path, same=_same))
    return operations


def _same(live: Any, desired: Any) -> bool:
    return _normalized(live) == _normalized(desired)


def _same_names(live: Any, desired: Any) -> bool:
    def names(items: Any) -> list[Any]:
        return sorted(str(item.get("name")) for item in items or [] if isinstance(item, dict))

    return names(live) == names(desired)


def _normalized(value: Any) -> Any:
    """Return `value` without null, false and empty maps or lists, at any depth; None when nothing is left."""
    if isinstance(value, dict):
        items = {key: _normalized(item) for key, item in value.items()}
        kept = {key: item for key, item in items.items() if item is not None}
        return kept or None
    if isinstance(value, list):
        kept_items = [_normalized(item) for item in value]
        return kept_items or None
    if value is False or value is None:
        return None
    return value


def _get(obj: Any, path: Path) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _pointer(path: Path) -> str:
    """Return the JSON pointer (RFC 6901) of `path`."""
    return "".join("/" + key.replace("~", "~0").replace("/", "~1") for key in path)
