"""The Tenant resource: what one customer's instance should be, and what it is."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from .base import GROUP_VERSION, ObjectMeta, SpecModel
from .plan import Isolation, Limits
from .rules import (
    ASSET_URL,
    COLOUR,
    CUSTOM_CSS,
    CUSTOM_CSS_MAX_BYTES,
    DISPLAY_NAME,
    EMAIL,
    HOSTNAME,
    PLAN_NAME,
    RESERVED_TENANT_NAMES,
    RESERVED_TENANT_PREFIXES,
    TENANT_NAME,
    show,
)

MAX_DOMAINS = 20

Phase = Literal["Pending", "Provisioning", "Ready", "Suspended", "Failed", "Deleting"]
PHASES: tuple[str, ...] = ("Pending", "Provisioning", "Ready", "Suspended", "Failed", "Deleting")
ConditionType = Literal["Ready", "DatabaseReady", "AppReady", "RoutingReady"]
CONDITION_TYPES: tuple[str, ...] = ("Ready", "DatabaseReady", "AppReady", "RoutingReady")
DeletionPolicy = Literal["Retain", "Delete", "Snapshot"]


def reserved_name_reason(name: str) -> str | None:
    """Return why `name` is reserved for the platform, or None when it is free."""
    if name in RESERVED_TENANT_NAMES:
        return "is reserved for the platform"
    for prefix in RESERVED_TENANT_PREFIXES:
        if name.startswith(prefix):
            return f"must not start with '{prefix}', which is reserved for the platform"
    return None


class Owner(SpecModel):
    email: Annotated[str, EMAIL] = Field(description="Email of the customer account that owns the tenant.")


class Branding(SpecModel):
    """The look of the tenant's app. Every unset field falls back to the app's default."""

    product_name: Annotated[str, DISPLAY_NAME] | None = Field(default=None, description="Name shown in the app.")
    logo_url: Annotated[str, ASSET_URL] | None = Field(default=None, description="https URL or /branding/ path.")
    favicon_url: Annotated[str, ASSET_URL] | None = Field(default=None, description="https URL or /branding/ path.")
    primary_color: Annotated[str, COLOUR] | None = Field(default=None, description="Main colour, #rrggbb.")
    accent_color: Annotated[str, COLOUR] | None = Field(default=None, description="Accent colour, #rrggbb.")
    custom_css: Annotated[str, CUSTOM_CSS] | None = Field(
        default=None, description="Extra CSS, at most 20 KiB of UTF-8, sanitised before the app serves it."
    )

    @field_validator("custom_css")
    @classmethod
    def _custom_css_fits(cls, css: str | None) -> str | None:
        if css is not None and len(css.encode()) > CUSTOM_CSS_MAX_BYTES:
            raise PydanticCustomError(
                "livery_rule",
                "must be at most {limit} bytes of UTF-8, got {size} bytes",
                {"limit": CUSTOM_CSS_MAX_BYTES, "size": len(css.encode())},
            )
        return css


class TenantSpec(SpecModel):
    display_name: Annotated[str, DISPLAY_NAME] = Field(description="Name of the customer, 1 to 100 characters.")
    plan: Annotated[str, PLAN_NAME] = Field(description="Name of the Plan the tenant is on.")
    isolation: Isolation | None = Field(
        default=None, description="database, schema or shared; unset means the plan's. Fixed once set."
    )
    owner: Owner | None = None
    domains: list[Annotated[str, HOSTNAME]] | None = Field(
        default=None, max_length=MAX_DOMAINS, description="Custom hostnames, unique across tenants."
    )
    branding: Branding | None = None
    suspended: bool = Field(default=False, description="Stops the app and serves a suspension page; data is kept.")
    deletion_policy: DeletionPolicy = Field(
        default="Retain", description="Retain keeps the database, Delete drops it, Snapshot dumps then drops it."
    )
    limits: Limits | None = Field(default=None, description="Overrides of the plan's limits.")

    @field_validator("domains")
    @classmethod
    def _domains_are_unique(cls, domains: list[str] | None) -> list[str] | None:
        if domains is None:
            return None
        seen: set[str] = set()
        for index, host in enumerate(domains):
            if host in seen:
                raise PydanticCustomError(
                    "livery_duplicate",
                    "must be unique, got {value} twice",
                    {"index": index, "value": show(host)},
                )
            seen.add(host)
        return domains


class Condition(SpecModel):
    type: ConditionType
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024)
    message: str = Field(default="", max_length=32768)
    last_transition_time: str | None = None
    observed_generation: int | None = Field(default=None, ge=0)


class DatabaseStatus(SpecModel):
    """The location of the tenant's data: names only, never credentials."""

    name: str | None = Field(default=None, description="PostgreSQL database.")
    schema_: str | None = Field(default=None, alias="schema", description="PostgreSQL schema.")
    role: str | None = Field(default=None, description="Login role the app connects as.")
    secret_name: str | None = Field(default=None, description="Secret that contains the database URL.")


class TenantStatus(SpecModel):
    """The observed state of a tenant, written only by the reconciler."""

    phase: Phase | None = None
    conditions: list[Condition] | None = None
    url: str | None = None
    hosts: list[str] | None = None
    isolation: Isolation | None = None
    database: DatabaseStatus | None = None
    limits: Limits | None = None
    observed_generation: int | None = Field(default=None, ge=0)

    @field_validator("conditions")
    @classmethod
    def _one_condition_per_type(cls, conditions: list[Condition] | None) -> list[Condition] | None:
        seen: set[str] = set()
        for index, condition in enumerate(conditions or []):
            if condition.type in seen:
                raise PydanticCustomError(
                    "livery_duplicate",
                    "must be unique, got type {value} twice",
                    {"index": index, "value": show(condition.type)},
                )
            seen.add(condition.type)
        return conditions

    def condition(self, kind: str) -> Condition | None:
        """Return the condition of type `kind`, or None when it was never reported."""
        for condition in self.conditions or []:
            if condition.type == kind:
                return condition
        return None


class TenantMeta(ObjectMeta):
    name: Annotated[str, TENANT_NAME]

    @field_validator("name")
    @classmethod
    def _name_is_not_reserved(cls, name: str) -> str:
        reason = reserved_name_reason(name)
        if reason is not None:
            raise PydanticCustomError("livery_reserved", "{reason}, got {value}", {"reason": reason, "value": show(name)})
        return name


class Tenant(SpecModel):
    """A Tenant resource (`tenants.livery.dev`)."""

    api_version: Literal["livery.dev/v1alpha1"] = Field(default=GROUP_VERSION)
    kind: Literal["Tenant"] = "Tenant"
    metadata: TenantMeta
    spec: TenantSpec
    status: TenantStatus | None = None

    @property
    def name(self) -> str:
        return self.metadata.name


def check_tenant_update(old: TenantSpec, new: TenantSpec) -> list[str]:
    """Return the errors of changing `old` into `new`: rules that only an update can break.

    The CRD states the same rule as a CEL transition rule, so the API server
    and the local store reject the same updates.
    """
    errors: list[str] = []
    if old.isolation is not None and new.isolation is not None and new.isolation != old.isolation:
        errors.append(
            f"spec.isolation: cannot be changed to another mode once set (from {show(old.isolation)} to "
            f"{show(new.isolation)}); moving data between isolation modes is not supported (removing it keeps "
            "the tenant in the mode its data is in)"
        )
    return errors
