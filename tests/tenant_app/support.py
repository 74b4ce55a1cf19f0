"""Builders shared by the tenant app tests."""

from __future__ import annotations

from typing import Any


def tenant_config_document(
    tenant: str,
    *,
    isolation: str = "shared",
    hosts: list[str] | None = None,
    branding: dict[str, Any] | None = None,
    features: dict[str, Any] | None = None,
    limits: dict[str, Any] | None = None,
    owner_email: str | None = None,
) -> dict[str, Any]:
    """Return a tenant config document (camelCase JSON) as the reconciler writes it."""
    hosts = hosts or [f"{tenant}.localhost"]
    document: dict[str, Any] = {
        "tenant": tenant,
        "displayName": tenant.capitalize() + " Inc.",
        "plan": "pro",
        "isolation": isolation,
        "branding": branding or {},
        "features": features or {},
        "limits": {"users": 5, "storageMiB": 1, "apiRequestsPerMinute": 1000, **(limits or {})},
        "hosts": hosts,
        "url": f"http://{hosts[0]}",
    }
    if owner_email is not None:
        document["owner"] = {"email": owner_email}
    return document


def app_settings(config_path, tenant: str, database_url: str = "postgresql://nobody@127.0.0.1:1/none", **values: Any):
    """Return TenantAppSettings for a test app, without reading the environment."""
    from livery_tenant_app.settings import TenantAppSettings

    return TenantAppSettings(
        tenant=tenant,
        tenant_config=config_path,
        database_url=database_url,
        session_key=f"session-key-{tenant}-0123456789abcdef0123456789",
        login_key=f"login-key-{tenant}-0123456789abcdef0123456789",
        **values,
    )
