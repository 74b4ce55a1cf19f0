"""The `livery` commands of the embedded runtime: up, apply, get, describe, delete, logs, login-link.

`cli.py` registers these functions on the Typer app. Except `up`, `logs` and
`gateway-config`, which read the data folder, they work like `kubectl` on a
cluster: they send the same manifests to a running `livery up` through the
control API's admin endpoints.
"""

from __future__ import annotations

import json
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from livery.drivers.local import ROUTES_FILE_NAME, log_path
from livery.manifests import Manifest, read_manifests

from .client import AdminClient, ClientError
from .up import DEFAULT_API_PORT, DEFAULT_DATA_DIR, DEFAULT_GATEWAY_PORT, UpOptions

DELETE_WAIT_SECONDS = 120.0
DELETE_POLL_SECONDS = 0.5

DataDir = Annotated[
    Path, typer.Option("--data-dir", envvar="LIVERY_DATA_DIR", help="Data folder of the embedded runtime.")
]


class Output(str, Enum):
    table = "table"
    yaml = "yaml"
    json = "json"


class Resource(str, Enum):
    tenants = "tenants"
    plans = "plans"


class TenantKind(str, Enum):
    tenant = "tenant"


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def connect(data_dir: Path) -> AdminClient:
    try:
        return AdminClient.for_data_dir(data_dir)
    except ClientError as exc:
        raise fail(str(exc)) from None


def up(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    api_port: Annotated[int, typer.Option(help="TCP port of the control API on 127.0.0.1.")] = DEFAULT_API_PORT,
    gateway_port: Annotated[int, typer.Option(help="TCP port of the gateway on 127.0.0.1.")] = DEFAULT_GATEWAY_PORT,
    resync_seconds: Annotated[
        float, typer.Option(help="Seconds between two full re-checks of every tenant.", min=1.0)
    ] = 30.0,
) -> None:
    """Run the whole platform on this machine until Ctrl-C: PostgreSQL, control API, gateway and tenant apps."""
    from .up import up as run_up

    options = UpOptions(data_dir=data_dir, api_port=api_port, gateway_port=gateway_port, resync_seconds=resync_seconds)
    raise typer.Exit(run_up(options))


def print_invalid(manifests: list[Manifest]) -> None:
    """Print every error line of the invalid manifests and a summary, as `livery validate` does."""
    invalid = [manifest for manifest in manifests if manifest.errors]
    for manifest in invalid:
        for message in manifest.messages():
            typer.echo(message, err=True)
    error_count = sum(len(manifest.errors) for manifest in invalid)
    typer.echo(
        f"{len(manifests)} documents, {len(manifests) - len(invalid)} valid, "
        f"{len(invalid)} invalid with {error_count} errors",
        err=True,
    )


def apply(
    files: Annotated[
        list[Path],
        typer.Option("--filename", "-f", help="Manifest file or folder; repeat for more. Folders are read recursively."),
    ],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Create or update Tenants and Plans from manifests. Nothing is sent when any manifest is invalid."""
    manifests = read_manifests(files)
    if not manifests:
        raise fail(f"no manifests found in {', '.join(map(str, files))}")
    if any(manifest.errors for manifest in manifests):
        print_invalid(manifests)
        raise typer.Exit(1)

    # Plans first, so the tenants that name them resolve on their first reconcile.
    ordered = sorted(manifests, key=lambda manifest: 0 if manifest.data.get("kind") == "Plan" else 1)
    client = connect(data_dir)
    failed = False
    for manifest in ordered:
        kind = manifest.data["kind"]
        name = manifest.data["metadata"]["name"]
        try:
            result = client.request("POST", "/v1/admin/apply", manifest.data)
        except ClientError as exc:
            failed = True
            for line in exc.errors or str(exc).splitlines():
                typer.echo(f"{manifest.label}: {line}", err=True)
            continue
        action = result.get("action", "applied") if isinstance(result, dict) else "applied"
        typer.echo(f"{kind.lower()}.livery.dev/{name} {action}")
    client.close()
    if failed:
        raise typer.Exit(1)


def items(body: Any) -> list[dict[str, Any]]:
    """Return the resources of a list response, which is a JSON list or `{"items": [...]}`."""
    if isinstance(body, dict):
        for key in ("items", "tenants", "plans"):
            if isinstance(body.get(key), list):
                return body[key]
        return []
    return list(body or [])


def as_manifest(view: dict[str, Any]) -> dict[str, Any]:
    """Return a Tenant manifest from the admin API's tenant view (name, plan, phase, spec, status)."""
    if "metadata" in view:
        return view
    spec = view.get("spec") or {
        key: view[key] for key in ("displayName", "plan", "suspended") if view.get(key) is not None
    }
    if view.get("owner") and "owner" not in spec:
        spec["owner"] = {"email": view["owner"]}
    status = view.get("status") or {key: view[key] for key in ("phase", "url") if view.get(key) is not None}
    manifest: dict[str, Any] = {
        "apiVersion": "livery.dev/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": view.get("name", "")},
        "spec": spec,
    }
    if status:
        manifest["status"] = status
    return manifest


def render(resources: list[dict[str, Any]], output: Output) -> str:
    document: Any = {"apiVersion": "v1", "kind": "List", "items": resources}
    if output is Output.json:
        return json.dumps(document, indent=2)
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True).rstrip()


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join("   ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def tenant_row(tenant: dict[str, Any]) -> list[str]:
    spec = tenant.get("spec") or {}
    status = tenant.get("status") or {}
    return [
        tenant.get("metadata", {}).get("name", ""),
        str(spec.get("plan", "")),
        str(status.get("phase") or "Pending"),
        str((spec.get("owner") or {}).get("email") or ""),
        str(status.get("url") or ""),
    ]


def plan_row(plan: dict[str, Any]) -> list[str]:
    spec = plan.get("spec") or {}
    limits = spec.get("limits") or {}
    cents = (spec.get("billing") or {}).get("monthlyPriceCents", 0)
    return [
        plan.get("metadata", {}).get("name", ""),
        str(spec.get("displayName", "")),
        str(spec.get("isolation", "")),
        str(limits.get("users", "")),
        f"{cents / 100:.2f}",
    ]


def get(
    resource: Annotated[Resource, typer.Argument(help="tenants or plans.")],
    output: Annotated[Output, typer.Option("--output", "-o", help="table, yaml or json.")] = Output.table,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """List Tenants or Plans of the running runtime."""
    client = connect(data_dir)
    try:
        resources = items(client.request("GET", f"/v1/admin/{resource.value}"))
        if resource is Resource.tenants and output is not Output.table:
            # The list contains a summary of each tenant, so whole manifests are read one by one.
            resources = [client.request("GET", f"/v1/admin/tenants/{view['name']}") for view in resources]
        if resource is Resource.tenants:
            resources = [as_manifest(view) for view in resources]
    except ClientError as exc:
        raise fail(str(exc)) from None
    finally:
        client.close()
    if output is not Output.table:
        typer.echo(render(resources, output))
        return
    if resource is Resource.tenants:
        rows = [["NAME", "PLAN", "PHASE", "OWNER", "URL"]] + [tenant_row(tenant) for tenant in resources]
    else:
        rows = [["NAME", "DISPLAY NAME", "ISOLATION", "USERS", "PRICE/MONTH"]] + [plan_row(plan) for plan in resources]
    if len(rows) == 1:
        typer.echo(f"No {resource.value} found.")
        return
    typer.echo(table(rows))


def describe(
    kind: Annotated[TenantKind, typer.Argument(help="tenant")],
    name: Annotated[str, typer.Argument(help="Tenant name.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Show a Tenant's spec, status conditions and events."""
    client = connect(data_dir)
    try:
        tenant = client.request("GET", f"/v1/admin/tenants/{name}")
        events = items(client.request("GET", f"/v1/admin/tenants/{name}/events"))
    except ClientError as exc:
        raise fail(str(exc)) from None
    finally:
        client.close()
    typer.echo(describe_text(as_manifest(tenant), events))


def describe_text(tenant: dict[str, Any], events: list[dict[str, Any]]) -> str:
    metadata = tenant.get("metadata") or {}
    spec = tenant.get("spec") or {}
    status = tenant.get("status") or {}
    lines = [
        f"Name:             {metadata.get('name', '')}",
        f"Display name:     {spec.get('displayName', '')}",
        f"Plan:             {spec.get('plan', '')}",
        f"Isolation:        {status.get('isolation') or spec.get('isolation') or '(plan default)'}",
        f"Suspended:        {str(spec.get('suspended', False)).lower()}",
        f"Deletion policy:  {spec.get('deletionPolicy', 'Retain')}",
        f"Phase:            {status.get('phase') or 'Pending'}",
        f"URL:              {status.get('url') or ''}",
        f"Hosts:            {', '.join(status.get('hosts') or [])}",
        f"Observed gen.:    {status.get('observedGeneration', '-')}",
    ]
    if metadata.get("deletionTimestamp"):
        lines.append(f"Deleting since:   {metadata['deletionTimestamp']}")
    conditions = status.get("conditions") or []
    lines.append("Conditions:")
    if conditions:
        rows = [["  TYPE", "STATUS", "REASON", "MESSAGE"]]
        rows += [[f"  {c.get('type', '')}", c.get("status", ""), c.get("reason", ""), c.get("message", "")] for c in conditions]
        lines.append(table(rows))
    else:
        lines.append("  <none>")
    lines.append("Events:")
    if events:
        rows = [["  TYPE", "REASON", "COUNT", "LAST SEEN", "MESSAGE"]]
        rows += [
            [f"  {e.get('type', '')}", e.get("reason", ""), str(e.get("count", 1)), e.get("timestamp", ""), e.get("message", "")]
            for e in events
        ]
        lines.append(table(rows))
    else:
        lines.append("  <none>")
    return "\n".join(lines)


def delete(
    kind: Annotated[TenantKind, typer.Argument(help="tenant")],
    name: Annotated[str, typer.Argument(help="Tenant name.")],
    wait: Annotated[bool, typer.Option(help="Wait until the tenant is gone, as kubectl does.")] = True,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Delete a Tenant. spec.deletionPolicy decides whether its database is kept, dropped or snapshotted."""
    client = connect(data_dir)
    try:
        client.request("DELETE", f"/v1/admin/tenants/{name}")
        typer.echo(f"tenant.livery.dev/{name} deleted")
        if wait:
            wait_until_gone(client, name)
    except ClientError as exc:
        raise fail(str(exc)) from None
    finally:
        client.close()


def wait_until_gone(client: AdminClient, name: str) -> None:
    deadline = time.monotonic() + DELETE_WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            client.request("GET", f"/v1/admin/tenants/{name}")
        except ClientError as exc:
            if exc.status == 404:
                return
            raise
        time.sleep(DELETE_POLL_SECONDS)
    raise ClientError(
        f"tenant {name} is still being deleted after {DELETE_WAIT_SECONDS:g} s; see `livery describe tenant {name}`"
    )


def logs(
    kind: Annotated[TenantKind, typer.Argument(help="tenant")],
    name: Annotated[str, typer.Argument(help="Tenant name.")],
    tail: Annotated[int, typer.Option(help="Show only the last N lines; -1 shows all.")] = -1,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Print a tenant app's output, from its log file in the data folder."""
    path = log_path(data_dir, name)
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise fail(f"no log for tenant {name} in {data_dir}; check the name with `livery get tenants`") from None
    with handle:
        lines = handle.read().splitlines(keepends=True)
        if tail >= 0:
            lines = lines[len(lines) - tail :]
        for line in lines:
            sys.stdout.buffer.write(line)
        sys.stdout.flush()
        while follow:
            chunk = handle.read()
            if chunk:
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
            else:
                time.sleep(0.25)


def login_link(
    name: Annotated[str, typer.Argument(help="Tenant name.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Print a one-time sign-in link for the tenant's owner, valid for 5 minutes."""
    client = connect(data_dir)
    try:
        body = client.request("POST", f"/v1/admin/tenants/{name}/login-link")
    except ClientError as exc:
        raise fail(str(exc)) from None
    finally:
        client.close()
    link = body.get("url") or body.get("link") if isinstance(body, dict) else None
    typer.echo(link or json.dumps(body))


def gateway_config(
    nginx: Annotated[bool, typer.Option("--nginx", help="Write an nginx configuration (the only format so far).")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write; standard output when unset.")] = None,
    listen: Annotated[str, typer.Option(help="nginx listen address and port.")] = "80",
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Write the gateway's routing table as configuration for a front proxy."""
    from .gateway import nginx_config

    if not nginx:
        raise fail("choose a format: --nginx")
    try:
        snapshot = json.loads((data_dir / ROUTES_FILE_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise fail(f"no routing table in {data_dir}; start `livery up` with this --data-dir first") from None
    text = nginx_config(snapshot, listen=listen)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}")
