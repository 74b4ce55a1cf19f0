"""Benchmark the Kubernetes operator against the API emulator and a real PostgreSQL.

    python -m benchmarks operator

For each isolation mode it creates a batch of Tenants at once and runs the
operator (kopf, in this process) until every one reports DatabaseReady and
RoutingReady, which means its database exists and every object was accepted.
It reports:

- tenants per second over the batch;
- p50 and p99 of the wall time of each tenant's first complete reconcile,
  excluding time queued behind other tenants, and of the operator's own share:
  that time minus the database provisioner's call (which includes waiting for
  one of the `LIVERY_DATABASE_CONCURRENCY` provisioning slots);
- CPU seconds per tenant of the operator's process and of the emulator's, which
  runs in a child process so the two do not share an interpreter lock;
- the operator process's resident memory once all tenants exist;
- after a restart, how long until every tenant was reconciled again.

The emulator is `tests/k8s_emulator.py`, so this benchmark needs the test
dependencies (`make bench` installs them). PostgreSQL is the server in
`LIVERY_BENCH_DATABASE_URL`, or an embedded pgserver in a temporary folder.
It prints a Markdown section for docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml
from pydantic import SecretStr

REPO_ROOT = Path(__file__).resolve().parent.parent
TENANTS_PER_MODE = {"shared": 100, "schema": 100, "database": 40}
PLAN_OF_MODE = {"shared": "free", "schema": "pro", "database": "enterprise"}
BATCH_TIMEOUT_SECONDS = 240.0
RESTART_TIMEOUT_SECONDS = 180.0
KUBERNETES_ONLY_TENANTS = 1000


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


class Timings:
    """Wraps `TenantReconciler.reconcile` to time each call per tenant."""

    def __init__(self, reconciler: Any) -> None:
        self.first_complete: dict[str, float] = {}
        self.database_seconds: dict[str, float] = {}
        self.first_database: dict[str, float] = {}
        self.reconciled_since: dict[str, float] = {}
        self.started = time.monotonic()
        original = reconciler.reconcile
        provisioner = reconciler.provisioner
        ensure_database = provisioner.ensure_database

        async def timed_database(tenant: str, isolation: str, password: str) -> Any:
            began = time.perf_counter()
            try:
                return await ensure_database(tenant, isolation, password)
            finally:
                self.database_seconds[tenant] = time.perf_counter() - began

        provisioner.ensure_database = timed_database

        async def timed(name: str, trigger: str, host_index: Any = None) -> Any:
            began = time.perf_counter()
            result = await original(name, trigger, host_index)
            elapsed = time.perf_counter() - began
            self.reconciled_since[name] = time.monotonic()
            if result is not None and name not in self.first_complete and provisioned(result.status):
                self.first_complete[name] = reconciler.durations.get(name, elapsed)
                self.first_database[name] = self.database_seconds.get(name, 0.0)
            return result

        reconciler.reconcile = timed


def provisioned(status: Any) -> bool:
    kinds = {condition.type: condition.status for condition in status.conditions or []}
    return kinds.get("DatabaseReady") == "True" and kinds.get("RoutingReady") == "True"


EMULATOR_SCRIPT = """
import sys, threading
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from k8s_emulator import KubeCluster
cluster = KubeCluster(Path(sys.argv[2])).start()
print(cluster.url, flush=True)
sys.stdin.read()
cluster.stop()
"""


class Bench:
    """The emulator in a child process (so its CPU and memory are its own) and the operator here."""

    def __init__(self, database_url: str, work: Path) -> None:
        self.emulator = subprocess.Popen(
            [sys.executable, "-c", EMULATOR_SCRIPT, str(REPO_ROOT / "tests"), str(work)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.emulator.stdout is not None
        self.url = self.emulator.stdout.readline().strip()
        if not self.url:
            raise RuntimeError("the Kubernetes emulator did not start")
        self.kubeconfig = work / "kubeconfig.yaml"
        self.http = httpx.Client(base_url=self.url, timeout=30)
        self.database_url = database_url
        self.thread: threading.Thread | None = None
        self.stop_flag = threading.Event()

    def start_operator(self, provisioner: Any = None) -> Timings:
        from livery_operator.main import build_operator, run_operator
        from livery_operator.settings import OperatorSettings

        settings = OperatorSettings(
            base_domain="bench.test",
            tenant_database_url=SecretStr(self.database_url),
            resync_seconds=60,
            metrics_port=0,
        )
        parts = build_operator(settings, kubeconfig=str(self.kubeconfig), provisioner=provisioner)
        timings = Timings(parts.reconciler)
        ready = threading.Event()
        self.stop_flag = threading.Event()

        def run() -> None:
            asyncio.run(run_operator(parts, stop_flag=self.stop_flag, ready_flag=ready))

        self.thread = threading.Thread(target=run, name="livery-operator", daemon=True)
        self.thread.start()
        if not ready.wait(30):
            raise RuntimeError("the operator did not start within 30 s")
        return timings

    def stop_operator(self) -> None:
        self.stop_flag.set()
        if self.thread is not None:
            self.thread.join(timeout=60)

    def cpu_seconds(self) -> tuple[float, float]:
        """Return CPU seconds of (this process: the operator, the emulator's process)."""
        operator = psutil.Process().cpu_times()
        emulator = psutil.Process(self.emulator.pid).cpu_times()
        return operator.user + operator.system, emulator.user + emulator.system

    def create(self, path: str, body: dict[str, Any]) -> None:
        self.http.post(path, json=body).raise_for_status()

    def create_plans(self) -> None:
        for name in PLAN_OF_MODE.values():
            plan = yaml.safe_load((REPO_ROOT / "livery" / "plans" / f"{name}.yaml").read_text())
            self.create("/apis/livery.dev/v1alpha1/plans", plan)

    def create_tenants(self, mode: str, count: int, prefix: str = "bench") -> list[str]:
        names = [f"{prefix}-{mode[:2]}-{index}" for index in range(count)]
        for name in names:
            self.create(
                "/apis/livery.dev/v1alpha1/tenants",
                {
                    "apiVersion": "livery.dev/v1alpha1",
                    "kind": "Tenant",
                    "metadata": {"name": name},
                    "spec": {"displayName": name, "plan": PLAN_OF_MODE[mode], "deletionPolicy": "Delete"},
                },
            )
        return names

    def wait_provisioned(self, names: list[str], timings: Timings, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(name in timings.first_complete for name in names):
                return
            time.sleep(0.05)
        missing = [name for name in names if name not in timings.first_complete]
        raise RuntimeError(f"{len(missing)} tenants not provisioned within {timeout} s, e.g. {missing[:3]}")

    def close(self) -> None:
        self.http.close()
        assert self.emulator.stdin is not None
        self.emulator.stdin.close()
        self.emulator.wait(timeout=30)


def run_mode(bench: Bench, timings: Timings, mode: str, count: int | None = None, prefix: str = "bench") -> dict[str, Any]:
    count = count or TENANTS_PER_MODE[mode]
    operator_before, emulator_before = bench.cpu_seconds()
    started = time.monotonic()
    names = bench.create_tenants(mode, count, prefix)
    bench.wait_provisioned(names, timings, BATCH_TIMEOUT_SECONDS)
    elapsed = time.monotonic() - started
    durations = [timings.first_complete[name] * 1000 for name in names]
    own_share = [(timings.first_complete[name] - timings.first_database[name]) * 1000 for name in names]
    database = [timings.first_database[name] * 1000 for name in names]
    operator_after, emulator_after = bench.cpu_seconds()
    return {
        "mode": mode,
        "tenants": count,
        "rate": count / elapsed,
        "p50": statistics.median(durations),
        "p99": percentile(durations, 0.99),
        "own_p50": statistics.median(own_share),
        "own_p99": percentile(own_share, 0.99),
        "database_p50": statistics.median(database),
        "cpu_ms": (operator_after - operator_before) * 1000 / count,
        "emulator_cpu_ms": (emulator_after - emulator_before) * 1000 / count,
    }


class InstantProvisioner:
    """Returns the names a real provisioner would, without touching PostgreSQL.

    It isolates the operator's own cost: Kubernetes objects, status, kopf and memory.
    """

    async def ensure_database(self, tenant: str, isolation: str, password: str) -> Any:
        from livery import naming
        from livery.database import DatabaseInfo

        role = naming.postgres_identifier(tenant)
        return DatabaseInfo(tenant, isolation, naming.SHARED_DATABASE, role, None, f"postgresql://{role}:{password}@db/x")

    async def drop_database(self, tenant: str, isolation: str) -> None:
        return None

    async def snapshot(self, tenant: str, isolation: str, destination: Path) -> Path:
        raise NotImplementedError("the benchmark deletes no tenant")

    async def database_exists(self, tenant: str, isolation: str) -> bool:
        return False

    async def provisioned(self, tenant: str, isolation: str) -> bool:
        return True


def run_kubernetes_only(work: Path) -> dict[str, Any]:
    """Reconcile many tenants with `InstantProvisioner`: operator CPU, memory and restart time."""
    bench = Bench("postgresql://unused@127.0.0.1:1/unused", work)
    try:
        bench.create_plans()
        timings = bench.start_operator(InstantProvisioner())
        baseline_mib = psutil.Process().memory_info().rss / 2**20
        row = run_mode(bench, timings, "shared", count=KUBERNETES_ONLY_TENANTS, prefix="bench-k8s")
        row["baseline_mib"] = baseline_mib
        row["rss_mib"] = psutil.Process().memory_info().rss / 2**20
        row["restart_seconds"] = measure_restart(bench, list(timings.first_complete), InstantProvisioner())
        bench.stop_operator()
    finally:
        bench.close()
    return row


def measure_restart(bench: Bench, names: list[str], provisioner: Any = None) -> float:
    bench.stop_operator()
    restarted_at = time.monotonic()
    timings = bench.start_operator(provisioner)
    deadline = restarted_at + RESTART_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if all(name in timings.reconciled_since for name in names):
            return max(timings.reconciled_since[name] for name in names) - restarted_at
        time.sleep(0.1)
    raise RuntimeError(f"not every tenant was reconciled within {RESTART_TIMEOUT_SECONDS} s of a restart")


def database_server(work: Path) -> tuple[str, Any]:
    configured = os.environ.get("LIVERY_BENCH_DATABASE_URL")
    if configured:
        return configured, None
    import pgserver

    server = pgserver.get_server(work / "pgdata", cleanup_mode="stop")
    return server.get_uri(), server


def main() -> None:
    import logging

    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="livery-bench-operator-") as folder:
        work = Path(folder)
        database_url, server = database_server(work)
        bench = Bench(database_url, work)
        try:
            bench.create_plans()
            timings = bench.start_operator()
            baseline_mib = psutil.Process().memory_info().rss / 2**20
            # Provisioning runs Alembic in threads of this process, so its CPU counts as the operator's.
            rows = [run_mode(bench, timings, mode) for mode in ("shared", "schema", "database")]
            rss_mib = psutil.Process().memory_info().rss / 2**20
            all_names = [name for name in timings.first_complete]
            restart_seconds = measure_restart(bench, all_names)
            bench.stop_operator()
        finally:
            bench.close()
            if server is not None:
                server.cleanup()
        (work / "kubernetes-only").mkdir()
        kubernetes_only = run_kubernetes_only(work / "kubernetes-only")
    print_report(rows, baseline_mib, rss_mib, len(all_names), restart_seconds)
    print_kubernetes_only(kubernetes_only)


def print_report(
    rows: list[dict[str, Any]], baseline_mib: float, rss_mib: float, tenants: int, restart_seconds: float
) -> None:
    print("## Operator\n")
    print("Command: `python -m benchmarks operator` (the emulator in a child process, real PostgreSQL).\n")
    print(
        "| isolation | tenants | tenants/s | reconcile p50 / p99 (ms) | of which database p50 (ms) "
        "| operator's own share p50 / p99 (ms) | operator CPU per tenant (ms) | emulator CPU per tenant (ms) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {row['mode']} | {row['tenants']} | {row['rate']:.1f} | {row['p50']:.0f} / {row['p99']:.0f} "
            f"| {row['database_p50']:.0f} | {row['own_p50']:.0f} / {row['own_p99']:.0f} "
            f"| {row['cpu_ms']:.1f} | {row['emulator_cpu_ms']:.1f} |"
        )
    per_tenant_kib = (rss_mib - baseline_mib) * 1024 / tenants
    print(
        f"\nResident memory of the operator process: {baseline_mib:.0f} MiB before the first "
        f"tenant, {rss_mib:.0f} MiB with {tenants} tenants, so about {per_tenant_kib:.0f} KiB per tenant."
    )
    print(f"After a restart, every one of the {tenants} tenants was reconciled again within {restart_seconds:.1f} s.")


def print_kubernetes_only(row: dict[str, Any]) -> None:
    per_tenant_kib = (row["rss_mib"] - row["baseline_mib"]) * 1024 / row["tenants"]
    print(
        f"\nWith the provisioner replaced by one that returns at once ({row['tenants']} tenants): "
        f"{row['rate']:.1f} tenants/s, reconcile p50 {row['p50']:.0f} ms and p99 {row['p99']:.0f} ms, "
        f"operator CPU {row['cpu_ms']:.1f} ms and emulator CPU {row['emulator_cpu_ms']:.1f} ms per tenant, "
        f"operator memory {row['baseline_mib']:.0f} MiB before and {row['rss_mib']:.0f} MiB after "
        f"(about {per_tenant_kib:.0f} KiB per tenant); after a restart every tenant was reconciled again "
        f"within {row['restart_seconds']:.1f} s."
    )
