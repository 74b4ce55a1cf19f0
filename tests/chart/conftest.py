"""Session fixtures of the chart tests.

Each rendering is made once per session: the chart with its default values,
and the chart with tests/chart/values-full.yaml, which sets every value.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import helm_python as helm
import pytest
import yaml
from chart_rendering import CHART_DIR, FULL_VALUES_FILE, Rendering, render


@pytest.fixture(scope="session")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART_DIR) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def full_values() -> dict[str, Any]:
    return yaml.safe_load(FULL_VALUES_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def default_rendering(chart: helm.Chart) -> Rendering:
    return render(chart, {})


@pytest.fixture(scope="session")
def full_rendering(chart: helm.Chart, full_values: dict[str, Any]) -> Rendering:
    return render(chart, full_values)


@pytest.fixture(scope="session", params=["default", "full"])
def rendering(request: pytest.FixtureRequest, default_rendering: Rendering, full_rendering: Rendering) -> Rendering:
    """Each of the two renderings in turn."""
    return default_rendering if request.param == "default" else full_rendering
