"""Validation of built-in kinds that catches operator bugs a real API server rejects."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from k8s_emulator_builtins import parse_quantity


def ingress(path: dict[str, Any], host: str = "acme.saas.test") -> dict[str, Any]:
    return {"metadata": {"name": "app"}, "spec": {"rules": [{"host": host, "http": {"paths": [path]}}]}}


VALID_PATH = {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "app", "port": {"number": 80}}}}


@pytest.mark.parametrize(
    ("value", "expected"),
    [("500m", "0.5"), ("1.5Gi", "1610612736"), ("2e3", "2000"), ("512Mi", "536870912"), ("1k", "1000")],
)
def test_quantity_parsed(value: str, expected: str) -> None:
    assert parse_quantity(value) == parse_quantity(expected)


@pytest.mark.parametrize("value", ["1GB", "1 Gi", "", "0.5.1", "m"])
def test_invalid_quantity_rejected(value: str) -> None:
    with pytest.raises(ValueError):
        parse_quantity(value)


def test_valid_ingress_accepted(http: httpx.Client) -> None:
    response = http.post("/apis/networking.k8s.io/v1/namespaces/default/ingresses", json=ingress(VALID_PATH))

    assert response.status_code == 201


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"pathType": None}, "spec.rules[0].http.paths[0].pathType"),
        ({"pathType": "Regex"}, "spec.rules[0].http.paths[0].pathType"),
        ({"path": "app"}, "spec.rules[0].http.paths[0].path"),
        ({"backend": {"service": {"name": "app"}}}, "spec.rules[0].http.paths[0].backend.service.port"),
    ],
)
def test_invalid_ingress_path_rejected(http: httpx.Client, change: dict[str, Any], field: str) -> None:
    path = {key: value for key, value in {**VALID_PATH, **change}.items() if value is not None}

    response = http.post("/apis/networking.k8s.io/v1/namespaces/default/ingresses", json=ingress(path))

    assert response.status_code == 422
    assert [cause["field"] for cause in response.json()["details"]["causes"]] == [field]


def test_ingress_wildcard_host_accepted(http: httpx.Client) -> None:
    response = http.post("/apis/networking.k8s.io/v1/namespaces/default/ingresses", json=ingress(VALID_PATH, host="*.saas.test"))

    assert response.status_code == 201


def test_container_request_above_limit_rejected(http: httpx.Client) -> None:
    container = {"name": "app", "image": "app:1", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "500m"}}}
    deployment = {
        "metadata": {"name": "app"},
        "spec": {
            "selector": {"matchLabels": {"app": "tenant"}},
            "template": {"metadata": {"labels": {"app": "tenant"}}, "spec": {"containers": [container]}},
        },
    }

    response = http.post("/apis/apps/v1/namespaces/default/deployments", json=deployment)

    assert response.status_code == 422
    assert "must be less than or equal to cpu limit" in response.json()["message"]


def test_quota_with_invalid_quantity_rejected(http: httpx.Client) -> None:
    quota = {"metadata": {"name": "quota"}, "spec": {"hard": {"requests.memory": "1GB"}}}

    response = http.post("/api/v1/namespaces/default/resourcequotas", json=quota)

    assert response.status_code == 422
    assert [cause["field"] for cause in response.json()["details"]["causes"]] == ["spec.hard[requests.memory]"]


def test_service_with_unnamed_ports_rejected(http: httpx.Client) -> None:
    service = {"metadata": {"name": "app"}, "spec": {"ports": [{"port": 80}, {"port": 443}]}}

    response = http.post("/api/v1/namespaces/default/services", json=service)

    assert response.status_code == 422
    assert [cause["field"] for cause in response.json()["details"]["causes"]] == ["spec.ports[0].name", "spec.ports[1].name"]


def test_network_policy_needs_pod_selector(http: httpx.Client) -> None:
    policy = {"metadata": {"name": "deny"}, "spec": {"policyTypes": ["Ingress"]}}

    response = http.post("/apis/networking.k8s.io/v1/namespaces/default/networkpolicies", json=policy)

    assert response.status_code == 422
    assert [cause["field"] for cause in response.json()["details"]["causes"]] == ["spec.podSelector"]


def test_config_map_key_with_slash_rejected(http: httpx.Client) -> None:
    config_map = {"metadata": {"name": "config"}, "data": {"tenant/config.json": "{}"}}

    response = http.post("/api/v1/namespaces/default/configmaps", json=config_map)

    assert response.status_code == 422


def test_wrong_json_type_is_bad_request(http: httpx.Client) -> None:
    config_map = {"metadata": {"name": "config"}, "data": {"replicas": 3}}

    response = http.post("/api/v1/namespaces/default/configmaps", json=config_map)

    assert response.status_code == 400
    assert "data.replicas" in response.json()["message"]


def test_service_port_without_number_rejected(http: httpx.Client) -> None:
    service = {"metadata": {"name": "app"}, "spec": {"ports": [{"name": "http", "targetPort": 8080}]}}

    response = http.post("/api/v1/namespaces/default/services", json=service)

    assert response.status_code == 422
    assert "spec.ports[0].port" in [cause["field"] for cause in response.json()["details"]["causes"]]


def test_unknown_builtin_field_dropped(http: httpx.Client) -> None:
    config_map = {"metadata": {"name": "config", "labelz": {"a": "b"}}, "data": {"a": "1"}, "extra": True}

    response = http.post("/api/v1/namespaces/default/configmaps", json=config_map)

    assert response.status_code == 201
    assert "extra" not in response.json()
    assert "labelz" not in response.json()["metadata"]


def test_unknown_builtin_field_rejected_when_strict(http: httpx.Client) -> None:
    config_map = {"metadata": {"name": "config"}, "data": {"a": "1"}, "extra": True}

    response = http.post("/api/v1/namespaces/default/configmaps", params={"fieldValidation": "Strict"}, json=config_map)

    assert response.status_code == 400
    assert 'unknown field "extra"' in response.json()["message"]
