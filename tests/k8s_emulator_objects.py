"""Object rules of the Kubernetes API that do not depend on the HTTP layer.

Resource types and CRD loading, object names, metadata validation, and label
and field selectors. `k8s_emulator_server` uses them.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from k8s_emulator_schema import CustomResourceSchema, FieldError

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


class ApiError(Exception):
    """A failure that the emulator returns as a Kubernetes `Status` body."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


@dataclass(frozen=True)
class ResourceType:
    """One served resource: what discovery lists and what the emulator needs to store it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    status_subresource: bool = False
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    schema: CustomResourceSchema | None = field(default=None, compare=False, hash=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """The name the API server uses in messages: `tenants.livery.dev`, `namespaces`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def names(self) -> set[str]:
        """Every name a test helper may use for this type, lowercased."""
        return {
            self.plural,
            self.singular,
            self.kind.lower(),
            self.group_resource,
            f"{self.api_version}/{self.plural}",
            *self.short_names,
        }


# Built-in kinds that the operator, kopf and the control API touch.
BUILTIN_TYPES = (
    ResourceType("", "v1", "namespaces", "Namespace", namespaced=False, status_subresource=True, short_names=("ns",)),
    ResourceType("", "v1", "secrets", "Secret", namespaced=True),
    ResourceType("", "v1", "configmaps", "ConfigMap", namespaced=True, short_names=("cm",)),
    ResourceType("", "v1", "services", "Service", namespaced=True, status_subresource=True, short_names=("svc",)),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", namespaced=True, short_names=("sa",)),
    ResourceType("", "v1", "pods", "Pod", namespaced=True, status_subresource=True, short_names=("po",)),
    ResourceType("", "v1", "events", "Event", namespaced=True, short_names=("ev",)),
    ResourceType("", "v1", "resourcequotas", "ResourceQuota", namespaced=True, status_subresource=True, short_names=("quota",)),
    ResourceType("", "v1", "limitranges", "LimitRange", namespaced=True, short_names=("limits",)),
    ResourceType("apps", "v1", "deployments", "Deployment", namespaced=True, status_subresource=True, short_names=("deploy",)),
    ResourceType("events.k8s.io", "v1", "events", "Event", namespaced=True, short_names=("ev",)),
    ResourceType("networking.k8s.io", "v1", "ingresses", "Ingress", namespaced=True, status_subresource=True, short_names=("ing",)),
    ResourceType("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", namespaced=True, short_names=("netpol",)),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", namespaced=True),
    ResourceType(
        "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
        namespaced=False, status_subresource=True, short_names=("crd", "crds"),
    ),
)


def load_crds(directory: Path) -> list[dict[str, Any]]:
    """Read every CustomResourceDefinition in the YAML files of `directory`."""
    crds = []
    for path in sorted(directory.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document and document.get("kind") == "CustomResourceDefinition":
                crds.append(document)
    return crds


def crd_resource_types(crd: dict[str, Any]) -> list[ResourceType]:
    """Return one ResourceType per served version of a CRD, with its schema."""
    spec = crd["spec"]
    names = spec["names"]
    types = []
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        types.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec["scope"] == "Namespaced",
                status_subresource="status" in version.get("subresources", {}),
                short_names=tuple(names.get("shortNames", ())),
                categories=tuple(names.get("categories", ())),
                schema=CustomResourceSchema(version["schema"]["openAPIV3Schema"]),
            )
        )
    return types


# Names: RFC 1123 subdomains for most kinds, RFC 1123 labels for namespaces and services.
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAMES = {"namespaces", "services"}


def name_error(resource_type: ResourceType, name: str) -> str | None:
    """Return why `name` is not a valid object name for the type, or None."""
    if resource_type.plural in _LABEL_NAMES:
        if len(name) > 63 or not _DNS_LABEL.match(name):
            return (
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                "and must start and end with an alphanumeric character (at most 63 characters)"
            )
        return None
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        return (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
            "and must start and end with an alphanumeric character (at most 253 characters)"
        )
    return None


_QUALIFIED_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
MAX_ANNOTATIONS_BYTES = 256 * 1024


def _qualified_name_error(key: str) -> str | None:
    """Check a label key, annotation key or finalizer: `[DNS subdomain/]name`, name at most 63 characters."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return "prefix part must be a lowercase RFC 1123 subdomain"
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return (
            "name part must consist of at most 63 alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character"
        )
    return None


def metadata_errors(metadata: dict[str, Any]) -> list[FieldError]:
    """Validate labels, annotations and finalizers as the API server does for every kind."""
    errors = []
    for key, value in (metadata.get("labels") or {}).items():
        if problem := _qualified_name_error(key):
            errors.append(FieldError("metadata.labels", "FieldValueInvalid", f"Invalid value: {json.dumps(key)}: {problem}"))
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            errors.append(FieldError(
                "metadata.labels", "FieldValueInvalid",
                f"Invalid value: {json.dumps(value)}: a valid label value must be empty or at most 63 alphanumeric "
                "characters, '-', '_' or '.', starting and ending with an alphanumeric character",
            ))

    annotations = metadata.get("annotations") or {}
    for key in annotations:
        if problem := _qualified_name_error(key):
            errors.append(FieldError("metadata.annotations", "FieldValueInvalid", f"Invalid value: {json.dumps(key)}: {problem}"))
    size = sum(len(key) + len(str(value)) for key, value in annotations.items())
    if size > MAX_ANNOTATIONS_BYTES:
        errors.append(FieldError("metadata.annotations", "FieldValueTooLong", f"Too long: must have at most {MAX_ANNOTATIONS_BYTES} bytes"))

    for index, finalizer in enumerate(metadata.get("finalizers") or []):
        if problem := _qualified_name_error(finalizer):
            errors.append(FieldError(f"metadata.finalizers[{index}]", "FieldValueInvalid", f"Invalid value: {json.dumps(finalizer)}: {problem}"))
    return errors


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Selectors.

Selector = Callable[[dict[str, Any]], bool]

_SET_REQUIREMENT = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQUALITY_REQUIREMENT = re.compile(r"^\s*([^\s!=]+)\s*(==|=|!=)\s*([^\s,]*)\s*$")
_EXISTS_REQUIREMENT = re.compile(r"^\s*(!?)\s*([^\s!=()]+)\s*$")


def _split_requirements(text: str) -> list[str]:
    """Split a selector at commas that are not inside `in (...)` value lists."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part for part in parts if part.strip()]


def parse_label_selector(text: str | None) -> Selector:
    """Parse `a=b,c!=d,e in (f,g),!h` into a predicate on objects, raising 400 on bad syntax."""
    if not text:
        return lambda obj: True
    checks = [_parse_label_requirement(part) for part in _split_requirements(text)]
    return lambda obj: all(check(obj.get("metadata", {}).get("labels") or {}) for check in checks)


def _parse_label_requirement(text: str) -> Callable[[dict[str, str]], bool]:
    if match := _SET_REQUIREMENT.match(text):
        key, operator, raw_values = match.groups()
        values = {value.strip() for value in raw_values.split(",") if value.strip()}
        if operator == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if match := _EQUALITY_REQUIREMENT.match(text):
        key, operator, value = match.groups()
        if operator == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if match := _EXISTS_REQUIREMENT.match(text):
        negated, key = match.groups()
        if negated:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise bad_request(f"unable to parse requirement: invalid label selector {text.strip()!r}")


def parse_field_selector(text: str | None) -> Selector:
    """Parse `metadata.name=x,metadata.namespace!=y`. Any dotted path compares as a string."""
    if not text:
        return lambda obj: True
    checks = []
    for part in _split_requirements(text):
        match = _EQUALITY_REQUIREMENT.match(part)
        if not match:
            raise bad_request(f"invalid field selector {part.strip()!r}: expected path=value or path!=value")
        path, operator, value = match.groups()
        checks.append((path.split("."), operator == "!=", value))

    def matches(obj: dict[str, Any]) -> bool:
        for path, negated, value in checks:
            if (_field_text(_lookup(obj, path)) == value) == negated:
                return False
        return True

    return matches


def _field_text(value: Any) -> str:
    """Render a field as field selectors compare it: booleans as `true`/`false`, absent as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _lookup(obj: Any, path: list[str]) -> Any:
    for part in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj
