"""Benchmark the Kubernetes operator against the API emulator and a real PostgreSQL.

    python -m benchmarks operator

For each isolation mode it creates a batch of Tenants at once and runs the
operator (kopf, in this process) until every one reports DatabaseReady and
RoutingReady, which means its database exists and every object was accepted.
It reports:

- tenants per second over the batch;
- p50 and p99 of the wall time of each tenant's first complete reconcile,
  excluding time queued behind other tenants, and of the operator's own share:
  that time minus the time in database provisioner calls (`ensure_database`,
  which includes waiting for one of the `LIVERY_DATABASE_CONCURRENCY`
  provisioning slots, and the retained-data checks of a new tenant);
- CPU milliseconds per tenant of the operator's process and of the emulator's,
  which runs in a child process so the two do not share an interpreter lock.
  Tenants are created by a second child process, so neither figure includes
  the client that creates them;
- after a restart, how long until every tenant was reconciled again.

A second phase replaces the provisioner with one that returns at once and
runs `SCALE_TENANTS` tenants, to measure the operator's resident memory with
that many tenants and the time to re-check all of them after a restart.

The emulator is `tests/k8s_emulator.py`, so this benchmark needs the test
dependencies (`make bench` installs them). PostgreSQL is the server in
`LIVERY_BENCH_DATABASE_URL`, or an embedded pgserver in a temporary folder.
It prints a Markdown section for docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import contextvars
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
RESTART_TIMEOUT_SECONDS = 300.0
SCALE_TENANTS = 10_000
# The tenant whose reconcile the current task runs, so its Kubernetes requests are counted as its waits.
RECONCILING: contextvars.ContextVar[str | None] = contextvars.ContextVar("reconciling", default=None)
SCALE_TIMEOUT_SECONDS = 900.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


class Timings:
    """Wraps `TenantReconciler.reconcile` and its provisioner to time each tenant's reconciles.

    `database_seconds` is the wall time during which at least one provisioner call
    of the tenant's current reconcile was running: `ensure_database` and the
    retained-data checks (`database_exists`), including waits for a provisioning slot.
    """

    def __init__(self, reconciler: Any) -> None:
        self.first_complete: dict[str, float] = {}
        self.database_seconds: dict[str, float] = {}
        self.first_database: dict[str, float] = {}
        self.reconciled_since: dict[str, float] = {}
        # The wall time during which a provisioner call or a Kubernetes API request of the
        # tenant's current reconcile was running, counted once where they overlap.
        self.wait_seconds: dict[str, float] = {}
        self.first_wait: dict[str, float] = {}
        # Tenant -> (provisioner calls running, when the first of them started); the same for waits.
        self._in_flight: dict[str, tuple[int, float]] = {}
        self._waiting: dict[str, tuple[int, float]] = {}
        provisioner = reconciler.provisioner
        for method in ("ensure_database", "database_exists"):
            setattr(provisioner, method, self._timed_database(getattr(provisioner, method)))
        client = reconciler.driver.client
        client.request = self._timed_request(client.request)
        original = reconciler.reconcile

        async def timed(name: str, trigger: str) -> Any:
            began = time.perf_counter()
            self.database_seconds[name] = 0.0
            self.wait_seconds[name] = 0.0
            token = RECONCILING.set(name)
            try:
                result = await original(name, trigger)
            finally:
                RECONCILING.reset(token)
            elapsed = time.perf_counter() - began
            self.reconciled_since[name] = time.monotonic()
            if result is not None and name not in self.first_complete and provisioned(result.status):
                self.first_complete[name] = reconciler.durations.get(name, elapsed)
                self.first_database[name] = self.database_seconds.get(name, 0.0)
                self.first_wait[name] = self.wait_seconds.get(name, 0.0)
            return result

        reconciler.reconcile = timed

    def _timed_request(self, call: Any) -> Any:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            tenant = RECONCILING.get()
            if tenant is None:
                return await call(*args, **kwargs)
            self._begin(self._waiting, tenant)
            try:
                return await call(*args, **kwargs)
            finally:
                self._end(self._waiting, self.wait_seconds, tenant)

        return timed

    @staticmethod
    def _begin(in_flight: dict[str, tuple[int, float]], tenant: str) -> None:
        running, since = in_flight.get(tenant, (0, time.perf_counter()))
        in_flight[tenant] = (running + 1, since)

    @staticmethod
    def _end(in_flight: dict[str, tuple[int, float]], totals: dict[str, float], tenant: str) -> None:
        running, since = in_flight.pop(tenant)
        if running > 1:
            in_flight[tenant] = (running - 1, since)
        else:
            totals[tenant] = totals.get(tenant, 0.0) + time.perf_counter() - since

    def _timed_database(self, call: Any) -> Any:
        async def timed(tenant: str, *args: Any) -> Any:
            self._begin(self._in_flight, tenant)
            self._begin(self._waiting, tenant)
            try:
                return await call(tenant, *args)
            finally:
                self._end(self._waiting, self.wait_seconds, tenant)
                self._end(self._in_flight, self.database_seconds, tenant)

        return timed


def provisioned(status: Any) -> bool:
    kinds = {condition.type: condition.status for condition in status.conditions or []}
    return kinds.get("DatabaseReady") == "True" and kinds.get("RoutingReady") == "True"


CREATOR_SCRIPT = """
import sys, httpx
url, plan, names = sys.argv[1], sys.argv[2], sys.stdin.read().split()
with httpx.Client(base_url=url, timeout=60) as client:
    for name in names:
        body = {
            "apiVersion": "livery.dev/v1alpha1",
            "kind": "Tenant",
            "metadata": {"name": name},
            "spec": {"displayName": name, "plan": plan, "deletionPolicy": "Delete"},
        }
        client.post("/apis/livery.dev/v1alpha1/tenants", json=body).raise_for_status()
"""

EMULATOR_SCRIPT = """
import sys, threading
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from k8s_emulator import KubeCluster
cluster = KubeCluster(Path(sys.argv[2]))
cluster.emulator.request_log_limit = 1000
cluster.emulator.history_limit = 1
cluster.start()
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

    def start_creating_tenants(self, mode: str, count: int, prefix: str = "bench") -> tuple[list[str], subprocess.Popen[str]]:
        """Start a child process that creates the Tenants one after the other, and return their names and the process."""
        names = tenant_names(mode, count, prefix)
        creator = subprocess.Popen(
            [sys.executable, "-c", CREATOR_SCRIPT, self.url, PLAN_OF_MODE[mode]], stdin=subprocess.PIPE, text=True
        )
        assert creator.stdin is not None
        creator.stdin.write("\n".join(names))
        creator.stdin.close()
        return names, creator

    def emulator_rss_mib(self) -> float:
        return psutil.Process(self.emulator.pid).memory_info().rss / 2**20

    def wait_provisioned(self, names: list[str], timings: Timings, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(name in timings.first_complete for name in names):
                return
            time.sleep(0.1)
        missing = [name for name in names if name not in timings.first_complete]
        raise RuntimeError(f"{len(missing)} tenants not provisioned within {timeout} s, e.g. {missing[:3]}")

    def close(self) -> None:
        self.http.close()
        assert self.emulator.stdin is not None
        self.emulator.stdin.close()
        self.emulator.wait(timeout=30)


def run_mode(
    bench: Bench, timings: Timings, mode: str, count: int | None = None, prefix: str = "bench", timeout: float = BATCH_TIMEOUT_SECONDS
) -> dict[str, Any]:
    count = count or TENANTS_PER_MODE[mode]
    operator_before, emulator_before = bench.cpu_seconds()
    started = time.monotonic()
    names, creator = bench.start_creating_tenants(mode, count, prefix)
    try:
        bench.wait_provisioned(names, timings, timeout)
    finally:
        if creator.wait(timeout=60) != 0:
            raise RuntimeError(f"creating the {mode} tenants failed with exit code {creator.returncode}")
    elapsed = time.monotonic() - started
    operator_after, emulator_after = bench.cpu_seconds()
    durations = [timings.first_complete[name] * 1000 for name in names]
    own_share = [(timings.first_complete[name] - timings.first_database[name]) * 1000 for name in names]
    # What remains when neither a provisioner call nor a Kubernetes API request was running:
    # the operator's processing and its waits for the event loop.
    processing = [(timings.first_complete[name] - timings.first_wait[name]) * 1000 for name in names]
    database = [timings.first_database[name] * 1000 for name in names]
    return {
        "mode": mode,
        "tenants": count,
        "rate": count / elapsed,
        "p50": statistics.median(durations),
        "p99": percentile(durations, 0.99),
        "own_p50": statistics.median(own_share),
        "own_p99": percentile(own_share, 0.99),
        "processing_p50": statistics.median(processing),
        "processing_p99": percentile(processing, 0.99),
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


def run_at_scale(work: Path) -> dict[str, Any]:
    """Reconcile SCALE_TENANTS tenants with `InstantProvisioner`: operator memory, CPU and restart time."""
    bench = Bench("postgresql://unused@127.0.0.1:1/unused", work)
    try:
        bench.create_plans()
        timings = bench.start_operator(InstantProvisioner())
        baseline_mib = psutil.Process().memory_info().rss / 2**20
        row = run_mode(bench, timings, "shared", count=SCALE_TENANTS, prefix="bench-k8s", timeout=SCALE_TIMEOUT_SECONDS)
        row["baseline_mib"] = baseline_mib
        row["rss_mib"] = psutil.Process().memory_info().rss / 2**20
        row["emulator_rss_mib"] = bench.emulator_rss_mib()
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
    missing = sum(1 for name in names if name not in timings.reconciled_since)
    raise RuntimeError(f"{missing} of {len(names)} tenants were not reconciled within {RESTART_TIMEOUT_SECONDS} s of a restart")


def drop_tenant_databases(database_url: str) -> None:
    """Drop the databases, schemas, rows and roles of every tenant name this benchmark uses.

    Runs before the benchmark, so leftovers of an interrupted run do not fail it with
    RetainedDataExists, and after it, so a shared server is left as it was found.
    """
    from livery.database import DatabaseProvisioner

    provisioner = DatabaseProvisioner(database_url)

    async def drop_all() -> None:
        slots = asyncio.Semaphore(4)

        async def drop(name: str, mode: str) -> None:
            async with slots:
                await provisioner.drop_database(name, mode)

        await asyncio.gather(
            *(drop(name, mode) for mode, count in TENANTS_PER_MODE.items() for name in tenant_names(mode, count))
        )

    asyncio.run(drop_all())


def tenant_names(mode: str, count: int, prefix: str = "bench") -> list[str]:
    return [f"{prefix}-{mode[:2]}-{index}" for index in range(count)]


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
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="livery-bench-operator-") as folder:
        work = Path(folder)
        database_url, server = database_server(work)
        drop_tenant_databases(database_url)
        bench = Bench(database_url, work)
        try:
            bench.create_plans()
            timings = bench.start_operator()
            # Provisioning runs Alembic in threads of this process, so its CPU counts as the operator's.
            rows = [run_mode(bench, timings, mode) for mode in ("shared", "schema", "database")]
            all_names = [name for name in timings.first_complete]
            restart_seconds = measure_restart(bench, all_names)
            bench.stop_operator()
        finally:
            bench.close()
            drop_tenant_databases(database_url)
            if server is not None:
                server.cleanup()
        (work / "scale").mkdir()
        at_scale = run_at_scale(work / "scale")
    print_report(rows, len(all_names), restart_seconds)
    print_at_scale(at_scale)
    print(f"\nStarted {started}; 1-minute load average {load_before:.1f} at the start and {os.getloadavg()[0]:.1f} at the end.")


def print_report(rows: list[dict[str, Any]], tenants: int, restart_seconds: float) -> None:
    print("## Operator\n")
    print("Command: `python -m benchmarks operator` (the emulator in a child process, real PostgreSQL).\n")
    print(
        "| isolation | tenants | tenants/s | reconcile p50 / p99 (ms) | of which database p50 (ms) "
        "| operator's own share p50 / p99 (ms) | of it, outside API requests p50 / p99 (ms) "
        "| operator CPU per tenant (ms) | emulator CPU per tenant (ms) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {row['mode']} | {row['tenants']} | {row['rate']:.1f} | {row['p50']:.0f} / {row['p99']:.0f} "
            f"| {row['database_p50']:.0f} | {row['own_p50']:.0f} / {row['own_p99']:.0f} "
            f"| {row['processing_p50']:.0f} / {row['processing_p99']:.0f} "
            f"| {row['cpu_ms']:.1f} | {row['emulator_cpu_ms']:.1f} |"
        )
    print(f"\nAfter a restart, every one of the {tenants} tenants was reconciled again within {restart_seconds:.1f} s.")


def print_at_scale(row: dict[str, Any]) -> None:
    per_tenant_kib = (row["rss_mib"] - row["baseline_mib"]) * 1024 / row["tenants"]
    print(
        f"\nWith the provisioner replaced by one that returns at once, {row['tenants']} shared-mode tenants: "
        f"{row['rate']:.1f} tenants/s, reconcile p50 {row['p50']:.0f} ms and p99 {row['p99']:.0f} ms, "
        f"operator CPU {row['cpu_ms']:.1f} ms and emulator CPU {row['emulator_cpu_ms']:.1f} ms per tenant. "
        f"Resident memory of the operator's process: {row['baseline_mib']:.0f} MiB before the first tenant and "
        f"{row['rss_mib']:.0f} MiB with all {row['tenants']} (about {per_tenant_kib:.0f} KiB per tenant); "
        f"the emulator's: {row['emulator_rss_mib']:.0f} MiB. After a restart every tenant was reconciled again "
        f"within {row['restart_seconds']:.1f} s."
    )
