"""Benchmark the control API: signups a second and webhook acknowledgements, on one uvicorn worker.

    python -m benchmarks control_api

It creates a scratch control database on the server in
`LIVERY_BENCH_DATABASE_URL` (else an embedded `pgserver` one) and loads the
bundled plans into the local store. Each load runs against `uvicorn` with one
worker in a separate process, so the load generator does not share its
interpreter. Then:

1. times argon2id hashing alone at argon2-cffi's defaults (RFC 9106 low-memory profile);
2. sends free-plan signups (billing `none`, local store) at a fixed concurrency,
   first with the production hash parameters, then with the cheapest ones, which
   shows the cost of the signup path apart from hashing (three rounds, median shown);
3. sends signed Stripe webhook events (`customer.created`, acknowledged and
   recorded once, with no tenant to change) and times their acknowledgement.

It prints a Markdown section for docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
SIGNUPS = 300
SEQUENTIAL_SIGNUPS = 60
# The path apart from hashing takes about a second per 300 signups, so it runs longer and three
# times, and the round with the median rate is reported with the other two rates beside it.
CHEAP_SIGNUPS = 1000
CHEAP_ROUNDS = 3
WEBHOOK_EVENTS = 1000
CONCURRENCY = 8
HASH_SAMPLES = 20
WEBHOOK_SECRET = "whsec_benchmark_0123456789"
CHEAPEST_HASH = {"LIVERY_PASSWORD_HASH_TIME_COST": "1", "LIVERY_PASSWORD_HASH_MEMORY_KIB": "8",
                 "LIVERY_PASSWORD_HASH_PARALLELISM": "1"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def server_url() -> tuple[str, object | None]:
    configured = os.environ.get("LIVERY_BENCH_DATABASE_URL")
    if configured:
        return configured, None
    import tempfile

    import pgserver

    server = pgserver.get_server(Path(tempfile.mkdtemp(prefix="livery-bench-")), cleanup_mode="stop")
    return server.get_uri(), server


def create_database(url: str) -> tuple[str, str]:
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    name = f"livery_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, make_url(url).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


async def load_plans(url: str) -> None:
    import yaml

    from livery.models.plan import Plan
    from livery.store.base import CLI_FIELD_MANAGER
    from livery.store.local import LocalStore

    store = await LocalStore.open(url)
    for path in sorted((REPO_ROOT / "livery" / "plans").glob("*.yaml")):
        await store.apply_plan(Plan.model_validate(yaml.safe_load(path.read_text())), CLI_FIELD_MANAGER)
    await store.close()


def start_server(database: str, extra_env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "LIVERY_DATABASE_URL": database,
        "LIVERY_STORE": "local",
        "LIVERY_JWT_SECRET": "benchmark-jwt-secret-0123456789abcdef",
        "LIVERY_LOG_LEVEL": "WARNING",
        **extra_env,
    }
    command = [sys.executable, "-m", "uvicorn", "--factory", "livery_control_api.app:create_app",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--log-level", "warning", "--no-access-log"]
    process = subprocess.Popen(command, env=env, cwd=REPO_ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the control API did not become ready within 60 s")


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=20)


async def run_load(url: str, requests: list[dict], concurrency: int) -> tuple[list[float], float, list[int]]:
    """Send `requests` with `concurrency` workers; return latencies in ms, wall time and status codes."""
    latencies: list[float] = []
    statuses: list[int] = []
    queue = list(reversed(requests))
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def worker() -> None:
            while queue:
                request = queue.pop()
                started = time.perf_counter()
                response = await client.request(**request)
                latencies.append((time.perf_counter() - started) * 1000)
                statuses.append(response.status_code)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return latencies, wall, statuses


def signup_requests(count: int) -> list[dict]:
    requests = []
    for _ in range(count):
        tenant = f"b{uuid.uuid4().hex[:12]}"
        body = {"tenant": tenant, "displayName": "Bench", "email": f"{tenant}@example.com",
                "password": "benchmark password", "plan": "free"}
        requests.append({"method": "POST", "url": "/v1/signup", "json": body})
    return requests


def webhook_requests(count: int) -> list[dict]:
    requests = []
    for _ in range(count):
        event = {"id": f"evt_{uuid.uuid4().hex}", "object": "event", "type": "customer.created",
                 "created": int(time.time()), "data": {"object": {"id": "cus_bench", "object": "customer"}}}
        payload = json.dumps(event).encode()
        timestamp = int(time.time())
        signature = hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
        requests.append({"method": "POST", "url": "/v1/billing/webhook", "content": payload,
                         "headers": {"Stripe-Signature": f"t={timestamp},v1={signature}"}})
    return requests


def measure_hash() -> tuple[list[float], list[float]]:
    """Return wall-clock and CPU milliseconds of each hash; CPU time counts all of argon2's threads."""
    from argon2 import PasswordHasher

    hasher = PasswordHasher()
    wall, cpu = [], []
    for _ in range(HASH_SAMPLES):
        started, started_cpu = time.perf_counter(), time.process_time()
        hasher.hash("benchmark password")
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return wall, cpu


def measure(
    database: str, extra_env: dict[str, str], requests: list[dict], concurrency: int = CONCURRENCY
) -> tuple[list[float], float, list[int]]:
    process, url = start_server(database, extra_env)
    try:
        # A short warm-up fills the connection pools before timing starts.
        asyncio.run(run_load(url, requests[:CONCURRENCY], concurrency))
        return asyncio.run(run_load(url, requests[CONCURRENCY:], concurrency))
    finally:
        stop_server(process)


def row(name: str, latencies: list[float], wall: float, statuses: list[int]) -> str:
    ok = sum(1 for status in statuses if status < 300)
    return (f"| {name} | {len(latencies)} | {ok} | {len(latencies) / wall:.0f} | "
            f"{statistics.median(latencies):.1f} | {percentile(latencies, 0.99):.1f} |")


def main() -> None:
    url, embedded = server_url()
    name, database = create_database(url)
    try:
        asyncio.run(load_plans(database))
        hashes, hash_cpu = measure_hash()
        production = measure(database, {}, signup_requests(SIGNUPS + CONCURRENCY))
        # One client at a time shows the latency of a signup without queueing behind other hashes.
        sequential = measure(database, {}, signup_requests(SEQUENTIAL_SIGNUPS + CONCURRENCY), concurrency=1)
        cheap_rounds = [measure(database, CHEAPEST_HASH, signup_requests(CHEAP_SIGNUPS + CONCURRENCY)) for _ in range(CHEAP_ROUNDS)]
        cheap_rounds.sort(key=lambda result: len(result[0]) / result[1])
        cheap = cheap_rounds[len(cheap_rounds) // 2]
        stripe_env = {"LIVERY_STRIPE_API_KEY": "sk_test_benchmark", "LIVERY_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
                      "LIVERY_STRIPE_API_BASE": "http://127.0.0.1:9"}
        webhooks = measure(database, stripe_env, webhook_requests(WEBHOOK_EVENTS + CONCURRENCY))
    finally:
        drop_database(url, name)
        if embedded is not None:
            embedded.cleanup()

    print("## Control API\n")
    print("Command: `python -m benchmarks control_api` (one uvicorn worker in its own process, "
          f"{CONCURRENCY} concurrent clients, local store, PostgreSQL {'from LIVERY_BENCH_DATABASE_URL' if embedded is None else 'embedded'}).\n")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"Load average (1, 5, 15 min) when the run ended: {load}; other work shared the machine.\n")
    print(f"argon2id hash alone (argon2-cffi defaults: time cost 3, 64 MiB, parallelism 4): "
          f"median {statistics.median(hashes):.1f} ms, p99 {percentile(hashes, 0.99):.1f} ms over {HASH_SAMPLES} hashes; "
          f"CPU time median {statistics.median(hash_cpu):.1f} ms a hash.\n")
    print("| load | requests | 2xx | per second | p50 ms | p99 ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print(row("signup, production argon2id", *production))
    print(row("signup, production argon2id, one client at a time", *sequential))
    print(row("signup, cheapest argon2id (path apart from hashing), median round", *cheap))
    print(row("Stripe webhook acknowledgement", *webhooks))
    rates = ", ".join(f"{len(result[0]) / result[1]:.0f}" for result in cheap_rounds)
    print(f"\nSignups a second apart from hashing in each of the {CHEAP_ROUNDS} rounds of {CHEAP_SIGNUPS}: {rates}.")


if __name__ == "__main__":
    main()
