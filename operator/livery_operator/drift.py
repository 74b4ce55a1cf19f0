"""Fields of tenant objects that the operator puts back when they drift.

Server-side apply changes only the fields the operator sets, and `contains()`
compares only those, so a field added by hand (or by another field manager)
would stay forever: a `matchLabels` that narrows a NetworkPolicy to no pod,
`hostNetwork: true` in the app's pod template, or a `server-snippet` annotation
on the Ingress. For the fields listed here a live value that differs from the
built one, added fields included, is put back with a JSON patch that replaces
or removes it.

Labels and annotations follow these rules:

- On every managed object, each `livery.dev/*` label and annotation must equal
  the built one. One the operator does not set is removed.
- On the tenant Namespace, each `pod-security.kubernetes.io/*` label must equal
  the built one (`enforce: restricted`), so no edit can relax Pod Security
  admission for the tenant's pods.
- The Deployment's pod template labels must equal the built ones exactly,
  because one label more or less makes a Service or a NetworkPolicy select or
  miss the pods. Its pod template annotations must too, apart from
  `kubectl.kubernetes.io/restartedAt`, which `kubectl rollout restart` sets.
- The Service's `spec.selector` must equal the built one.
- Each pod volume must have the built source, compared by name: swapping
  the `tmp` emptyDir for `hostPath: /` under the same name puts the built
  volume back.
- The ResourceQuota's and the LimitRange's `spec` must have the built keys at
  every depth. A key added to `spec.hard` or a `scopes` list is removed.
  Their values are left to the apply that follows, because the API server
  rewrites quantities in canonical form.
- A Secret's `data` must equal the built one, because every key becomes an
  environment variable of the app. This removes keys added to `tenant-redis`.
  The reconcile builds the `tenant-app` data from the live Secret, so edits
  there are kept.
- Any other label or annotation, such as `team: payments` added for an
  admin's own tooling, stays.

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
POD_NAMED_LISTS = ("containers",)
# Fields the API server fills in inside a volume source when the request leaves them out
# (Kubernetes core/v1 defaults: mode 0644 for configMap, secret, projected and downwardAPI).
VOLUME_SOURCE_DEFAULTS: dict[str, dict[str, Any]] = {
    "configMap": {"defaultMode": 0o644},
    "secret": {"defaultMode": 0o644},
    "projected": {"defaultMode": 0o644},
    "downwardAPI": {"defaultMode": 0o644},
}
POD_SPEC = ("spec", "template", "spec")
POD_METADATA = ("spec", "template", "metadata")
# Prefixes of label and annotation keys that must match the built object on every kind.
MANAGED_KEY_PREFIXES = ("livery.dev/",)
# Prefixes of Namespace label keys that must match the built Namespace.
NAMESPACE_LABEL_PREFIXES = ("pod-security.kubernetes.io/",)
# Pod template annotations that other tools may set and the operator keeps.
KEPT_POD_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/restartedAt"})

Path = tuple[str, ...]
# Paths compared after dropping empty values, by kind.
EXACT_PATHS: dict[str, tuple[Path, ...]] = {
    "Ingress": (("metadata", "annotations"), ("spec",)),
    "Deployment": (POD_METADATA + ("labels",), *(POD_SPEC + (field,) for field in POD_SECURITY_FIELDS)),
    "Service": (("spec", "selector"),),
    "Secret": (("data",),),
}
# Paths compared value for value, by kind.
RAW_PATHS: dict[str, tuple[Path, ...]] = {
    "NetworkPolicy": (("spec",),),
}
# Paths whose keys must match at every depth, by kind; `contains()` and the apply handle their values.
KEY_PATHS: dict[str, tuple[Path, ...]] = {
    "ResourceQuota": (("spec",),),
    "LimitRange": (("spec",),),
}


def restore_operations(live: dict[str, Any], desired: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the JSON patch operations that put the drift-checked fields of `live` back to `desired`."""
    kind = desired.get("kind", "")
    operations = _restore_metadata(live, desired, kind)
    for path in EXACT_PATHS.get(kind, ()):
        operations.extend(_restore(_get(live, path), _get(desired, path), path, same=_same))
    for path in RAW_PATHS.get(kind, ()):
        operations.extend(_restore(_get(live, path), _get(desired, path), path, same=operator.eq))
    for path in KEY_PATHS.get(kind, ()):
        operations.extend(_restore(_get(live, path), _get(desired, path), path, same=_same_keys))
    if kind == "Deployment":
        for field in POD_NAMED_LISTS:
            path = POD_SPEC + (field,)
            operations.extend(_restore(_get(live, path), _get(desired, path), path, same=_same_names))
        path = POD_SPEC + ("volumes",)
        operations.extend(_restore(_get(live, path), _get(desired, path), path, same=_same_volumes))
        operations.extend(_restore_container_security(live, desired))
        operations.extend(_restore_pod_annotations(live, desired))
    return operations


def _restore_metadata(live: dict[str, Any], desired: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """Return operations that reset the protected label and annotation keys of the object's metadata."""
    label_prefixes = MANAGED_KEY_PREFIXES + (NAMESPACE_LABEL_PREFIXES if kind == "Namespace" else ())
    operations = _restore_keys(live, desired, ("metadata", "labels"), label_prefixes)
    operations.extend(_restore_keys(live, desired, ("metadata", "annotations"), MANAGED_KEY_PREFIXES))
    return operations


def _restore_keys(
    live: dict[str, Any], desired: dict[str, Any], path: Path, prefixes: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Return operations that make the keys of the map at `path` that start with one of `prefixes` match."""
    live_map = _get(live, path)
    desired_map = _get(desired, path) or {}
    expected = {key: value for key, value in desired_map.items() if key.startswith(prefixes)}
    if not isinstance(live_map, dict):
        # With no map to patch key by key, the server-side apply that follows adds the whole built map.
        return []
    operations: list[dict[str, Any]] = []
    for key in sorted(live_map):
        if key.startswith(prefixes) and key not in expected:
            operations.append({"op": "remove", "path": _pointer(path + (key,))})
    for key, value in sorted(expected.items()):
        if live_map.get(key) != value:
            operations.append({"op": "add", "path": _pointer(path + (key,)), "value": value})
    return operations


def _restore_pod_annotations(live: dict[str, Any], desired: dict[str, Any]) -> list[dict[str, Any]]:
    """Return an operation that resets the pod template annotations, keeping those in `KEPT_POD_ANNOTATIONS`."""
    path = POD_METADATA + ("annotations",)
    live_map = _get(live, path) or {}
    tool_annotations = {key: value for key, value in live_map.items() if key in KEPT_POD_ANNOTATIONS}
    expected = {**(_get(desired, path) or {}), **tool_annotations}
    return _restore(live_map or None, expected, path, same=_same)


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
        expected = desired_by_name.get(container.get("name"))
        if expected is None:
            continue
        path = POD_SPEC + ("containers", str(index), "securityContext")
        operations.extend(_restore(container.get("securityContext"), expected.get("securityContext"), path, same=_same))
    return operations


def _same(live: Any, desired: Any) -> bool:
    return _normalized(live) == _normalized(desired)


def _same_names(live: Any, desired: Any) -> bool:
    def names(items: Any) -> list[Any]:
        return sorted(str(item.get("name")) for item in items or [] if isinstance(item, dict))

    return names(live) == names(desired)


def _same_volumes(live: Any, desired: Any) -> bool:
    """Tell whether both volume lists hold the same names, each with the same source kind and content."""
    live_items = [item for item in live or [] if isinstance(item, dict)]
    desired_by_name = {item.get("name"): item for item in desired or []}
    if len(live_items) != len(desired_by_name):
        return False
    for volume in live_items:
        expected = desired_by_name.get(volume.get("name"))
        if expected is None or _volume_source(volume, expected) != _normalized(expected):
            return False
    return True


def _volume_source(live: dict[str, Any], desired: dict[str, Any]) -> Any:
    """Return the normalized live volume without the defaults the API server adds to fields the built one leaves out."""
    volume = dict(live)
    for kind, defaults in VOLUME_SOURCE_DEFAULTS.items():
        source = volume.get(kind)
        if not isinstance(source, dict):
            continue
        built = desired.get(kind) or {}
        volume[kind] = {
            key: value
            for key, value in source.items()
            if key in built or key not in defaults or value != defaults[key]
        }
    return _normalized(volume)


def _same_keys(live: Any, desired: Any) -> bool:
    return _key_tree(live) == _key_tree(desired)


def _key_tree(value: Any) -> Any:
    """Return the keys of `value` at every depth, with each leaf value replaced by None."""
    normalized = _normalized(value)
    if isinstance(normalized, dict):
        return {key: _key_tree(item) for key, item in normalized.items()}
    if isinstance(normalized, list):
        return [_key_tree(item) for item in normalized]
    return None


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
