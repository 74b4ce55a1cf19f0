"""Request and response bodies of the JSON API (camelCase on the wire)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from livery.models.plan import Limits
from livery.models.rules import DISPLAY_NAME, EMAIL, HOSTNAME, PLAN_NAME, TENANT_NAME
from livery.models.tenant import Branding, Condition

PASSWORD_MIN = 10
PASSWORD_MAX = 256


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


Password = Annotated[str, Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX, description="10 to 256 characters.")]


class SignupRequest(ApiModel):
    # Checked by the signup itself, which distinguishes invalid, reserved and taken names.
    tenant: Annotated[str, Field(max_length=63, pattern=r"^[^\x00]*$", description="Tenant name; becomes <name>.<base domain>.")]
    display_name: Annotated[str, DISPLAY_NAME]
    email: Annotated[str, EMAIL]
    password: Password
    plan: Annotated[str, PLAN_NAME] = "free"


class NameCheck(ApiModel):
    name: str
    available: bool
    reason: Literal["invalid", "reserved", "taken"] | None = None
    message: str


class TenantStatusView(ApiModel):
    phase: str | None = None
    url: str | None = None
    hosts: list[str] = Field(default_factory=list)
    conditions: list[Condition] = Field(default_factory=list)
    limits: Limits | None = None


class BillingView(ApiModel):
    provider: str
    subscription_status: str | None = None
    grace_until: datetime | None = None
    suspended_by_billing: bool = False
    over_quota: str | None = None


class TenantView(ApiModel):
    name: str
    display_name: str
    plan: str
    owner: str | None = None
    suspended: bool = False
    domains: list[str] = Field(default_factory=list)
    branding: Branding = Field(default_factory=Branding)
    status: TenantStatusView | None = None
    role: str | None = None
    billing: BillingView | None = None


class SignupResponse(ApiModel):
    tenant: str
    state: Literal["provisioning", "pending_payment"]
    plan: str
    checkout_url: str | None = None
    status: TenantStatusView | None = None


class TokenResponse(BaseModel):
    """OAuth2 token response (RFC 6749 section 5.1), so snake_case keys."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int
    refresh_token: str | None = None


class RefreshRequest(ApiModel):
    refresh_token: str


class DomainRequest(ApiModel):
    domain: Annotated[str, HOSTNAME]


class DomainView(ApiModel):
    domain: str
    verified: bool
    txt_name: str | None = None
    txt_value: str | None = None


class InvitationRequest(ApiModel):
    email: Annotated[str, EMAIL]
    role: Literal["admin", "member"] = "member"


class InvitationView(ApiModel):
    id: str
    email: str
    role: str
    expires_at: datetime
    invited_by: str | None = Field(
        default=None, description="Email of the member who sent it; null when sent with an API key or the admin token."
    )
    token: str | None = Field(default=None, description="Shown once, when the invitation is created.")


class PasswordResetRequest(ApiModel):
    email: Annotated[str, EMAIL]


class PasswordResetConfirm(ApiModel):
    token: Annotated[str, Field(min_length=1, max_length=256)]
    new_password: Password


class AcceptedResponse(ApiModel):
    message: str


class AcceptInvitationRequest(ApiModel):
    token: str
    password: Password | None = Field(default=None, description="Needed when no account with the email exists yet.")


class MemberView(ApiModel):
    email: str
    role: str


class RoleChangeRequest(ApiModel):
    role: Literal["admin", "member"]


class ApiKeyRequest(ApiModel):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    role: Literal["admin", "member"] = "member"


class ApiKeyView(ApiModel):
    id: str
    name: str
    role: str
    created_at: datetime | None = None
    created_by: str | None = Field(
        default=None, description="Email of the member who created it; null for keys created with an API key or the admin token."
    )
    revoked: bool = False
    key: str | None = Field(default=None, description="The secret key, shown once, when the key is created.")


class PlanChangeRequest(ApiModel):
    plan: Annotated[str, PLAN_NAME]


class UsageReport(ApiModel):
    id: uuid.UUID
    metric: Literal["users", "storage_bytes", "api_calls"]
    value: Annotated[int, Field(ge=0, le=2**62)]
    timestamp: datetime


class UsageRequest(ApiModel):
    tenant: Annotated[str, TENANT_NAME]
    reports: Annotated[list[UsageReport], Field(min_length=1, max_length=1000)]


class UsageResponse(ApiModel):
    accepted: int
    duplicates: int


class LoginLinkResponse(ApiModel):
    url: str
    expires_in: int


class UrlResponse(ApiModel):
    url: str


class AdminApplyResponse(ApiModel):
    action: Literal["created", "configured", "unchanged"]
    resource: dict[str, Any]


class AdminTenantView(ApiModel):
    name: str
    display_name: str
    plan: str
    owner: str | None = None
    suspended: bool
    phase: str | None = None
    url: str | None = None
    usage: dict[str, int] = Field(default_factory=dict)
    spec: dict[str, Any] | None = None
    status: dict[str, Any] | None = None


class EventView(ApiModel):
    type: str
    reason: str
    message: str
    timestamp: str
    count: int
