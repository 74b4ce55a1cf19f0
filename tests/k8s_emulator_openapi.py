"""Validation of built-in kinds against the official Kubernetes OpenAPI schemas.

The schemas come from the `kubernetes-validate` package, which ships them as
JSON Schema for every Kubernetes minor version. Validators are built once per
kind and reused, because each one loads the large shared definitions file.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import jsonschema
import kubernetes_validate.utils
from k8s_emulator_schema import FieldError, field_error, format_path
from referencing import Registry, Resource

# The Kubernetes version whose schemas apply. The emulator's `/version` reports it too.
KUBERNETES_VERSION = (1, 31)
_VERSION_TEXT = f"{KUBERNETES_VERSION[0]}.{KUBERNETES_VERSION[1]}"


@functools.cache
def _schema_directory() -> str:
    versions = [
        version for version in kubernetes_validate.utils.all_versions()
        if tuple(int(part) for part in version.split(".")[:2]) <= KUBERNETES_VERSION
    ]
    return f"kubernetes-json-schema/v{versions[-1]}-local"


@functools.cache
def _definitions(directory: str) -> Resource:
    return Resource.from_contents(kubernetes_validate.utils.schema_contents(f"{directory}/_definitions.json", _VERSION_TEXT))


@functools.cache
def _validator(kind: str, api_version: str, strict: bool = False) -> jsonschema.protocols.Validator | None:
    """Return the validator of a kind, or None when the package has no schema for it.

    The strict schemas also reject fields that the kind does not declare.
    """
    directory = _schema_directory() + ("-strict" if strict else "")
    # `networking.k8s.io/v1` becomes `networking-v1`, and `v1` stays `v1`, as the package names its files.
    file_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = kubernetes_validate.utils.schema_contents(f"{directory}/{kind.lower()}-{file_version}.json", _VERSION_TEXT)
    except FileNotFoundError:
        return None
    registry = Resource.from_contents(schema) @ (_definitions(directory) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def drop_unknown_fields(obj: dict[str, Any]) -> tuple[list[str], bool]:
    """Remove the fields a built-in kind does not declare, in place, and return their paths and whether the object was valid.

    The API server drops them too, unless the request sets `fieldValidation=Strict`.
    The strict schema is the plain one plus `additionalProperties: false`, so an
    object valid against it needs no second pass by `openapi_errors`.
    """
    validator = _validator(obj["kind"], obj["apiVersion"], strict=True)
    if validator is None:
        return [], False
    unknown = []
    errors = list(validator.iter_errors(obj))
    for error in errors:
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            declared = set(error.schema.get("properties", {}))
            for key in sorted(set(error.instance) - declared):
                unknown.append((error.instance, key, format_path(list(error.absolute_path) + [key])))
    for container, key, _ in unknown:
        container.pop(key, None)
    return [path for _, _, path in unknown], not errors


def openapi_errors(obj: dict[str, Any]) -> tuple[list[FieldError], list[FieldError]]:
    """Validate a built-in object; return (type errors, other errors).

    The API server rejects a value of the wrong JSON type while decoding, with
    400 Bad Request, and the rest of the checks with 422 Invalid.
    """
    validator = _validator(obj["kind"], obj["apiVersion"])
    if validator is None:
        return [], []
    type_errors, other_errors = [], []
    for error in validator.iter_errors(obj):
        for leaf in _leaf_errors(error):
            (type_errors if leaf.validator == "type" else other_errors).append(field_error(leaf))
    return type_errors, other_errors


def _leaf_errors(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """Replace an `anyOf`/`oneOf` failure by its most relevant branch error, which names the field."""
    if error.context:
        return [jsonschema.exceptions.best_match(error.context)]
    return [error]
