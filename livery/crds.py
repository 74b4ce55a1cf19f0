"""Generate the CustomResourceDefinitions from the pydantic models.

The models are the one source of truth. This module turns their JSON Schema
into the structural OpenAPI v3 schema that the API server needs (no `$ref`,
no `anyOf` for optional fields, no titles) and adds the rules that JSON
Schema cannot state as CEL `x-kubernetes-validations`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from .models.base import API_GROUP, API_VERSION
from .models.plan import PlanSpec, PlanStatus
from .models.rules import (
    CUSTOM_CSS_MAX_BYTES,
    PLAN_NAME,
    RESERVED_TENANT_NAMES,
    RESERVED_TENANT_PREFIXES,
    TENANT_NAME,
    TENANT_NAME_MAX,
    TENANT_NAME_MIN,
    TENANT_NAME_PATTERN,
)
from .models.tenant import TenantSpec, TenantStatus

CRD_FILES = {"tenants": "tenants.livery.dev.yaml", "plans": "plans.livery.dev.yaml"}


def _quoted_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{value}'" for value in values) + "]"


# Rules on the whole object. `self.metadata.name` is readable from root-level rules.
# They set no `fieldPath`, because the API server accepts only paths that the schema
# declares, and this schema leaves `metadata` to the API server's own validation.
TENANT_NAME_RULES: list[dict[str, str]] = [
    {
        "rule": (
            f"size(self.metadata.name) >= {TENANT_NAME_MIN} && size(self.metadata.name) <= {TENANT_NAME_MAX} "
            f"&& self.metadata.name.matches('{TENANT_NAME_PATTERN}')"
        ),
        "message": f"metadata.name: {TENANT_NAME.rule}",
        "reason": "FieldValueInvalid",
    },
    {
        "rule": (
            f"!(self.metadata.name in {_quoted_list(RESERVED_TENANT_NAMES)})"
            + "".join(f" && !self.metadata.name.startsWith('{prefix}')" for prefix in RESERVED_TENANT_PREFIXES)
        ),
        "message": "metadata.name: is reserved for the platform",
        "reason": "FieldValueForbidden",
    },
]

PLAN_NAME_RULES: list[dict[str, str]] = [
    {
        "rule": f"size(self.metadata.name) <= 63 && self.metadata.name.matches('{PLAN_NAME.pattern}')",
        "message": f"metadata.name: {PLAN_NAME.rule}",
        "reason": "FieldValueInvalid",
    },
]

# A transition rule: it runs on updates only, where `oldSelf` is the stored spec.
TENANT_SPEC_RULES: list[dict[str, str]] = [
    {
        "rule": "!has(oldSelf.isolation) || !has(self.isolation) || self.isolation == oldSelf.isolation",
        "message": (
            "spec.isolation: cannot be changed to another mode once set; moving data between isolation modes "
            "is not supported (removing it keeps the tenant in the mode its data is in)"
        ),
        "reason": "FieldValueForbidden",
        "fieldPath": ".isolation",
    },
]

BRANDING_RULES: list[dict[str, str]] = [
    {
        "rule": f"!has(self.customCss) || size(bytes(self.customCss)) <= {CUSTOM_CSS_MAX_BYTES}",
        "message": f"spec.branding.customCss: must be at most {CUSTOM_CSS_MAX_BYTES} bytes of UTF-8",
        "reason": "FieldValueTooLong",
        "fieldPath": ".customCss",
    },
]

_DROPPED_KEYS = {"title", "additionalProperties"}


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """Return the structural OpenAPI v3 schema of `model`, as a CRD embeds it."""
    document = model.model_json_schema(by_alias=True, mode="validation")
    definitions = document.pop("$defs", {})
    return _structural(document, definitions)


def _structural(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_structural(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node

    if "$ref" in node:
        target = copy.deepcopy(definitions[node["$ref"].rsplit("/", 1)[-1]])
        merged = {**target, **{key: value for key, value in node.items() if key != "$ref"}}
        return _structural(merged, definitions)

    if "anyOf" in node:
        variants = [variant for variant in node["anyOf"] if variant.get("type") != "null"]
        if len(variants) != 1:
            raise ValueError(f"cannot express anyOf with {len(variants)} non-null variants in a structural schema")
        merged = {**variants[0], **{key: value for key, value in node.items() if key != "anyOf"}}
        if merged.get("default", "") is None:
            del merged["default"]
        return _structural(merged, definitions)

    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS and not (key == "additionalProperties" and isinstance(value, dict)):
            continue
        if key == "properties":
            result[key] = {name: _structural(child, definitions) for name, child in value.items()}
        elif key == "enum" and "type" not in node:
            result["type"] = "string"
            result[key] = value
        else:
            result[key] = _structural(value, definitions)
    if "properties" in result:
        result.setdefault("type", "object")
    return _ordered(result)


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    """Put `type` and `description` first, so the YAML reads like hand-written schemas."""
    leading = {key: node[key] for key in ("type", "description") if key in node}
    return {**leading, **{key: value for key, value in node.items() if key not in leading}}


def _resource_schema(spec: type[BaseModel], status: type[BaseModel], description: str) -> dict[str, Any]:
    spec_schema = structural_schema(spec)
    status_schema = structural_schema(status)
    return {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
    }


def tenant_crd() -> dict[str, Any]:
    """Return the CustomResourceDefinition of `tenants.livery.dev`."""
    schema = _resource_schema(
        TenantSpec, TenantStatus, "A customer's dedicated, branded app instance with its own isolated data."
    )
    schema["x-kubernetes-validations"] = TENANT_NAME_RULES
    spec = schema["properties"]["spec"]
    spec["x-kubernetes-validations"] = TENANT_SPEC_RULES
    spec["properties"]["domains"]["x-kubernetes-list-type"] = "set"
    spec["properties"]["branding"]["x-kubernetes-validations"] = BRANDING_RULES
    conditions = schema["properties"]["status"]["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    return _crd(
        plural="tenants",
        kind="Tenant",
        short_names=["tn"],
        schema=schema,
        columns=[
            {"name": "Plan", "type": "string", "jsonPath": ".spec.plan"},
            {"name": "Isolation", "type": "string", "jsonPath": ".status.isolation"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "URL", "type": "string", "jsonPath": ".status.url"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    )


def plan_crd() -> dict[str, Any]:
    """Return the CustomResourceDefinition of `plans.livery.dev`."""
    schema = _resource_schema(PlanSpec, PlanStatus, "Limits, features and price shared by the tenants on it.")
    schema["x-kubernetes-validations"] = PLAN_NAME_RULES
    return _crd(
        plural="plans",
        kind="Plan",
        short_names=["pl"],
        schema=schema,
        columns=[
            {"name": "Display Name", "type": "string", "jsonPath": ".spec.displayName"},
            {"name": "Isolation", "type": "string", "jsonPath": ".spec.isolation"},
            {"name": "Users", "type": "integer", "jsonPath": ".spec.limits.users"},
            {"name": "Price", "type": "integer", "jsonPath": ".spec.billing.monthlyPriceCents", "priority": 1},
            {"name": "Tenants", "type": "integer", "jsonPath": ".status.tenants"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    )


def _crd(
    *, plural: str, kind: str, short_names: list[str], schema: dict[str, Any], columns: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{API_GROUP}",
            "labels": {"app.kubernetes.io/name": "livery", "app.kubernetes.io/part-of": "livery"},
        },
        "spec": {
            "group": API_GROUP,
            "scope": "Cluster",
            "names": {
                "plural": plural,
                "singular": kind.lower(),
                "kind": kind,
                "listKind": f"{kind}List",
                "shortNames": short_names,
                "categories": ["livery"],
            },
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def all_crds() -> dict[str, dict[str, Any]]:
    """Return every CRD keyed by its file name in `crds/`."""
    return {CRD_FILES["tenants"]: tenant_crd(), CRD_FILES["plans"]: plan_crd()}


def render_crd(crd: dict[str, Any]) -> str:
    """Render one CRD as the YAML text that `livery crds` writes."""
    header = "# Generated by `livery crds` from the pydantic models in livery/models. Do not edit.\n"
    return header + yaml.safe_dump(crd, sort_keys=False, width=120, allow_unicode=True)


def write_crds(directory: Path) -> list[Path]:
    """Write every CRD file into `directory` and return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, crd in all_crds().items():
        path = directory / file_name
        path.write_text(render_crd(crd), encoding="utf-8")
        written.append(path)
    return written
