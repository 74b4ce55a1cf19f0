"""Benchmark the tenant app: JSON product list and storefront per isolation mode, RLS cost, cold start.

    python -m benchmarks tenant_app

It provisions one measured tenant per isolation mode with the real
provisioner on the embedded PostgreSQL (or the server in
`LIVERY_BENCH_DATABASE_URL`), gives each 10,000 products, and fills the shared
tables with 100 tenants of 10,000 products each. Then, in one process:

1. the app of each mode serves `GET /api/v1/products` (20 a page, API key)
   and `GET /store` (24 a page), called in-process through httpx's ASGI
   transport, so the app runs on one core and the client adds no network
   hop. Modes alternate in rounds, and the figures are per-request medians
   and 99th percentiles;
2. in shared mode, the list query runs as the tenant's role under row-level
   security and as a role that bypasses it with `WHERE tenant_id = ...` in
   the query, alternating in rounds, each in its own transaction that sets
   the tenant first;
3. in database mode, the first request of a freshly started app (start-up
   opens one pooled connection) is timed against the warm median.

It prints a Markdown section for docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from livery import naming
from livery.database import DatabaseProvisioner

PRODUCTS_PER_TENANT = 10_000
SHARED_TENANTS = 100
MODES = ("database", "schema", "shared")
ROUNDS = 5
REQUESTS_PER_ROUND = 300
SQL_ITERATIONS_PER_ROUND = 1_000
COLD_STARTS = 5
LOGIN_KEY = "benchmark-login-key-0123456789abcdef"
SESSION_KEY = "benchmark-session-key-0123456789abcdef"
ENDPOINT_PATHS = {"JSON list": "/api/v1/products?perPage=20", "storefront": "/store"}
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')

SEED_PRODUCTS_SQL = """
INSERT INTO products (tenant_id, name, description, price, currency, created_at)
SELECT %(tenant)s, 'Product ' || n, 'Description of product ' || n || ' with some searchable words: '
       || (ARRAY['anvil', 'rope', 'rocket', 'magnet', 'spring'])[1 + n %% 5],
       (n %% 1000) + 0.99, 'EUR', now() - n * interval '1 second'
FROM generate_series(1, %(count)s) AS n
"""
LIST_QUERY = (
    "SELECT id, name, description, price, currency, image_key, created_at, updated_at FROM products "
    "{where} ORDER BY created_at DESC, id DESC LIMIT 21"
)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def server_url(work_dir: Path) -> tuple[str, Any]:
    configured = os.environ.get("LIVERY_BENCH_DATABASE_URL")
    if configured:
        return configured, None
    import pgserver

    server = pgserver.get_server(work_dir / "pgdata", cleanup_mode="stop")
    return server.get_uri(), server


def url_for_database(admin_url: str, database: str) -> str:
    return make_url(admin_url).set(database=database).render_as_string(hide_password=False)


def seed(admin_url: str, info: Any, extra_shared_tenants: int) -> None:
    """Insert the products as the superuser, who bypasses row-level security."""
    with psycopg.connect(url_for_database(admin_url, info.database), autocommit=True) as connection:
        if info.schema:
            connection.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(info.schema)))
        connection.execute(SEED_PRODUCTS_SQL, {"tenant": info.tenant, "count": PRODUCTS_PER_TENANT})
        for index in range(extra_shared_tenants):
            connection.execute(SEED_PRODUCTS_SQL, {"tenant": f"neighbour-{index:03d}", "count": PRODUCTS_PER_TENANT})
        connection.execute("ANALYZE products")


def config_document(tenant: str, isolation: str) -> dict[str, Any]:
    host = f"{tenant}.localhost"
    return {
        "tenant": tenant, "displayName": tenant, "plan": "bench", "isolation": isolation,
        "limits": {"users": 100, "storageMiB": 100, "apiRequestsPerMinute": 1_000_000},
        "hosts": [host], "url": f"http://{host}", "owner": {"email": f"owner@{tenant}.example"},
    }


def make_app(info: Any, work_dir: Path):
    from livery_tenant_app.app import create_app
    from livery_tenant_app.settings import TenantAppSettings

    config_path = work_dir / f"{info.tenant}.json"
    config_path.write_text(json.dumps(config_document(info.tenant, info.isolation)))
    settings = TenantAppSettings(
        tenant=info.tenant, tenant_config=config_path, database_url=info.app_url, isolation=info.isolation,
        db_schema=info.schema, session_key=SESSION_KEY, login_key=LOGIN_KEY, log_level="WARNING",
    )
    # The list and storefront never touch file storage, so none is opened.
    return create_app(settings, storage=object())


class MeasuredApp:
    def __init__(self, app: Any, tenant: str) -> None:
        self.app = app
        self.tenant = tenant
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{tenant}.localhost")
        self.api_key = ""
        self.cpu_seconds: dict[str, float] = {}

    async def start(self) -> None:
        self.lifespan = self.app.router.lifespan_context(self.app)
        await self.lifespan.__aenter__()
        now = int(time.time())
        token = jwt.encode({"sub": f"owner@{self.tenant}.example", "tenant": self.tenant, "aud": "livery-login",
                            "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}, LOGIN_KEY, algorithm="HS256")
        assert (await self.client.get("/auth/link", params={"token": token})).status_code == 303
        csrf = CSRF_INPUT.search((await self.client.get("/products")).text).group(1)
        response = await self.client.post("/api/v1/api-keys", json={"name": "bench"}, headers={"X-CSRF-Token": csrf})
        self.api_key = response.json()["key"]
        self.client.cookies.clear()

    async def stop(self) -> None:
        await self.client.aclose()
        await self.lifespan.__aexit__(None, None, None)

    async def timed_requests(self, path: str, count: int, with_key: bool) -> list[float]:
        """Send `count` requests one after another and return each one's wall-clock latency.

        The process's CPU time for them is added to `self.cpu_seconds[path]`.
        """
        headers = {"Authorization": f"Bearer {self.api_key}"} if with_key else {}
        latencies = []
        cpu_started = time.process_time()
        for _ in range(count):
            started = time.perf_counter()
            response = await self.client.get(path, headers=headers)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"{path} returned {response.status_code}: {response.text[:200]}")
        self.cpu_seconds[path] = self.cpu_seconds.get(path, 0.0) + time.process_time() - cpu_started
        return latencies


async def measure_endpoints(apps: dict[str, MeasuredApp]) -> dict[tuple[str, str], list[float]]:
    results: dict[tuple[str, str], list[float]] = {}
    targets = [(label, path, label == "JSON list") for label, path in ENDPOINT_PATHS.items()]
    for app in apps.values():
        for _, path, with_key in targets:
            await app.timed_requests(path, 50, with_key)
        app.cpu_seconds.clear()
    for _ in range(ROUNDS):
        for mode, app in apps.items():
            for label, path, with_key in targets:
                results.setdefault((mode, label), []).extend(await app.timed_requests(path, REQUESTS_PER_ROUND, with_key))
    return results


async def measure_rls(admin_url: str, info: Any) -> dict[str, list[float]]:
    tenant_engine = create_async_engine(make_url(info.app_url).set(drivername="postgresql+psycopg"), pool_size=1)
    bypass_engine = create_async_engine(
        make_url(url_for_database(admin_url, info.database)).set(drivername="postgresql+psycopg"), pool_size=1
    )
    set_tenant = text("SELECT set_config('livery.tenant', :tenant, true)")
    variants = {
        "RLS (tenant role)": (tenant_engine, text(LIST_QUERY.format(where=""))),
        "filtered in application code": (bypass_engine, text(LIST_QUERY.format(where="WHERE tenant_id = :tenant"))),
    }
    results: dict[str, list[float]] = {name: [] for name in variants}

    async def run(engine, query, iterations: int) -> list[float]:
        latencies = []
        async with engine.connect() as connection:
            for _ in range(iterations):
                started = time.perf_counter()
                async with connection.begin():
                    await connection.execute(set_tenant, {"tenant": info.tenant})
                    rows = (await connection.execute(query, {"tenant": info.tenant})).all()
                latencies.append(time.perf_counter() - started)
                assert len(rows) == 21
        return latencies

    for engine, query in variants.values():
        await run(engine, query, 100)
    for _ in range(ROUNDS):
        for name, (engine, query) in variants.items():
            results[name].extend(await run(engine, query, SQL_ITERATIONS_PER_ROUND))
    await tenant_engine.dispose()
    await bypass_engine.dispose()
    return results


async def measure_cold_start(info: Any, work_dir: Path, warm_app: MeasuredApp) -> tuple[list[float], float]:
    firsts = []
    for _ in range(COLD_STARTS):
        app = make_app(info, work_dir)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{info.tenant}.localhost")
        started = time.perf_counter()
        response = await client.get("/api/v1/products?perPage=20", headers={"Authorization": f"Bearer {warm_app.api_key}"})
        firsts.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
        await client.aclose()
        await lifespan.__aexit__(None, None, None)
    warm = await warm_app.timed_requests("/api/v1/products?perPage=20", 200, True)
    return firsts, statistics.median(warm)


def milliseconds(value: float) -> str:
    return f"{value * 1000:.2f}"


async def run_benchmark(admin_url: str, work_dir: Path) -> str:
    provisioner = DatabaseProvisioner(admin_url)
    suffix = uuid.uuid4().hex[:6]
    infos = {}
    for mode in MODES:
        infos[mode] = await provisioner.ensure_database(f"bench-{mode}-{suffix}", mode, f"pw-{uuid.uuid4().hex}")
        seed(admin_url, infos[mode], SHARED_TENANTS - 1 if mode == "shared" else 0)

    apps = {mode: MeasuredApp(make_app(infos[mode], work_dir), infos[mode].tenant) for mode in MODES}
    try:
        for app in apps.values():
            await app.start()
        endpoint_results = await measure_endpoints(apps)
        cpu = {(mode, label): apps[mode].cpu_seconds[path] for mode in MODES for label, path in ENDPOINT_PATHS.items()}
        rls_results = await measure_rls(admin_url, infos["shared"])
        cold, warm_median = await measure_cold_start(infos["database"], work_dir, apps["database"])
    finally:
        for app in apps.values():
            await app.stop()
        for mode, info in infos.items():
            await provisioner.drop_database(info.tenant, mode)
    if any(mode == "shared" for mode in MODES):
        with psycopg.connect(url_for_database(admin_url, naming.SHARED_DATABASE), autocommit=True) as connection:
            connection.execute("DELETE FROM products WHERE tenant_id LIKE 'neighbour-%'")
    return report(endpoint_results, cpu, rls_results, cold, warm_median)


def report(endpoints, cpu, rls, cold, warm_median) -> str:
    lines = [
        "## Tenant app",
        "",
        "Command: `python -m benchmarks tenant_app` (`make bench` runs it with the others).",
        f"Each mode's tenant has {PRODUCTS_PER_TENANT:,} products; the shared tables hold {SHARED_TENANTS} tenants "
        f"of {PRODUCTS_PER_TENANT:,} products each. Requests are sequential, in-process through httpx's ASGI "
        f"transport (one event loop, so the app uses one core; PostgreSQL runs in its own processes), "
        f"{ROUNDS} rounds of {REQUESTS_PER_ROUND} requests per mode and endpoint, modes alternating. "
        "CPU ms is this process's CPU time per request (app and in-process client, not PostgreSQL), "
        "which a busy machine disturbs less than wall-clock latency.",
        "",
        "| endpoint | mode | requests/s | p50 ms | p99 ms | p50 vs shared | CPU ms per request | requests/s per core of CPU |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label in ("JSON list", "storefront"):
        shared_median = statistics.median(endpoints[("shared", label)])
        for mode in MODES:
            values = endpoints[(mode, label)]
            median = statistics.median(values)
            cpu_per_request = cpu[(mode, label)] / len(values)
            lines.append(
                f"| {label} | {mode} | {len(values) / sum(values):.0f} | {milliseconds(median)} | "
                f"{milliseconds(percentile(values, 0.99))} | {median / shared_median:.2f} | "
                f"{milliseconds(cpu_per_request)} | {1 / cpu_per_request:.0f} |"
            )
    lines += [
        "",
        f"List query alone in shared mode ({ROUNDS} rounds of {SQL_ITERATIONS_PER_ROUND} transactions, each setting "
        "the tenant and then selecting one page of 21 rows):",
        "",
        "| variant | p50 ms | p99 ms | p50 vs application filter |",
        "| --- | --- | --- | --- |",
    ]
    baseline = statistics.median(rls["filtered in application code"])
    for name, values in rls.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {milliseconds(median)} | {milliseconds(percentile(values, 0.99))} | {median / baseline:.2f} |")
    lines += [
        "",
        f"Database mode, first request of a freshly started app ({COLD_STARTS} starts): median "
        f"{milliseconds(statistics.median(cold))} ms against a warm median of {milliseconds(warm_median)} ms "
        f"({milliseconds(statistics.median(cold) - warm_median)} ms slower).",
    ]
    return "\n".join(lines)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="livery-bench-tenant-app-") as folder:
        work_dir = Path(folder)
        admin_url, server = server_url(work_dir)
        try:
            print(asyncio.run(run_benchmark(admin_url, work_dir)), flush=True)
        finally:
            if server is not None:
                server.cleanup()


if __name__ == "__main__":
    main()
