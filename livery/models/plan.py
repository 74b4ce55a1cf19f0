"""The Plan resource: limits, features and price shared by the tenants on it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import GROUP_VERSION, ObjectMeta, SpecModel
from .rules import CPU_QUANTITY, DISPLAY_NAME, MEMORY_QUANTITY, PLAN_NAME, STRIPE_PRICE_ID

Isolation = Literal["database", "schema", "shared"]
ISOLATION_MODES: tuple[str, ...] = ("database", "schema", "shared")


class Limits(SpecModel):
    """Resource and usage limits. On a Plan every field is set; on a Tenant each one is an override."""

    users: int | None = Field(default=None, ge=1, le=100_000, description="Maximum number of user accounts.")
    storage_mi_b: int | None = Field(
        default=None, ge=1, le=10_485_760, alias="storageMiB", description="Maximum file storage, in MiB."
    )
    api_requests_per_minute: int | None = Field(
        default=None, ge=1, le=1_000_000, description="API requests a minute before requests get 429."
    )
    replicas: int | None = Field(default=None, ge=1, le=50, description="App replicas while the tenant is active.")
    cpu: Annotated[str, CPU_QUANTITY] | None = Field(default=None, description="CPU limit of one app replica.")
    memory: Annotated[str, MEMORY_QUANTITY] | None = Field(
        default=None, description="Memory limit of one app replica."
    )

    def merged_with(self, overrides: "Limits | None") -> "Limits":
        """Return these limits with every field that `overrides` sets replaced."""
        values = self.model_dump(by_alias=True)
        if overrides is not None:
            values.update(overrides.model_dump(by_alias=True, exclude_none=True))
        return Limits.model_validate(values)


class PlanLimits(Limits):
    """The limits a Plan must define; users, storage and API rate have no default."""

    users: int = Field(ge=1, le=100_000, description="Maximum number of user accounts.")
    storage_mi_b: int = Field(ge=1, le=10_485_760, alias="storageMiB", description="Maximum file storage, in MiB.")
    api_requests_per_minute: int = Field(
        ge=1, le=1_000_000, description="API requests a minute before requests get 429."
    )
    replicas: int = Field(default=1, ge=1, le=50, description="App replicas while the tenant is active.")
    cpu: Annotated[str, CPU_QUANTITY] = Field(default="500m", description="CPU limit of one app replica.")
    memory: Annotated[str, MEMORY_QUANTITY] = Field(default="512Mi", description="Memory limit of one app replica.")


class Features(SpecModel):
    """Switches that a plan turns on for its tenants."""

    custom_domains: bool = Field(default=False, description="Tenants may serve custom hostnames.")
    custom_css: bool = Field(default=False, description="Tenants may add their own CSS.")
    remove_powered_by: bool = Field(default=False, description="The 'Powered by' footer is hidden.")


class PlanBilling(SpecModel):
    """The price of a plan and the Stripe price that charges for it."""

    stripe_price_id: Annotated[str, STRIPE_PRICE_ID] | None = Field(
        default=None, description="Stripe Price that Checkout subscribes to; unset for a free plan."
    )
    monthly_price_cents: Annotated[int, Field(ge=0, le=100_000_000)] = Field(
        default=0, description="Price shown to customers, in cents a month."
    )


class PlanSpec(SpecModel):
    display_name: Annotated[str, DISPLAY_NAME] = Field(description="Name shown to customers.")
    isolation: Isolation = Field(default="shared", description="Isolation mode of tenants that set none.")
    limits: PlanLimits
    features: Features = Field(default_factory=Features)
    billing: PlanBilling = Field(default_factory=PlanBilling)


class PlanStatus(SpecModel):
    """The observed state of a Plan, written by the operator."""

    tenants: int | None = Field(default=None, ge=0, description="Tenants on this plan.")
    observed_generation: int | None = Field(default=None, ge=0)


class PlanMeta(ObjectMeta):
    name: Annotated[str, PLAN_NAME]


class Plan(SpecModel):
    """A Plan resource (`plans.livery.dev`)."""

    api_version: Literal["livery.dev/v1alpha1"] = Field(default=GROUP_VERSION)
    kind: Literal["Plan"] = "Plan"
    metadata: PlanMeta
    spec: PlanSpec
    status: PlanStatus | None = None

    @property
    def name(self) -> str:
        return self.metadata.name
