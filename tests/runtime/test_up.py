"""`livery up` end to end: the runtime as a subprocess, driven through the `livery` command and the gateway.

The control database is a scratch database on the test server. The tenant
databases are made on the same server, so the example tenants' names
(`tenant_acme`, `livery_shared`, ...) are shared with other test folders that
use that server. The module drops what its tenants made before and after it runs.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from livery.database.provisioner import DatabaseProvisioner
from livery.naming import SCHEMA_DATABASE, SHARED_DATABASE

from .runtime_process import REPO_ROOT, RuntimeProcess, database_url, phase_of, status_of, tenant_page, wait_for

EXAMPLES = REPO_ROOT / "examples" / "tenants"
BRANDS = {
    "acme": ("Acme Shop", "#d9480f"),
    "globex": ("Globex Portal", "#2b8a3e"),
    "initech": ("Initech TPS", "#5f3dc4"),
}
# Every tenant the module makes, with its isolation mode; "umbrella" signs up through the control API.
MODES = {"acme": "shared", "globex": "schema", "initech": "database", "umbrella": "shared"}
READY_TIMEOUT_SECONDS = 90.0
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.slow


def create_database(server_url: str) -> str:
    name = f"livery_up_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def drop_tenant_data(server_url: str) -> None:
    """Drop what the example tenants left on the shared test server, whatever their deletion policy kept."""
    provisioner = DatabaseProvisioner(server_url)

    async def drop_all() -> None:
        for name, mode in MODES.items():
            await provisioner.drop_database(name, mode)

    asyncio.run(drop_all())


@pytest.fixture(scope="module")
def control_database(postgres_url: str) -> Iterator[str]:
    drop_tenant_data(postgres_url)
    name = create_database(postgres_url)
    yield database_url(postgres_url, name)
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    drop_tenant_data(postgres_url)


@pytest.fixture(scope="module")
def runtime(control_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    runtime = RuntimeProcess(tmp_path_factory.mktemp("up") / "data", control_database).start()
    yield runtime
    runtime.stop()


@pytest.fixture(scope="module")
def examples_applied(runtime: RuntimeProcess) -> RuntimeProcess:
    result = runtime.cli("apply", "-f", str(EXAMPLES), check=True)
    assert "tenant.livery.dev/acme created" in result.stdout
    for name in BRANDS:
        wait_for(lambda: phase_of(runtime, name) == "Ready", READY_TIMEOUT_SECONDS, message=f"{name} Ready")
    return runtime


def database_names(server_url: str) -> set[str]:
    with psycopg.connect(server_url) as connection:
        return {row[0] for row in connection.execute("SELECT datname FROM pg_database")}


def schema_names(server_url: str, database: str) -> set[str]:
    with psycopg.connect(database_url(server_url, database)) as connection:
        return {row[0] for row in connection.execute("SELECT nspname FROM pg_namespace")}


def role_names(server_url: str) -> set[str]:
    with psycopg.connect(server_url) as connection:
        return {row[0] for row in connection.execute("SELECT rolname FROM pg_roles")}


@pytest.mark.parametrize("name", sorted(BRANDS))
def test_each_example_tenant_served_with_its_brand(examples_applied: RuntimeProcess, name: str) -> None:
    product, colour = BRANDS[name]

    page = wait_for(lambda: tenant_page(examples_applied, f"{name}.localhost"), message=f"200 from {name}")
    theme = examples_applied.gateway_get(f"{name}.localhost", "/theme.css")

    assert product in page.text
    assert theme.status_code == 200
    assert colour in theme.text
    for other, (other_product, _) in BRANDS.items():
        if other != name:
            assert other_product not in page.text


def test_custom_domain_served_by_its_tenant(examples_applied: RuntimeProcess) -> None:
    response = wait_for(lambda: tenant_page(examples_applied, "portal.globex.example.com"), message="custom domain")

    assert "Globex Portal" in response.text


@pytest.mark.browser
def test_browser_shows_each_tenant_its_own_brand(examples_applied: RuntimeProcess) -> None:
    from playwright.sync_api import sync_playwright

    for name in ("acme", "initech"):
        wait_for(lambda: tenant_page(examples_applied, f"{name}.localhost"), message=f"200 from {name}")
    seen: dict[str, tuple[str, str]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            pages = {name: browser.new_context().new_page() for name in ("acme", "initech")}
            for name, page in pages.items():
                response = page.goto(f"http://{name}.localhost:{examples_applied.gateway_port}/")
                assert response is not None
                assert response.status == 200
            for name, page in pages.items():
                product = page.locator(".product-name").first.inner_text()
                colour = page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--primary')")
                seen[name] = (product.strip(), colour.strip().lower())
        finally:
            browser.close()

    assert seen["acme"] == BRANDS["acme"]
    assert seen["initech"] == BRANDS["initech"]


def test_each_database_exists_in_its_isolation_mode(examples_applied: RuntimeProcess, postgres_url: str) -> None:
    databases = database_names(postgres_url)

    assert "tenant_initech" in databases
    assert SCHEMA_DATABASE in databases
    assert "tenant_globex" in schema_names(postgres_url, SCHEMA_DATABASE)
    assert SHARED_DATABASE in databases
    assert "tenant_acme" in role_names(postgres_url)
    assert "tenant_acme" not in databases
    assert status_of(examples_applied, "acme")["isolation"] == "shared"


def test_status_reports_url_on_gateway_port(examples_applied: RuntimeProcess) -> None:
    status = status_of(examples_applied, "acme")
    globex = status_of(examples_applied, "globex")

    assert status["url"] == f"http://acme.localhost:{examples_applied.gateway_port}/"
    assert status["hosts"] == ["acme.localhost"]
    assert "portal.globex.example.com" in globex["hosts"]


def test_get_tenants_lists_phases(examples_applied: RuntimeProcess) -> None:
    result = examples_applied.cli("get", "tenants")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "PLAN", "PHASE", "OWNER", "URL"]
    assert any(line.split()[:4] == ["acme", "free", "Ready", "owner@acme.example.com"] for line in lines)


def test_get_plans_as_json(examples_applied: RuntimeProcess) -> None:
    import json

    result = examples_applied.cli("get", "plans", "-o", "json")

    assert result.returncode == 0, result.stderr
    names = [item["metadata"]["name"] for item in json.loads(result.stdout)["items"]]
    assert names == ["enterprise", "free", "pro"]


def test_get_tenants_as_yaml(examples_applied: RuntimeProcess) -> None:
    import yaml

    result = examples_applied.cli("get", "tenants", "-o", "yaml")

    assert result.returncode == 0, result.stderr
    tenants = {item["metadata"]["name"]: item for item in yaml.safe_load(result.stdout)["items"]}
    assert tenants["globex"]["spec"]["branding"]["productName"] == "Globex Portal"
    assert tenants["globex"]["status"]["phase"] == "Ready"


def test_describe_shows_conditions_and_events(examples_applied: RuntimeProcess) -> None:
    result = examples_applied.cli("describe", "tenant", "initech")

    assert result.returncode == 0, result.stderr
    assert "Phase:            Ready" in result.stdout
    for condition in ("Ready", "DatabaseReady", "AppReady", "RoutingReady"):
        assert f"  {condition} " in result.stdout
    assert "Events:" in result.stdout


def test_login_link_signs_owner_in(examples_applied: RuntimeProcess) -> None:
    from urllib.parse import urlsplit

    result = examples_applied.cli("login-link", "initech")
    assert result.returncode == 0, result.stderr
    link = urlsplit(result.stdout.strip())

    response = examples_applied.gateway_get(link.hostname or "", f"{link.path}?{link.query}")

    assert link.hostname == "initech.localhost"
    assert response.status_code in (302, 303)
    assert response.headers["location"] == "/"


def test_apply_again_reports_unchanged(examples_applied: RuntimeProcess) -> None:
    result = examples_applied.cli("apply", "-f", str(EXAMPLES / "initech.yaml"))

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "tenant.livery.dev/initech unchanged"


def test_invalid_manifest_rejected_like_validate(examples_applied: RuntimeProcess, tmp_path: Path) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        (EXAMPLES / "acme.yaml").read_text().replace("Acme Shop", "Acme Changed").replace("#d9480f", "#d9480")
        + "---\n"
        + (EXAMPLES / "initech.yaml").read_text().replace("name: initech", "name: 9lives")
    )
    validate = examples_applied.cli("validate", "-f", str(manifest), data_dir=False)

    result = examples_applied.cli("apply", "-f", str(manifest))

    assert result.returncode == 1
    error_lines = [line for line in validate.stderr.splitlines() if ": document " in line]
    assert len(error_lines) == 2
    assert [line for line in result.stderr.splitlines() if ": document " in line] == error_lines
    page = examples_applied.gateway_get("acme.localhost")
    assert "Acme Shop" in page.text
    assert examples_applied.admin("GET", "/v1/admin/tenants/9lives").status_code in (404, 422)


def test_signed_up_tenant_is_served(examples_applied: RuntimeProcess) -> None:
    import httpx

    body = {
        "tenant": "umbrella",
        "displayName": "Umbrella Corporation",
        "email": "owner@umbrella.example.com",
        "password": "correct horse battery staple",
        "plan": "free",
    }
    response = httpx.post(examples_applied.api_url + "/v1/signup", json=body, timeout=30)
    page = wait_for(lambda: tenant_page(examples_applied, "umbrella.localhost"), READY_TIMEOUT_SECONDS, message="signup")

    assert response.status_code == 201, response.text
    assert "Umbrella Corporation" in page.text


def test_logs_print_app_output(examples_applied: RuntimeProcess) -> None:
    result = examples_applied.cli("logs", "tenant", "acme")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() != ""


def test_gateway_config_writes_nginx_server_blocks(examples_applied: RuntimeProcess) -> None:
    result = examples_applied.cli("gateway-config", "--nginx")

    assert result.returncode == 0, result.stderr
    assert "server_name tps.initech.example.com" in result.stdout or "tps.initech.example.com" in result.stdout
    assert "initech.localhost" in result.stdout
    assert "proxy_pass http://127.0.0.1:" in result.stdout


def test_second_up_on_same_folder_exits(examples_applied: RuntimeProcess) -> None:
    second = RuntimeProcess(examples_applied.data_dir, None)

    result = second.run_up_once()

    assert result.returncode == 1
    assert "already running" in result.stderr
    assert str(examples_applied.data_dir) in result.stderr


def test_admin_token_readable_by_owner_only(examples_applied: RuntimeProcess) -> None:
    for name in ("admin-token", "jwt-secret"):
        mode = (examples_applied.data_dir / name).stat().st_mode & 0o777

        assert mode == 0o600, f"{name} has mode {mode:o}"


def test_unknown_host_gets_404(examples_applied: RuntimeProcess) -> None:
    response = examples_applied.gateway_get("nobody.localhost")

    assert response.status_code == 404


def test_forwarded_host_from_client_is_ignored(examples_applied: RuntimeProcess) -> None:
    response = examples_applied.gateway_get("app.internal", headers={"X-Forwarded-Host": "globex.localhost"})

    assert response.status_code == 404


def test_suspend_serves_branded_page_then_resume_serves_app(examples_applied: RuntimeProcess) -> None:
    suspended = examples_applied.admin("POST", "/v1/admin/tenants/globex/suspend")
    assert suspended.status_code == 200, suspended.text

    page = wait_for(
        lambda: (lambda r: r if r.status_code == 503 and "suspended" in r.text else None)(
            examples_applied.gateway_get("globex.localhost")
        ),
        message="suspension page",
    )
    wait_for(lambda: not examples_applied.tenant_app_processes().get("globex"), message="globex app stopped")
    phase = wait_for(lambda: phase_of(examples_applied, "globex") == "Suspended", message="Suspended phase")
    resumed = examples_applied.admin("POST", "/v1/admin/tenants/globex/resume")
    served = wait_for(lambda: tenant_page(examples_applied, "globex.localhost"), READY_TIMEOUT_SECONDS, message="resumed")

    assert "Globex Portal" in page.text
    assert "#2b8a3e" in page.text
    assert phase
    assert resumed.status_code == 200, resumed.text
    assert "Globex Portal" in served.text


def test_change_plan_updates_limits(examples_applied: RuntimeProcess) -> None:
    response = examples_applied.admin("POST", "/v1/admin/tenants/acme/plan", {"plan": "pro"})
    assert response.status_code == 200, response.text

    limits = wait_for(
        lambda: (status_of(examples_applied, "acme").get("limits") or {}).get("users") == 25 or None,
        message="pro plan limits",
    )

    assert limits
    assert status_of(examples_applied, "acme")["isolation"] == "shared"


def test_delete_policy_delete_drops_data(examples_applied: RuntimeProcess, postgres_url: str) -> None:
    result = examples_applied.cli("delete", "tenant", "acme")

    assert result.returncode == 0, result.stderr
    assert "tenant_acme" not in role_names(postgres_url)
    assert examples_applied.gateway_get("acme.localhost").status_code == 404
    assert not examples_applied.tenant_app_processes().get("acme")


def test_delete_policy_retain_keeps_database(examples_applied: RuntimeProcess, postgres_url: str) -> None:
    result = examples_applied.cli("delete", "tenant", "initech")

    assert result.returncode == 0, result.stderr
    assert "tenant_initech" in database_names(postgres_url)
    assert examples_applied.gateway_get("tps.initech.example.com").status_code == 404


def test_delete_policy_snapshot_saves_dump(examples_applied: RuntimeProcess, postgres_url: str) -> None:
    result = examples_applied.cli("delete", "tenant", "globex")

    assert result.returncode == 0, result.stderr
    assert "tenant_globex" not in schema_names(postgres_url, SCHEMA_DATABASE)
    dumps = list((examples_applied.data_dir / "files").rglob("*globex*"))
    assert dumps, "no snapshot file under the data folder"
