"""Tenant Redis and metrics scraping under kopf: what the operator makes when both are configured.

Starts its own operator for this module, with LIVERY_TENANT_REDIS_URL and
LIVERY_METRICS_NAMESPACES set, against the API emulator and a real PostgreSQL.
"""

from __future__ import annotations

import json

import pytest
from operator_support import load_plan, unique_name, wait_for
from pydantic import SecretStr
from test_operator_e2e import RunningOperator, create_if_missing, create_ready_tenant

from livery import naming
from livery.database import DatabaseProvisioner
from livery_operator.builders import NETWORK_POLICY_NAME, REDIS_SECRET_NAME, decode_secret, secret
from livery_operator.settings import OperatorSettings

REDIS_PASSWORD = "redis-pass-7315"
REDIS_URL = f"redis://livery:{REDIS_PASSWORD}@10.0.0.9:6380/0"


@pytest.fixture(scope="module")
def operator(kube, postgres_url):
    settings = OperatorSettings(
        base_domain="saas.test",
        tenant_database_url=SecretStr(postgres_url),
        tenant_redis_url=SecretStr(REDIS_URL),
        metrics_namespaces=["monitoring"],
        resync_seconds=3.0,
        metrics_port=0,
    )
    for name in ("free", "pro", "enterprise"):
        create_if_missing(kube, "plans", load_plan(name).to_json())
    running = RunningOperator(settings, kube.kubeconfig, DatabaseProvisioner(postgres_url), None)
    running.start()
    yield running
    running.stop()
    kube.reset()


def test_app_gets_redis_url_from_secret(kube, operator):
    name = unique_name("redis")

    create_ready_tenant(kube, name, "pro")

    namespace = naming.namespace_name(name)
    redis_secret = kube.get("secrets", REDIS_SECRET_NAME, namespace)
    container = kube.get("deployments", naming.APP_NAME, namespace)["spec"]["template"]["spec"]["containers"][0]
    assert decode_secret(redis_secret) == {"LIVERY_REDIS_URL": REDIS_URL}
    assert {"secretRef": {"name": REDIS_SECRET_NAME}} in container["envFrom"]
    assert "LIVERY_REDIS_URL" not in {item["name"] for item in container.get("env", [])}


def test_network_policy_admits_redis_and_scrapers(kube, operator):
    name = unique_name("scraped")

    create_ready_tenant(kube, name, "pro")

    policy = kube.get("networkpolicies", NETWORK_POLICY_NAME, naming.namespace_name(name))["spec"]
    assert {"ports": [{"protocol": "TCP", "port": 6380}], "to": [{"ipBlock": {"cidr": "10.0.0.9/32"}}]} in policy["egress"]
    assert {
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        "ports": [{"protocol": "TCP", "port": operator.settings.app_port}],
    } in policy["ingress"]


def test_edited_redis_url_is_restored(kube, operator):
    name = unique_name("redis-edit")
    create_ready_tenant(kube, name, "pro")
    namespace = naming.namespace_name(name)
    edited = secret(name, {"LIVERY_REDIS_URL": "redis://attacker.example.com:6379/0"})

    kube.patch("secrets", REDIS_SECRET_NAME, {"data": edited["data"]}, namespace=namespace)

    wait_for(
        lambda: decode_secret(kube.get("secrets", REDIS_SECRET_NAME, namespace))["LIVERY_REDIS_URL"] == REDIS_URL,
        timeout=30,
        message="Redis URL restored",
    )


def test_added_redis_secret_key_is_removed(kube, operator):
    name = unique_name("redis-add")
    create_ready_tenant(kube, name, "pro")
    namespace = naming.namespace_name(name)
    added = secret(name, {"LIVERY_S3_ENDPOINT_URL": "http://attacker.example.com"})

    kube.patch("secrets", REDIS_SECRET_NAME, {"data": added["data"]}, namespace=namespace)

    wait_for(
        lambda: decode_secret(kube.get("secrets", REDIS_SECRET_NAME, namespace)) == {"LIVERY_REDIS_URL": REDIS_URL},
        timeout=30,
        message="added key removed",
    )


def test_redis_password_stays_hidden(kube, operator):
    name = unique_name("redis-quiet")

    create_ready_tenant(kube, name, "pro")

    tenant = kube.get("tenants", name)
    events = [event for event in kube.list("events", "default") if event["involvedObject"]["name"] == name]
    assert events
    assert REDIS_PASSWORD not in json.dumps(tenant)
    assert REDIS_PASSWORD not in json.dumps(events)
