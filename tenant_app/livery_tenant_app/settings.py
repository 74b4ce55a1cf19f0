"""Settings of the tenant app, read from the `LIVERY_*` environment contract.

The reconciler sets every variable (from the tenant's Secret and ConfigMap on
Kubernetes, from the local driver in the embedded runtime), so a vendor's own
image can read the same names.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from livery.settings import CommonSettings, load_settings

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class TenantAppSettings(CommonSettings):
    tenant: str = Field(description="Tenant name.")
    tenant_config: Path = Field(description="Path of the tenant config JSON file (tenant.json).")
    database_url: SecretStr = Field(description="URL of the tenant app's database role, with its password.")  # type: ignore[assignment]
    isolation: Literal["database", "schema", "shared"] = Field(default="database")
    db_schema: str | None = Field(default=None, description="The tenant's schema in schema mode.")
    files_dir: Path | None = Field(default=None, description="Folder for files when no S3 bucket is set.")
    control_api_url: str | None = Field(default=None, description="Where usage is reported; unset skips reporting.")
    usage_token: SecretStr | None = Field(default=None, description="Bearer token for POST /v1/usage.")
    login_key: SecretStr | None = Field(default=None, description="HMAC key of one-time owner login links.")
    session_key: SecretStr = Field(description="Key that signs session cookies.")
    trusted_proxies: str = Field(
        default="", description="Comma-separated IPs or CIDRs whose X-Forwarded-* headers count."
    )
    config_poll_seconds: float = Field(
        default=2.0, gt=0, le=30, description="How often, in seconds, the config file is checked for changes."
    )
    database_pool_size: int = Field(default=5, ge=1, le=100, description="Pooled database connections.")
    secure_cookies: bool = Field(
        default=False, description="Mark cookies Secure; set it when the app is served over https."
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies_are_networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    @field_validator("db_schema")
    @classmethod
    def _schema_is_an_identifier(cls, value: str | None) -> str | None:
        if value is not None and (not value or len(value.encode()) > 63 or "\x00" in value):
            raise ValueError(f"must be a PostgreSQL identifier of 1 to 63 bytes, got {value!r}")
        return value

    def proxy_networks(self) -> list[IpNetwork]:
        """Return the trusted proxies as networks."""
        return parse_networks(self.trusted_proxies)


def parse_networks(value: str) -> list[IpNetwork]:
    """Parse a comma-separated list of IPs and CIDRs, or raise ValueError naming the bad item."""
    networks: list[IpNetwork] = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"must be comma-separated IP addresses or CIDRs, got {item!r}") from None
    return networks


@lru_cache
def get_settings() -> TenantAppSettings:
    """Return the settings read from the environment, once per process."""
    return load_settings(TenantAppSettings)
