"""Benchmark the embedded runtime: apply to first 200, gateway overhead, memory of 50 tenants.

    python -m benchmarks runtime

It starts `livery up` on free ports with a temporary data folder and the
embedded PostgreSQL (or the server in `LIVERY_BENCH_DATABASE_URL`, on which it
creates a scratch control database), then:

1. applies 20 tenants per isolation mode, one at a time, and times each from
   the admin API's apply call to the first 200 from the gateway (p50, p99);
2. loads one tenant's `/healthz` and `/` through the gateway and directly on
   its app port, alternating rounds, and compares requests per second and
   the latency of sequential requests;
3. sums the memory of the runtime, its PostgreSQL and the tenant apps once
   50 tenants run (PSS, which counts shared pages once, and RSS).

It prints a Markdown section for docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil

from livery.drivers.local import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
TENANTS_PER_MODE = 20
MEMORY_TENANTS = 50
MODES = ("shared", "schema", "database")
PLAN_OF_MODE = {"shared": "free", "schema": "pro", "database": "enterprise"}
FIRST_200_TIMEOUT_SECONDS = 60.0
LOAD_SECONDS = 5.0
LOAD_CONCURRENCY = 16
LOAD_ROUNDS = 3


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


class Runtime:
    def __init__(self, data_dir: Path, database_url: str | None) -> None:
        self.data_dir = data_dir
        self.api_port = free_port()
        self.gateway_port = free_port()
        self.environment = {key: value for key, value in os.environ.items() if not key.startswith("LIVERY_")}
        self.environment["LIVERY_LOG_LEVEL"] = "WARNING"
        if database_url:
            self.environment["LIVERY_DATABASE_URL"] = database_url
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / "up.log"

    def start(self) -> None:
        command = [
            sys.executable, "-m", "livery_runtime", "up", "--data-dir", str(self.data_dir),
            "--api-port", str(self.api_port), "--gateway-port", str(self.gateway_port),
        ]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, env=self.environment, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while "Livery is running." not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("livery up did not start:\n" + self.log.read_text(errors="replace"))
            time.sleep(0.1)
        self.token = (self.data_dir / "admin-token").read_text().strip()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(120)


def tenant_manifest(name: str, mode: str) -> dict[str, Any]:
    return {
        "apiVersion": "livery.dev/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": name},
        "spec": {
            "displayName": f"Bench {name}",
            "plan": PLAN_OF_MODE[mode],
            "isolation": mode,
            "branding": {"productName": f"Bench {name}", "primaryColor": "#1c7ed6"},
            "deletionPolicy": "Delete",
        },
    }


def apply_and_time(runtime: Runtime, client: httpx.Client, name: str, mode: str) -> float:
    """Apply one tenant and return the seconds until the gateway first returns 200 for it."""
    headers = {"Host": f"{name}.localhost:{runtime.gateway_port}"}
    started = time.perf_counter()
    response = client.post(
        f"http://127.0.0.1:{runtime.api_port}/v1/admin/apply",
        json=tenant_manifest(name, mode),
        headers={"Authorization": f"Bearer {runtime.token}"},
    )
    response.raise_for_status()
    while time.perf_counter() - started < FIRST_200_TIMEOUT_SECONDS:
        if client.get(f"http://127.0.0.1:{runtime.gateway_port}/", headers=headers).status_code == 200:
            return time.perf_counter() - started
        time.sleep(0.01)
    raise RuntimeError(f"tenant {name} did not return 200 within {FIRST_200_TIMEOUT_SECONDS:g} s")


def memory(runtime: Runtime) -> dict[str, float]:
    """Return MiB of PSS and RSS for the runtime process, its PostgreSQL and its tenant apps."""
    assert runtime.process is not None
    parts = {"runtime": [psutil.Process(runtime.process.pid)], "postgres": [], "tenant apps": []}
    for child in psutil.Process(runtime.process.pid).children(recursive=True):
        parts["tenant apps"].append(child)
    pgdata = str(runtime.data_dir / "postgres")
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "postgres" in cmdline and pgdata in cmdline:
            parts["postgres"].append(process)
            parts["postgres"].extend(process.children(recursive=True))
    figures: dict[str, float] = {}
    for label, processes in parts.items():
        pss = rss = 0
        for process in processes:
            try:
                info = process.memory_full_info()
            except psutil.Error:
                continue
            pss += getattr(info, "pss", info.rss)
            rss += info.rss
        figures[f"{label} PSS"] = pss / 2**20
        figures[f"{label} RSS"] = rss / 2**20
    return figures


async def load(url: str, headers: dict[str, str], seconds: float) -> float:
    """Send GETs from `LOAD_CONCURRENCY` keep-alive connections for `seconds`; return requests per second."""
    done = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=LOAD_CONCURRENCY, max_keepalive_connections=LOAD_CONCURRENCY)
    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                response = await client.get(url, headers=headers)
                if response.status_code == 200:
                    done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(LOAD_CONCURRENCY)))
        return done / (time.perf_counter() - started)


def latency(url: str, headers: dict[str, str], count: int = 200) -> float:
    """Return the median seconds of `count` sequential GETs on one keep-alive connection."""
    timings = []
    with httpx.Client(trust_env=False) as client:
        for _ in range(count):
            started = time.perf_counter()
            client.get(url, headers=headers)
            timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def gateway_overhead(runtime: Runtime, tenant: str, path: str) -> dict[str, float]:
    """Measure `path` of one tenant through the gateway and on its app port, alternating rounds."""
    routes = json.loads((runtime.data_dir / "routes.json").read_text())
    port = routes["tenants"][tenant]["port"]
    host = {"Host": f"{tenant}.localhost:{runtime.gateway_port}"}
    gateway_url = f"http://127.0.0.1:{runtime.gateway_port}{path}"
    direct_url = f"http://127.0.0.1:{port}{path}"
    through_gateway: list[float] = []
    direct: list[float] = []
    for _ in range(LOAD_ROUNDS):
        through_gateway.append(asyncio.run(load(gateway_url, host, LOAD_SECONDS)))
        direct.append(asyncio.run(load(direct_url, host, LOAD_SECONDS)))
    return {
        "gateway rps": statistics.median(through_gateway),
        "direct rps": statistics.median(direct),
        "gateway latency": latency(gateway_url, host),
        "direct latency": latency(direct_url, host),
    }


def create_control_database(server_url: str) -> tuple[str, str]:
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    name = f"livery_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, make_url(server_url).set(database=name).render_as_string(hide_password=False)


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="livery-bench-"))
    server_url = os.environ.get("LIVERY_BENCH_DATABASE_URL")
    database_url = create_control_database(server_url)[1] if server_url else None
    runtime = Runtime(folder / "data", database_url)
    runtime.start()
    try:
        latencies: dict[str, list[float]] = {}
        memory_figures: dict[str, float] = {}
        count = 0
        run = uuid.uuid4().hex[:4]
        with httpx.Client(timeout=30, trust_env=False) as client:
            for mode in MODES:
                latencies[mode] = []
                for index in range(TENANTS_PER_MODE):
                    latencies[mode].append(apply_and_time(runtime, client, f"b{run}-{mode[:2]}-{index}", mode))
                    count += 1
                    if count == MEMORY_TENANTS:
                        time.sleep(2)
                        memory_figures = memory(runtime)
        overhead = {path: gateway_overhead(runtime, f"b{run}-sh-0", path) for path in ("/healthz", "/")}
    finally:
        runtime.stop()
        shutil.rmtree(folder, ignore_errors=True)

    database = "LIVERY_BENCH_DATABASE_URL server" if server_url else "embedded pgserver PostgreSQL"
    print("## Embedded runtime\n")
    print(f"Command: `python -m benchmarks runtime` ({database}; {os.cpu_count()} CPUs).\n")
    print(f"Apply to first 200 through the gateway, {TENANTS_PER_MODE} tenants per mode applied one at a time:\n")
    print("| isolation | p50 (s) | p99 (s) | max (s) |")
    print("| --- | --- | --- | --- |")
    for mode, values in latencies.items():
        print(f"| {mode} | {percentile(values, 0.5):.2f} | {percentile(values, 0.99):.2f} | {max(values):.2f} |")
    print(
        f"\nGateway against direct calls to the app of one shared-mode tenant: throughput with {LOAD_CONCURRENCY} "
        f"connections (median of {LOAD_ROUNDS} alternating rounds of {LOAD_SECONDS:g} s) and the median latency of "
        "200 sequential requests on one connection:\n"
    )
    print("| path | gateway (requests/s) | direct (requests/s) | ratio | gateway latency (ms) | direct latency (ms) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for path, figures in overhead.items():
        print(
            f"| `{path}` | {figures['gateway rps']:.0f} | {figures['direct rps']:.0f} | "
            f"{figures['gateway rps'] / figures['direct rps']:.0%} | {figures['gateway latency'] * 1000:.1f} | "
            f"{figures['direct latency'] * 1000:.1f} |"
        )
    print()
    print(f"Memory with {MEMORY_TENANTS} running tenants (MiB):\n")
    print("| part | PSS | RSS |")
    print("| --- | --- | --- |")
    for part in ("runtime", "postgres", "tenant apps"):
        print(f"| {part} | {memory_figures.get(part + ' PSS', 0):.0f} | {memory_figures.get(part + ' RSS', 0):.0f} |")
    total = sum(value for key, value in memory_figures.items() if key.endswith("PSS"))
    print(f"| total | {total:.0f} | |")


if __name__ == "__main__":
    main()
