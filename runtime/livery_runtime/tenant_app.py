"""`livery tenant-app`: serve one tenant's app with uvicorn, configured from `LIVERY_*` variables."""

from __future__ import annotations

from typing import Annotated

import typer


def tenant_app(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on.", min=1, max=65535)] = 8000,
) -> None:
    """Serve the tenant app of the tenant that LIVERY_TENANT and LIVERY_TENANT_CONFIG describe."""
    import uvicorn

    from livery.settings import SettingsError, load_settings
    from livery_tenant_app.app import create_app
    from livery_tenant_app.config import ConfigError
    from livery_tenant_app.logs import configure_logging
    from livery_tenant_app.settings import TenantAppSettings

    try:
        settings = load_settings(TenantAppSettings)
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.tenant, settings.log_level)
    try:
        application = create_app(settings)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None

    # The app reads X-Forwarded-* itself, only from LIVERY_TRUSTED_PROXIES, so uvicorn must not rewrite them.
    uvicorn.run(
        application, host=host, port=port, proxy_headers=False, access_log=False, log_config=None,
        log_level=settings.log_level.lower(),
    )
