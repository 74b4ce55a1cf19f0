"""The `livery` command: offline tools, the embedded runtime and the program entry points."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from livery.crds import write_crds
from livery.manifests import read_manifests

from . import commands, tenant_app

app = typer.Typer(
    name="livery",
    help="Livery: a control plane for white-label SaaS. One branded, isolated app instance per tenant.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DEFAULT_CRD_DIR = Path("crds")


@app.command()
def crds(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder to write the CRD files into.")
    ] = DEFAULT_CRD_DIR,
) -> None:
    """Write the Tenant and Plan CustomResourceDefinitions generated from the models."""
    for path in write_crds(output):
        typer.echo(f"wrote {path}")


@app.command()
def validate(
    files: Annotated[
        list[Path],
        typer.Option("--filename", "-f", help="Manifest file or folder; repeat for more. Folders are read recursively."),
    ],
) -> None:
    """Check Tenant and Plan manifests offline. Exit status 1 when any is invalid."""
    manifests = read_manifests(files)
    if not manifests:
        typer.echo(f"error: no manifests found in {', '.join(map(str, files))}", err=True)
        raise typer.Exit(1)

    invalid = [manifest for manifest in manifests if manifest.errors]
    for manifest in manifests:
        if manifest.errors:
            for message in manifest.messages():
                typer.echo(message, err=True)
        else:
            typer.echo(f"{manifest.label}: valid")

    error_count = sum(len(manifest.errors) for manifest in invalid)
    typer.echo(
        f"{len(manifests)} documents, {len(manifests) - len(invalid)} valid, "
        f"{len(invalid)} invalid with {error_count} errors",
        err=bool(invalid),
    )
    if invalid:
        raise typer.Exit(1)


# The embedded runtime and the kubectl-like commands that talk to it.
app.command()(commands.up)
app.command()(commands.apply)
app.command()(commands.get)
app.command()(commands.describe)
app.command()(commands.delete)
app.command()(commands.logs)
app.command("login-link")(commands.login_link)
app.command("gateway-config")(commands.gateway_config)
app.command("tenant-app")(tenant_app.tenant_app)


@app.command("operator")
def operator_command(
    kubeconfig: Annotated[
        Path | None,
        typer.Option("--kubeconfig", help="kubeconfig file; default: in-cluster credentials, then KUBECONFIG."),
    ] = None,
) -> None:
    """Run the Kubernetes operator: provision every Tenant and keep it as its spec says."""
    from livery.settings import SettingsError, load_settings
    from livery_operator.main import OperatorConfigError, run
    from livery_operator.settings import OperatorSettings

    try:
        settings = load_settings(OperatorSettings)
        run(settings, kubeconfig=str(kubeconfig) if kubeconfig else None)
    except (SettingsError, OperatorConfigError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None


@app.command("control-api")
def control_api_command(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port to listen on.")] = 8000,
) -> None:
    """Run the control API: signup, console, billing webhooks and the admin API (settings from LIVERY_*)."""
    import uvicorn

    from livery.settings import SettingsError, load_settings
    from livery_control_api.app import create_app
    from livery_control_api.logs import configure_logging
    from livery_control_api.settings import ControlApiSettings

    try:
        settings = load_settings(ControlApiSettings)
        application = create_app(settings)
    except (SettingsError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level)
    uvicorn.run(application, host=host, port=port, proxy_headers=False, log_config=None)


def main() -> None:
    """Run the `livery` command line."""
    app()
