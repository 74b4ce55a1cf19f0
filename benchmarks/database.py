"""Benchmark the database provisioner and the shared-mode row-level security policy.

    python -m benchmarks database

It reports, for each isolation mode:

- the median time of `ensure_database` for a new tenant, of a repeat call for
  a provisioned tenant (what every reconcile pays) and of `drop_database`,
  called one at a time;
- tenants per second when a batch of new tenants is provisioned concurrently.

Then it loads the shared tables with several tenants' products and times one
page of the product list as a tenant role under row-level security. It times
the same query filtered in application code by a superuser in alternating
rounds on the same server, as the baseline.

PostgreSQL is the server in `LIVERY_BENCH_DATABASE_URL`, or an embedded
pgserver in a temporary folder. It prints a Markdown section for
docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from livery.database import DatabaseInfo, DatabaseProvisioner

ISOLATIONS = ("shared", "schema", "database")
SEQUENTIAL_TENANTS = 10
CONCURRENT_TENANTS = 20
CONCURRENCY = 4
RLS_TENANTS = 20
RLS_PRODUCTS_PER_TENANT = 5000
RLS_ROUNDS = 5
RLS_QUERIES_PER_ROUND = 1000
PAGE_QUERY = "SELECT id, name, price FROM products {where} ORDER BY created_at DESC, id DESC LIMIT 20"


def milliseconds(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


async def time_call(call) -> float:
    started = time.perf_counter()
    await call
    return time.perf_counter() - started


async def measure_provisioning(provisioner: DatabaseProvisioner, isolation: str) -> dict[str, float]:
    names = [f"bench-{uuid.uuid4().hex[:10]}" for _ in range(SEQUENTIAL_TENANTS)]
    first = [await time_call(provisioner.ensure_database(name, isolation, "bench-password")) for name in names]
    repeat = [await time_call(provisioner.ensure_database(name, isolation, "bench-password")) for name in names]
    drop = [await time_call(provisioner.drop_database(name, isolation)) for name in names]

    batch = [f"batch-{uuid.uuid4().hex[:10]}" for _ in range(CONCURRENT_TENANTS)]
    slots = asyncio.Semaphore(CONCURRENCY)

    async def provision(name: str) -> None:
        async with slots:
            await provisioner.ensure_database(name, isolation, "bench-password")

    started = time.perf_counter()
    await asyncio.gather(*(provision(name) for name in batch))
    batch_seconds = time.perf_counter() - started
    for name in batch:
        await provisioner.drop_database(name, isolation)

    return {
        "first": milliseconds(first),
        "repeat": milliseconds(repeat),
        "drop": milliseconds(drop),
        "per_second": CONCURRENT_TENANTS / batch_seconds,
    }


async def provision_rls_tenants(provisioner: DatabaseProvisioner, admin_url: str) -> list[DatabaseInfo]:
    infos = [
        await provisioner.ensure_database(f"rls-{uuid.uuid4().hex[:10]}", "shared", "bench-password")
        for _ in range(RLS_TENANTS)
    ]
    with psycopg.connect(admin_url) as connection:
        for info in infos:
            connection.execute(
                "INSERT INTO products (tenant_id, name, description, price, currency) "
                "SELECT %s, 'Product ' || n, 'Description of product ' || n, n %% 100 + 0.99, 'EUR' "
                "FROM generate_series(1, %s) AS n",
                (info.tenant, RLS_PRODUCTS_PER_TENANT),
            )
        connection.commit()
        connection.execute("ANALYZE products")
    return infos


def time_pages(connection: psycopg.Connection, tenant: str, query: str, parameters: tuple) -> list[float]:
    timings = []
    for _ in range(RLS_QUERIES_PER_ROUND):
        started = time.perf_counter()
        with connection.transaction():
            connection.execute("SELECT set_config('livery.tenant', %s, true)", (tenant,))
            connection.execute(query, parameters).fetchall()
        timings.append(time.perf_counter() - started)
    return timings


def measure_rls(admin_url: str, info: DatabaseInfo) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {"rls": [], "application": []}
    with psycopg.connect(info.app_url) as tenant_connection, psycopg.connect(admin_url) as admin_connection:
        for _ in range(RLS_ROUNDS):
            timings["rls"] += time_pages(tenant_connection, info.tenant, PAGE_QUERY.format(where=""), ())
            timings["application"] += time_pages(
                admin_connection, info.tenant, PAGE_QUERY.format(where="WHERE tenant_id = %s"), (info.tenant,)
            )
    return timings


def server_url() -> tuple[str, object | None]:
    configured = os.environ.get("LIVERY_BENCH_DATABASE_URL")
    if configured:
        return configured, None
    import pgserver

    server = pgserver.get_server(Path(tempfile.mkdtemp(prefix="livery-bench-db-")), cleanup_mode="stop")
    return server.get_uri(), server


async def run() -> str:
    url, embedded = server_url()
    provisioner = DatabaseProvisioner(url)
    lines = [
        "## Database provisioner and shared-mode RLS",
        "",
        "Command: `python -m benchmarks database` (`make bench` runs it with the others). "
        f"PostgreSQL {'from LIVERY_BENCH_DATABASE_URL' if embedded is None else 'embedded (pgserver)'}. "
        f"Medians of {SEQUENTIAL_TENANTS} tenants called one at a time; the batch provisions "
        f"{CONCURRENT_TENANTS} new tenants with {CONCURRENCY} calls in flight.",
        "",
        "| mode | new tenant ms | repeat (reconcile) ms | drop ms | batch tenants/s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for isolation in ISOLATIONS:
        figures = await measure_provisioning(provisioner, isolation)
        lines.append(
            f"| {isolation} | {figures['first']:.1f} | {figures['repeat']:.1f} | {figures['drop']:.1f} "
            f"| {figures['per_second']:.1f} |"
        )

    admin_url = make_url(url).set(database="livery_shared").render_as_string(hide_password=False)
    infos = await provision_rls_tenants(provisioner, admin_url)
    try:
        timings = measure_rls(admin_url, infos[len(infos) // 2])
    finally:
        for info in infos:
            await provisioner.drop_database(info.tenant, "shared")
    baseline = statistics.median(timings["application"])
    lines += [
        "",
        f"One page (20 rows) of the product list with {RLS_TENANTS} tenants of {RLS_PRODUCTS_PER_TENANT:,} "
        f"products in the shared table, {RLS_ROUNDS} rounds of {RLS_QUERIES_PER_ROUND} transactions per variant, "
        "each transaction setting the tenant and reading the page:",
        "",
        "| variant | p50 ms | p99 ms | p50 vs application filter |",
        "| --- | --- | --- | --- |",
    ]
    for label, key in (("RLS (tenant role)", "rls"), ("filtered in application code (superuser)", "application")):
        values = timings[key]
        lines.append(
            f"| {label} | {statistics.median(values) * 1000:.3f} | {percentile(values, 0.99) * 1000:.3f} "
            f"| {statistics.median(values) / baseline:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    print(asyncio.run(run()), flush=True)


if __name__ == "__main__":
    main()
