r"""String rules shared by the Python models and the generated CRD schemas.

A `TextRule` is placed in an `Annotated[str, ...]` type. It validates a value
in Python with a readable message and emits the same rule as JSON Schema
keywords (`pattern`, `minLength`, `maxLength`), so the CRD and the models can
never drift apart. Patterns use only syntax that means the same in Python's `re` and in Go's
RE2 (the API server's engine): no look-around, no back-references, and no
`\s` or `\w`, whose Unicode meaning differs between the two.
"""

from __future__ import annotations

import re
import reprlib
from dataclasses import dataclass, field
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import PydanticCustomError, core_schema


_SHORT_REPR = reprlib.Repr()
_SHORT_REPR.maxlevel = 2
_SHORT_REPR.maxdict = _SHORT_REPR.maxlist = _SHORT_REPR.maxtuple = _SHORT_REPR.maxset = 4
_SHORT_REPR.maxstring = 80
_SHORT_REPR.maxother = 40


def show(value: Any) -> str:
    """Quote a rejected value for an error message, shortened so that huge or nested values stay cheap."""
    return _SHORT_REPR.repr(value)


@dataclass(frozen=True)
class TextRule:
    """A string constraint with the sentence that explains it to a user."""

    rule: str
    pattern: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    _compiled: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.pattern is not None:
            object.__setattr__(self, "_compiled", re.compile(self.pattern))

    def check(self, value: str) -> str:
        """Return `value` unchanged, or raise a `rule` error naming the value."""
        if self.min_length is not None and len(value) < self.min_length:
            self._reject(value)
        if self.max_length is not None and len(value) > self.max_length:
            raise PydanticCustomError(
                "livery_rule", "{rule}, got {length} characters", {"rule": self.rule, "length": len(value)}
            )
        if self._compiled is not None and self._compiled.fullmatch(value) is None:
            self._reject(value)
        return value

    def _reject(self, value: str) -> None:
        raise PydanticCustomError("livery_rule", "{rule}, got {value}", {"rule": self.rule, "value": show(value)})

    def json_schema(self) -> dict[str, Any]:
        """Return the JSON Schema keywords for this rule."""
        schema: dict[str, Any] = {"type": "string"}
        if self.min_length is not None:
            schema["minLength"] = self.min_length
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        if self.pattern is not None:
            schema["pattern"] = self.pattern
        return schema

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        # Build on the schema of what precedes this rule in `Annotated`, so earlier
        # constraints (such as `StringConstraints(to_lower=True)`) still apply.
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        return self.json_schema()


# Tenant names become a DNS label, a namespace suffix and PostgreSQL identifiers.
# `(-?[a-z0-9])+` forbids `--` (and so `xn--` punycode) and a trailing `-`.
TENANT_NAME_PATTERN = r"^[a-z](-?[a-z0-9])+$"
TENANT_NAME_MIN = 3
TENANT_NAME_MAX = 40
TENANT_NAME = TextRule(
    rule=(
        f"must be {TENANT_NAME_MIN} to {TENANT_NAME_MAX} characters of lowercase letters, digits and '-', "
        "start with a letter, end with a letter or digit and contain no '--'"
    ),
    pattern=TENANT_NAME_PATTERN,
    min_length=TENANT_NAME_MIN,
    max_length=TENANT_NAME_MAX,
)

RESERVED_TENANT_NAMES: tuple[str, ...] = (
    "www", "api", "admin", "app", "auth", "login", "signup", "billing", "console", "dashboard",
    "docs", "help", "status", "support", "static", "assets", "mail", "default", "system", "livery",
)
RESERVED_TENANT_PREFIXES: tuple[str, ...] = ("kube-", "tenant-")

# Plan names are plain DNS labels, as Kubernetes object names usually are.
PLAN_NAME = TextRule(
    rule="must be a DNS label: 1 to 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit",
    pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$",
    min_length=1,
    max_length=63,
)

# A host name: dot-separated labels of 1 to 63 characters, at least two labels,
# and a last label that starts with a letter, which rules out IPv4 addresses.
# Wildcards, ports, upper case and trailing dots do not match.
HOSTNAME = TextRule(
    rule=(
        "must be a lowercase DNS name of at most 253 characters: at least two labels of 1 to 63 "
        "letters, digits and '-', the last one starting with a letter (no wildcard, IP address, port or trailing dot)"
    ),
    pattern=r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]([-a-z0-9]{0,61}[a-z0-9])?$",
    min_length=1,
    max_length=253,
)

COLOUR = TextRule(rule="must be a #rrggbb colour", pattern=r"^#[0-9a-fA-F]{6}$")

DISPLAY_NAME = TextRule(
    rule="must be 1 to 100 characters, not blank, without control characters",
    pattern=r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$",
    min_length=1,
    max_length=100,
)

# An https URL without characters that could end a CSS `url()` or an HTML
# attribute, or a path to a branding file that the tenant app serves itself.
ASSET_URL = TextRule(
    rule="must be an https:// URL or a path under /branding/, without spaces, quotes, brackets or backslashes",
    pattern=r"""^(https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^\t\n\f\r "'<>()\\]*)?|/branding/[A-Za-z0-9][A-Za-z0-9._-]{0,127})$""",
    min_length=1,
    max_length=2048,
)

# 20 KiB of UTF-8. The character limit lets the API server bound the cost of the
# byte-count CEL rule; the byte limit itself is checked in `Branding`.
CUSTOM_CSS_MAX_BYTES = 20480
CUSTOM_CSS = TextRule(
    rule=f"must be at most {CUSTOM_CSS_MAX_BYTES} characters without NUL characters",
    pattern=r"^[^\x00]*$",
    max_length=CUSTOM_CSS_MAX_BYTES,
)

EMAIL = TextRule(
    rule="must be an email address such as owner@example.com",
    pattern=r'^[^@\t\n\f\r "<>]+@[^@\t\n\f\r "<>]+\.[^@\t\n\f\r "<>]+$',
    min_length=3,
    max_length=254,
)

# Kubernetes resource quantities, restricted to the forms a plan needs.
CPU_QUANTITY = TextRule(
    rule="must be a CPU quantity such as '250m', '1' or '1.5'",
    pattern=r"^([1-9][0-9]{0,5}m|[0-9]{1,3}(\.[0-9]{1,3})?)$",
)
MEMORY_QUANTITY = TextRule(
    rule="must be a memory quantity such as '256Mi' or '2Gi'",
    pattern=r"^[1-9][0-9]{0,6}(Ki|Mi|Gi|Ti)$",
)

STRIPE_PRICE_ID = TextRule(
    rule="must be a Stripe price id such as 'price_1Nabc'",
    pattern=r"^price_[A-Za-z0-9]{1,250}$",
)
