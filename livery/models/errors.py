"""Turn pydantic validation errors into `field.path: rule, got value` lines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from .rules import show

_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "bool_type": "a boolean (true or false)",
    "list_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "float_type": "a number",
}


def field_path(location: Sequence[str | int]) -> str:
    """Render a pydantic location as `spec.domains[2].name`."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif path:
            path += f".{part}"
        else:
            path = str(part)
    return path or "(document)"


def describe_error(error: dict[str, Any]) -> tuple[str, str]:
    """Return the field path and the message for one pydantic error."""
    location = list(error["loc"])
    kind = error["type"]
    context = error.get("ctx") or {}
    value = error.get("input")

    if kind == "livery_duplicate" and "index" in context:
        location.append(context["index"])
    if kind.startswith("livery_"):
        message = error["msg"]
    elif kind == "missing":
        message = "is required"
    elif kind == "extra_forbidden":
        message = "is not a known field"
    elif kind in _TYPE_NAMES:
        message = f"must be {_TYPE_NAMES[kind]}, got {show(value)}"
    elif kind == "literal_error":
        message = f"must be one of {context.get('expected')}, got {show(value)}"
    elif kind == "greater_than_equal":
        message = f"must be at least {context.get('ge')}, got {show(value)}"
    elif kind == "less_than_equal":
        message = f"must be at most {context.get('le')}, got {show(value)}"
    elif kind == "too_long":
        message = f"must have at most {context.get('max_length')} items, got {context.get('actual_length')}"
    elif kind == "too_short":
        message = f"must have at least {context.get('min_length')} items, got {context.get('actual_length')}"
    elif kind == "string_pattern_mismatch":
        message = f"must match {context.get('pattern')}, got {show(value)}"
    elif kind == "string_too_long":
        message = f"must be at most {context.get('max_length')} characters, got {len(value)}"
    elif kind == "string_too_short":
        message = f"must be at least {context.get('min_length')} characters, got {show(value)}"
    else:
        message = f"{error['msg'][0].lower()}{error['msg'][1:]}, got {show(value)}"
    return field_path(location), message


def format_validation_error(exc: ValidationError, prefix: Sequence[str | int] = ()) -> list[str]:
    """Return one `path: message` line per problem in `exc`."""
    lines = []
    for error in exc.errors(include_url=False):
        path, message = describe_error({**error, "loc": (*prefix, *error["loc"])})
        lines.append(f"{path}: {message}")
    return lines
