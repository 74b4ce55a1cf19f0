"""Property-based requests generated from the OpenAPI document never get a server error or another error shape."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from livery_control_api.app import create_app

from .conftest import ADMIN_TOKEN, ThreadedServer, api_settings


@pytest.fixture(scope="module")
def openapi_server(control_database, local_store):
    server = ThreadedServer(create_app(settings=api_settings(control_database, store="local"))).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def api_schema(openapi_server):
    return schemathesis.openapi.from_url(f"{openapi_server}/openapi.json")


def check_response(case, base_url: str) -> None:
    # The admin token reaches every route, so generated input gets past authentication.
    response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})

    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text}"
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}, f"{case.method} {case.formatted_path}: {body}"
        assert set(body["error"]) == {"code", "message", "field"}


# NOTE: schemathesis 4.32's pytest plugin (`schemathesis.pytest.from_fixture`) fails on
# pytest 9 with "'Function' object has no attribute '_nodeid'", so each operation's
# hypothesis strategy is run here directly.
def test_generated_requests_get_client_errors(api_schema, openapi_server):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 30

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
        def generated(case):
            check_response(case, openapi_server)

        generated()
