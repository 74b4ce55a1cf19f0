"""Settings of `livery operator`, read from `LIVERY_*` environment variables."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from livery.settings import CommonSettings

# A DNS-1123 subdomain, as the API server requires of an ExternalName Service's externalName.
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_SUBDOMAIN_MAX_LENGTH = 253
# A DNS-1123 label, as Kubernetes requires of a namespace name.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
REDIS_SCHEMES = ("redis", "rediss")


class OperatorSettings(CommonSettings):
    app_image: str = Field(
        default="ghcr.io/livery-dev/livery:0.1.0", description="Image of the tenant app Deployment."
    )
    ingress_class: str = Field(default="nginx", description="ingressClassName of every tenant Ingress.")
    cert_issuer: str | None = Field(
        default=None, description="cert-manager ClusterIssuer named on each Ingress; unset means no TLS."
    )
    control_api_url: str | None = Field(
        default=None, description="Base URL of the control API that tenant apps report usage to."
    )
    suspension_service_host: str = Field(
        default="livery-control-api.livery.svc.cluster.local",
        description=(
            "Fully qualified DNS name of the control API Service, which serves the suspension page; "
            "the externalName of each suspended tenant's `tenant-suspended` Service."
        ),
    )
    suspension_service_port: int = Field(
        default=8000, ge=1, le=65535, description="Port of the control API Service named by suspension_service_host."
    )
    ingress_namespace: str = Field(
        default="ingress-nginx", description="Namespace of the ingress controller, the only source of inbound traffic."
    )
    control_api_namespace: str = Field(
        default="livery", description="Namespace of the control API, a permitted egress target."
    )
    tenant_redis_url: SecretStr | None = Field(
        default=None,
        description=(
            "redis:// or rediss:// URL every tenant app gets as LIVERY_REDIS_URL, through the Secret `tenant-redis`, "
            "for rate-limit counters shared by its replicas; unset means each replica counts on its own."
        ),
    )
    metrics_namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated namespaces whose pods may scrape each tenant app's /metrics on the app port.",
    )
    trusted_proxies: str | None = Field(
        default=None,
        description="LIVERY_TRUSTED_PROXIES of every tenant app: comma-separated IPs or CIDRs of the ingress controller pods.",
    )
    url_scheme: Literal["http", "https"] = Field(default="https", description="Scheme of status.url.")
    url_port: int | None = Field(default=None, ge=1, le=65535, description="Port of status.url; unset means the scheme's default.")
    resync_seconds: float = Field(
        default=30.0, gt=0, le=60, description="Seconds between drift checks of each tenant's objects."
    )
    metrics_port: int = Field(default=9090, ge=0, le=65535, description="Port of /metrics; 0 disables it.")
    metrics_host: str = Field(default="0.0.0.0", description="Address /metrics listens on.")
    health_port: int = Field(default=8080, ge=0, le=65535, description="Port of kopf's /healthz liveness probe; 0 disables it.")
    config_mount_path: str = Field(
        default="/etc/livery", description="Folder the tenant config ConfigMap is mounted at in the app container."
    )
    files_dir: Path | None = Field(
        default=None, description="Folder for deletion snapshots when no S3 bucket is set; unset disables Snapshot."
    )
    max_concurrent_reconciles: int = Field(
        default=16, ge=1, le=500, description="Tenants reconciled at once; bounds database connections."
    )
    database_recheck_seconds: float = Field(
        default=600.0, ge=0, description="Seconds a tenant's database counts as checked; 0 checks on every reconcile."
    )
    database_concurrency: int = Field(
        default=4, ge=1, le=100, description="Database provisioning calls run at once."
    )
    app_port: int = Field(default=8000, ge=1, le=65535, description="Port the tenant app listens on.")

    @field_validator("suspension_service_host")
    @classmethod
    def _host_is_dns_name(cls, value: str) -> str:
        if len(value) > DNS_SUBDOMAIN_MAX_LENGTH or not DNS_SUBDOMAIN.match(value):
            raise ValueError(
                f"{value!r} is not a lowercase DNS name such as livery-control-api.livery.svc.cluster.local"
            )
        return value

    @field_validator("tenant_redis_url")
    @classmethod
    def _redis_url_names_a_server(cls, value: SecretStr | None) -> SecretStr | None:
        # The message names the scheme only, because the URL may carry a password.
        if value is None:
            return value
        example = "redis://user:password@host:6379/0"
        try:
            parts = urlsplit(value.get_secret_value())
            parts.port  # noqa: B018 - raises ValueError on a port that is not a number
        except ValueError:
            raise ValueError(f"is not a valid URL. Write it as {example}") from None
        if parts.scheme not in REDIS_SCHEMES:
            scheme = parts.scheme or "(none)"
            raise ValueError(f"has scheme {scheme!r}, but must start with redis:// or rediss://, as in {example}")
        if not parts.hostname:
            raise ValueError(f"has no host. Write it as {example}")
        return value

    @field_validator("metrics_namespaces", mode="before")
    @classmethod
    def _split_namespaces(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("metrics_namespaces")
    @classmethod
    def _namespaces_are_dns_labels(cls, value: list[str]) -> list[str]:
        for name in value:
            if not DNS_LABEL.match(name):
                raise ValueError(
                    f"{name!r} is not a namespace name (lowercase letters, digits and '-', at most 63 characters)"
                )
        return value
