"""Judge a manifest the way the API server would, from the committed CRD files alone.

`crd_errors` validates with the CRD's OpenAPI schema through a JSON Schema
validator and evaluates its CEL `x-kubernetes-validations` rules with
`cel-python`. The translation mirrors what the API server does:

- `null` in a non-nullable field is pruned before validation;
- `kubectl apply` uses strict field validation, so unknown fields are errors
  (`additionalProperties: false` on every object that lists its properties);
- `x-kubernetes-list-type: set` forbids duplicates (`uniqueItems`);
- patterns are RE2 expressions, where `$` matches only at the very end, so a
  trailing `$` becomes Python's `\\Z`.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = REPO_ROOT / "crds"


@cache
def crd_schema(kind: str) -> dict[str, Any]:
    """Return the openAPIV3Schema of the committed CRD for `kind` (Tenant or Plan)."""
    file_name = {"Tenant": "tenants.livery.dev.yaml", "Plan": "plans.livery.dev.yaml"}[kind]
    crd = yaml.safe_load((CRD_DIR / file_name).read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def to_json_schema(node: Any) -> Any:
    """Translate a structural schema into an equivalent draft 2020-12 JSON Schema."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("default", "description"):
            continue
        if key == "pattern" and value.endswith("$"):
            result[key] = value[:-1] + r"\Z"
        elif key == "properties":
            result[key] = {name: to_json_schema(child) for name, child in value.items()}
        else:
            result[key] = to_json_schema(value)
    if "properties" in node:
        result["additionalProperties"] = False
    if node.get("x-kubernetes-list-type") == "set":
        result["uniqueItems"] = True
    return result


def prune_nulls(value: Any) -> Any:
    """Drop `null` object fields recursively, as the API server does for non-nullable fields."""
    if isinstance(value, dict):
        return {key: prune_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [prune_nulls(item) for item in value]
    return value


@cache
def _validator(kind: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(to_json_schema(crd_schema(kind)))


@cache
def _cel_program(rule: str) -> Any:
    environment = celpy.Environment()
    return environment.program(environment.compile(rule))


def _cel_rules(schema: dict[str, Any], path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], dict[str, str]]]:
    rules = [(path, rule) for rule in schema.get("x-kubernetes-validations", [])]
    for name, child in schema.get("properties", {}).items():
        rules.extend(_cel_rules(child, (*path, name)))
    return rules


def _lookup(document: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(document, dict) or part not in document:
            return None
        document = document[part]
    return document


def crd_errors(document: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    """Return the API server's errors for `document` (an update of `old` when given)."""
    kind = document["kind"]
    document = prune_nulls(copy.deepcopy(document))
    errors = [
        f"{'.'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
        for error in _validator(kind).iter_errors(document)
    ]
    if errors:
        # The API server evaluates CEL rules only on values that passed the schema.
        return errors

    for path, rule in _cel_rules(crd_schema(kind)):
        current = _lookup(document, path)
        if current is None:
            continue
        activation = {"self": celpy.json_to_cel(current)}
        if "oldSelf" in rule["rule"]:
            previous = _lookup(prune_nulls(old), path) if old is not None else None
            if previous is None:
                continue
            activation["oldSelf"] = celpy.json_to_cel(previous)
        try:
            passed = bool(_cel_program(rule["rule"]).evaluate(activation))
        except celpy.CELEvalError as exc:
            # The API server reports a rule that cannot be evaluated as an invalid value too.
            passed = False
            errors.append(f"{rule['message']} (rule failed to evaluate: {exc.args[0] if exc.args else exc})")
            continue
        if not passed:
            errors.append(rule["message"])
    return errors
