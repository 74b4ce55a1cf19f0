"""Settings of the control API, read from `LIVERY_*` environment variables."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from livery.settings import CommonSettings

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "development"})


class ControlApiSettings(CommonSettings):
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token of platform admins, or several separated by commas; unset disables the admin API."
    )
    jwt_secret: SecretStr = Field(
        default=SecretStr("development"),
        description="HMAC key that signs access and refresh tokens; must be set outside development.",
    )
    stripe_api_key: SecretStr | None = Field(default=None, description="Stripe secret key; unset means billing none.")
    stripe_webhook_secret: SecretStr | None = Field(
        default=None, description="Signing secret of the Stripe webhook endpoint (whsec_...)."
    )
    stripe_api_base: str | None = Field(
        default=None, description="Base URL of the Stripe API; unset means https://api.stripe.com."
    )
    stripe_meter_event_name: str = Field(
        default="livery_api_calls", description="Event name of the Stripe Billing Meter that counts API calls."
    )
    webhook_tolerance_seconds: int = Field(
        default=300, ge=1, le=3600, description="Maximum age of a webhook signature timestamp, in seconds."
    )
    grace_period_hours: float = Field(
        default=72, ge=0, le=24 * 60, description="Hours between a failed payment and suspension."
    )
    grace_check_seconds: float = Field(
        default=60, gt=0, le=3600, description="Seconds between two checks for expired grace periods."
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000", description="URL customers reach the control API at; used in links."
    )
    access_token_minutes: int = Field(default=15, ge=1, le=1440, description="Lifetime of an access token, in minutes.")
    refresh_token_days: int = Field(default=30, ge=1, le=365, description="Lifetime of a refresh token, in days.")
    invitation_days: int = Field(default=7, ge=1, le=90, description="Days before an invitation expires.")
    login_attempts_per_minute: int = Field(
        default=10, ge=1, le=10_000, description="Failed sign-ins a minute allowed per account and per client address."
    )
    store: Literal["kubernetes", "local"] = Field(
        default="kubernetes",
        description="Where Tenant resources live: the Kubernetes API, or the control database (embedded runtime).",
    )
    kubeconfig: str | None = Field(
        default=None, description="kubeconfig path for the Kubernetes store; unset means in-cluster or ~/.kube/config."
    )
    files_dir: str | None = Field(
        default=None, description="Folder of tenant files when no S3 bucket is set (logo uploads land there)."
    )
    password_hash_time_cost: int = Field(default=3, ge=1, le=20, description="argon2id passes.")
    password_hash_memory_kib: int = Field(
        default=65536, ge=8, le=4 * 1024 * 1024, description="argon2id memory per hash, in KiB."
    )
    password_hash_parallelism: int = Field(default=4, ge=1, le=64, description="argon2id lanes.")
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated IPs or CIDRs of reverse proxies whose X-Forwarded-For names the client.",
    )
    environment: Literal["development", "production"] = Field(
        default="development", description="production rejects placeholder secrets at start-up."
    )
    secure_cookies: bool = Field(default=False, description="Mark session cookies Secure (HTTPS only).")
    suspension_cache_seconds: float = Field(
        default=5, ge=0, le=300,
        description="Seconds the hosts of suspended tenants are cached for the suspension page; 0 reads them on every request.",
    )
    plan_cache_seconds: float = Field(
        default=5, ge=0, le=300,
        description="Seconds a plan read for a signup is reused; 0 reads it on every signup.",
    )

    @model_validator(mode="after")
    def _no_placeholder_secrets_in_production(self) -> "ControlApiSettings":
        if self.environment == "production":
            if self.jwt_secret.get_secret_value() in PLACEHOLDER_SECRETS or len(self.jwt_secret.get_secret_value()) < 32:
                raise ValueError("jwt_secret must be set to at least 32 random characters in production")
        if self.stripe_api_key is not None and self.stripe_webhook_secret is None:
            raise ValueError("stripe_webhook_secret is required when stripe_api_key is set")
        return self

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR network") from None
        return value

    @property
    def proxy_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(part.strip(), strict=False) for part in self.trusted_proxies.split(",") if part.strip()]

    @property
    def billing_enabled(self) -> bool:
        return self.stripe_api_key is not None
