"""`/metrics` of the operator, served by prometheus-client."""

from __future__ import annotations

import socket

import httpx

from livery_operator.metrics import MetricsObserver, serve_metrics


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_metrics_endpoint_serves_step_and_phase_metrics():
    port = free_port()
    observer = MetricsObserver()
    observer.step_finished("ensure_config", "success", 0.01)
    observer.step_finished("ensure_config", "KubernetesApiError", 0.02)
    observer.set_phase("metrics-probe", "Provisioning")

    serve_metrics("127.0.0.1", port)
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)

    assert response.status_code == 200
    assert 'livery_operator_step_failures_total{reason="KubernetesApiError",step="ensure_config"}' in response.text
    assert 'livery_operator_step_duration_seconds_count{step="ensure_config"}' in response.text
    assert 'livery_operator_tenants{phase="Provisioning"}' in response.text


def test_phase_gauge_moves_tenant_between_phases():
    observer = MetricsObserver()
    observer.set_phase("gauge-probe", "Provisioning")
    observer.set_phase("gauge-probe", "Ready")

    assert observer.phases == {"gauge-probe": "Ready"}
    observer.set_phase("gauge-probe", None)
    assert observer.phases == {}


def test_taken_metrics_port_names_port():
    import pytest

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(OSError) as raised:
            serve_metrics("127.0.0.1", port)

    assert f"127.0.0.1:{port}" in str(raised.value)
    assert "LIVERY_METRICS_PORT" in str(raised.value)
