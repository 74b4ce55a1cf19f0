"""The chart gives the operator the address of the control API Service that serves suspension pages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import helm_python as helm
import pytest
import yaml

from chart_rendering import CHART_DIR, FULL_VALUES_FILE, RELEASE_NAMESPACE, Rendering, render


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART_DIR) as loaded:
        yield loaded


def operator_environment(rendering: Rendering) -> dict[str, str]:
    (container,) = rendering.one("Deployment", "-operator")["spec"]["template"]["spec"]["containers"]
    return {variable["name"]: variable.get("value") for variable in container["env"]}


def test_default_suspension_host_is_control_api_fqdn(chart):
    rendering = render(chart, {})
    variables = operator_environment(rendering)
    service = rendering.one("Service", "-control-api")
    (port,) = service["spec"]["ports"]

    assert variables["LIVERY_SUSPENSION_SERVICE_HOST"] == f"{service['metadata']['name']}.{RELEASE_NAMESPACE}.svc.cluster.local"
    assert variables["LIVERY_SUSPENSION_SERVICE_PORT"] == str(port["port"])


def test_full_values_set_suspension_host_and_port(chart):
    values: dict[str, Any] = yaml.safe_load(FULL_VALUES_FILE.read_text())
    variables = operator_environment(render(chart, values))

    assert variables["LIVERY_SUSPENSION_SERVICE_HOST"] == f"acme-saas-control-api.{RELEASE_NAMESPACE}.svc.corp.internal"
    assert variables["LIVERY_SUSPENSION_SERVICE_PORT"] == "8100"
