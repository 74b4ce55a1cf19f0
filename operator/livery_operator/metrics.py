"""Prometheus metrics of the operator, served on `/metrics`.

The metric objects live in prometheus-client's default registry, created once
per process when this module is imported.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from livery.models.tenant import PHASES

STEP_RUNS = Counter(
    "livery_operator_step_runs_total", "Reconcile step runs, by step and outcome.", ["step", "outcome"]
)
STEP_FAILURES = Counter(
    "livery_operator_step_failures_total", "Reconcile step failures, by step and reason.", ["step", "reason"]
)
STEP_DURATION = Histogram(
    "livery_operator_step_duration_seconds",
    "Time one reconcile step took, in seconds.",
    ["step"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
RECONCILES = Counter("livery_operator_reconciles_total", "Tenant reconciles, by trigger.", ["trigger"])
TENANTS = Gauge("livery_operator_tenants", "Tenants known to the operator, by phase.", ["phase"])


class MetricsObserver:
    """Records each step's outcome and duration; tracks the phase of every tenant."""

    def __init__(self) -> None:
        self.phases: dict[str, str] = {}
        for phase in PHASES:
            TENANTS.labels(phase=phase)

    def step_finished(self, step: str, outcome: str, seconds: float) -> None:
        STEP_RUNS.labels(step=step, outcome="success" if outcome == "success" else "failure").inc()
        STEP_DURATION.labels(step=step).observe(seconds)
        if outcome != "success":
            STEP_FAILURES.labels(step=step, reason=outcome).inc()

    def set_phase(self, tenant: str, phase: str | None) -> None:
        """Move `tenant` to `phase` in the per-phase gauge; None removes the tenant."""
        before = self.phases.get(tenant)
        if before == phase:
            return
        if before is not None:
            TENANTS.labels(phase=before).dec()
        if phase is None:
            self.phases.pop(tenant, None)
        else:
            self.phases[tenant] = phase
            TENANTS.labels(phase=phase).inc()


def serve_metrics(host: str, port: int) -> None:
    """Serve `/metrics` from a background thread; port 0 disables it."""
    if not port:
        return
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot serve /metrics on {host}:{port}: {exc.strerror}; set LIVERY_METRICS_PORT") from None
