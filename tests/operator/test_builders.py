"""Pure object builders: what the operator asks the API server for, checked without a server."""

from __future__ import annotations

import dataclasses
import os

import kubernetes_validate
import pytest
from pydantic import SecretStr

from livery import naming
from livery.drivers.base import AppSpec, RouteSpec
from livery_operator import builders
from livery_operator.driver import contains, deployment_state
from livery_operator.settings import OperatorSettings

OLDEST_KUBERNETES = "1.28.0"
NEWEST_KUBERNETES = "1.37.0"


@pytest.fixture
def settings() -> OperatorSettings:
    return OperatorSettings(
        app_image="registry.example.com/livery:1.2.3",
        ingress_class="traefik",
        cert_issuer="letsencrypt",
        control_api_url="http://livery-control-api.livery.svc:8000",
        tenant_database_url=SecretStr("postgresql://admin:hunter2secret@10.0.0.7:6543/postgres"),
        ingress_namespace="traefik",
        control_api_namespace="livery",
    )


@pytest.fixture
def app() -> AppSpec:
    return AppSpec(
        tenant="acme-corp",
        replicas=2,
        cpu="500m",
        memory="512Mi",
        environment={"LIVERY_TENANT": "acme-corp", "LIVERY_ISOLATION": "schema"},
        config_checksum="abc123",
        labels=naming.labels("acme-corp", "app"),
    )


@pytest.fixture
def route() -> RouteSpec:
    return RouteSpec(tenant="acme-corp", hosts=["acme-corp.example.com", "shop.acme.test"], suspended=False)


def all_objects(app: AppSpec, route: RouteSpec, settings: OperatorSettings) -> list[dict]:
    return [
        builders.namespace("acme-corp"),
        builders.secret("acme-corp", {"LIVERY_LOGIN_KEY": "k"}),
        builders.config_map("acme-corp", {"tenant": "acme-corp"}),
        *builders.app_objects(app, settings),
        builders.ingress(route, settings),
        builders.ingress(dataclasses.replace(route, suspended=True), settings),
        builders.suspension_service("acme-corp", settings),
    ]


def test_every_object_carries_tenant_labels(app, route, settings):
    for obj in all_objects(app, route, settings):
        labels = obj["metadata"]["labels"]
        assert labels[naming.MANAGED_BY_LABEL] == "livery", obj["kind"]
        assert labels[naming.TENANT_LABEL] == "acme-corp", obj["kind"]


def test_namespaced_objects_live_in_tenant_namespace(app, route, settings):
    for obj in all_objects(app, route, settings)[1:]:
        assert obj["metadata"]["namespace"] == "tenant-acme-corp", obj["kind"]


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, NEWEST_KUBERNETES])
def test_objects_pass_kubernetes_schema(app, route, settings, version):
    for obj in all_objects(app, route, settings):
        kubernetes_validate.validate(obj, version, strict=True)


def test_deployment_container_is_hardened(app, settings):
    pod = builders.deployment(app, settings)["spec"]["template"]["spec"]
    container = pod["containers"][0]
    security = container["securityContext"]

    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False


def test_deployment_uses_plan_resources_and_probes(app, settings):
    deployment = builders.deployment(app, settings)
    container = deployment["spec"]["template"]["spec"]["containers"][0]

    assert deployment["spec"]["replicas"] == 2
    assert container["image"] == "registry.example.com/livery:1.2.3"
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "512Mi"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_deployment_reads_secret_and_mounted_config(app, settings):
    pod = builders.deployment(app, settings)["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {item["name"]: item["value"] for item in container["env"]}

    assert container["envFrom"] == [{"secretRef": {"name": naming.APP_SECRET_NAME}}]
    assert env["LIVERY_TENANT_CONFIG"] == "/etc/livery/tenant.json"
    assert {"name": "config", "mountPath": "/etc/livery", "readOnly": True} in container["volumeMounts"]
    assert {"name": "config", "configMap": {"name": naming.APP_CONFIG_NAME}} in pod["volumes"]


def test_config_change_changes_pod_template(app, settings):
    before = builders.deployment(app, settings)["spec"]["template"]
    changed = AppSpec(**{**app.__dict__, "config_checksum": "def456"})
    after = builders.deployment(changed, settings)["spec"]["template"]

    assert before["metadata"]["annotations"][builders.CHECKSUM_ANNOTATION] == "abc123"
    assert after["metadata"]["annotations"][builders.CHECKSUM_ANNOTATION] == "def456"


def test_secret_change_changes_pod_template(app, settings):
    before = builders.deployment(dataclasses.replace(app, secret_checksum="1" * 64), settings)["spec"]["template"]
    after = builders.deployment(dataclasses.replace(app, secret_checksum="2" * 64), settings)["spec"]["template"]

    assert before["metadata"]["annotations"][builders.SECRET_CHECKSUM_ANNOTATION] == "1" * 64
    assert after["metadata"]["annotations"][builders.SECRET_CHECKSUM_ANNOTATION] == "2" * 64


def test_unknown_secret_checksum_adds_no_annotation(app, settings):
    template = builders.deployment(app, settings)["spec"]["template"]

    assert builders.SECRET_CHECKSUM_ANNOTATION not in template["metadata"]["annotations"]


def test_deployment_environment_holds_no_secret_values(app, settings):
    container = builders.deployment(app, settings)["spec"]["template"]["spec"]["containers"][0]
    names = {item["name"] for item in container["env"]}

    assert "LIVERY_DATABASE_URL" not in names
    assert "LIVERY_LOGIN_KEY" not in names


def test_ingress_serves_every_host_with_tls(route, settings):
    ingress = builders.ingress(route, settings)

    assert ingress["spec"]["ingressClassName"] == "traefik"
    assert [rule["host"] for rule in ingress["spec"]["rules"]] == route.hosts
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert ingress["spec"]["tls"] == [{"hosts": route.hosts, "secretName": builders.TLS_SECRET_NAME}]


def test_ingress_without_issuer_has_no_tls(route, settings):
    plain = settings.model_copy(update={"cert_issuer": None})
    ingress = builders.ingress(route, plain)

    assert "tls" not in ingress["spec"]
    assert "cert-manager.io/cluster-issuer" not in ingress["metadata"]["annotations"]


def backend_names(ingress: dict) -> set[str]:
    return {
        path["backend"]["service"]["name"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }


def test_ingress_routes_to_app_service(route, settings):
    ingress = builders.ingress(route, settings)

    assert backend_names(ingress) == {naming.APP_NAME}
    assert ingress["metadata"]["annotations"][builders.SUSPENDED_ANNOTATION] == "false"


def test_suspended_ingress_routes_every_host_to_suspension_service(route, settings):
    suspended = dataclasses.replace(route, suspended=True)

    ingress = builders.ingress(suspended, settings)

    assert [rule["host"] for rule in ingress["spec"]["rules"]] == route.hosts
    assert backend_names(ingress) == {builders.SUSPENSION_SERVICE_NAME}
    assert ingress["metadata"]["annotations"][builders.SUSPENDED_ANNOTATION] == "true"
    assert ingress["spec"]["tls"] == [{"hosts": route.hosts, "secretName": builders.TLS_SECRET_NAME}]


def test_suspension_service_aliases_control_api(settings):
    configured = settings.model_copy(
        update={"suspension_service_host": "console.platform.svc.example.internal", "suspension_service_port": 8100}
    )

    service = builders.suspension_service("acme-corp", configured)

    assert service["metadata"]["name"] == builders.SUSPENSION_SERVICE_NAME
    assert service["spec"]["type"] == "ExternalName"
    assert service["spec"]["externalName"] == "console.platform.svc.example.internal"
    assert "selector" not in service["spec"]
    (port,) = service["spec"]["ports"]
    assert port["port"] == builders.SERVICE_PORT
    assert port["targetPort"] == 8100


def test_suspension_service_defaults_to_chart_control_api():
    service = builders.suspension_service("acme-corp", OperatorSettings())

    assert service["spec"]["externalName"] == "livery-control-api.livery.svc.cluster.local"
    assert service["spec"]["ports"][0]["targetPort"] == 8000


@pytest.mark.parametrize("host", ["Livery.Example", "http://livery-control-api", "livery_control_api.svc", "a..b", ""])
def test_suspension_host_must_be_dns_name(host):
    with pytest.raises(ValueError, match="suspension_service_host"):
        OperatorSettings(suspension_service_host=host)


def test_network_policy_denies_all_but_listed_peers(settings):
    policy = builders.network_policy("acme-corp", settings)["spec"]

    assert policy["podSelector"] == {}
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"] == [
        {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}}}]}
    ]
    dns, database, control_api = policy["egress"]
    assert {"protocol": "UDP", "port": 53} in dns["ports"]
    assert database == {"ports": [{"protocol": "TCP", "port": 6543}], "to": [{"ipBlock": {"cidr": "10.0.0.7/32"}}]}
    assert control_api["ports"] == [{"protocol": "TCP", "port": 8000}]
    assert control_api["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "livery"}


def test_network_policy_holds_no_database_password(settings):
    assert "hunter2secret" not in repr(builders.network_policy("acme-corp", settings))


def test_quota_allows_plan_replicas_plus_surge(app):
    hard = builders.resource_quota(app)["spec"]["hard"]

    assert hard["pods"] == "3"
    assert hard["limits.cpu"] == "1500m"
    assert hard["limits.memory"] == "1536Mi"


def test_limit_range_caps_containers_at_plan_size(app):
    limits = builders.limit_range(app)["spec"]["limits"][0]

    assert limits["max"] == {"cpu": "500m", "memory": "512Mi"}
    assert limits["default"] == {"cpu": "500m", "memory": "512Mi"}


def test_secret_round_trips_through_base64():
    data = {"LIVERY_LOGIN_KEY": "key-1", "LIVERY_DATABASE_URL": "postgresql://u:p@h/d"}

    assert builders.decode_secret(builders.secret("acme", data)) == data


@pytest.mark.parametrize(
    ("live", "desired", "expected"),
    [
        ({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": 2}}, True),
        ({"a": 1}, {"a": 2}, False),
        ({"a": [1, 2]}, {"a": [1]}, False),
        ({"a": [{"x": 1, "y": 2}]}, {"a": [{"x": 1}]}, True),
        ({}, {"a": None}, False),
    ],
)
def test_contains_compares_only_desired_fields(live, desired, expected):
    assert contains(live, desired) is expected


def test_deployment_state_counts_available_replicas():
    live = {"metadata": {"generation": 2}, "status": {"observedGeneration": 2, "availableReplicas": 2, "updatedReplicas": 2}}

    assert deployment_state(live, 2).ready is True
    assert deployment_state({"status": {}}, 2).ready is False
    assert deployment_state({}, 0).ready is True


def test_deployment_state_waits_for_rollout():
    live = {"metadata": {"generation": 3}, "status": {"observedGeneration": 2, "availableReplicas": 2}}

    assert deployment_state(live, 2).ready is False


def test_trusted_proxies_reach_app_environment(settings):
    from livery_operator.main import reconcile_settings

    configured = settings.model_copy(update={"trusted_proxies": "10.42.0.0/16"})

    assert reconcile_settings(configured).extra_environment == {"LIVERY_TRUSTED_PROXIES": "10.42.0.0/16"}
    assert reconcile_settings(settings).extra_environment == {}


REDIS_URL = "redis://livery:redis-pass-4821@10.0.0.9:6380/0"


@pytest.fixture
def redis_settings(settings) -> OperatorSettings:
    return settings.model_copy(
        update={"tenant_redis_url": SecretStr(REDIS_URL), "metrics_namespaces": ["monitoring", "observability"]}
    )


def test_app_objects_skip_unset_redis(app, settings):
    objects = builders.app_objects(app, settings)
    container = objects[-1]["spec"]["template"]["spec"]["containers"][0]

    assert [obj["kind"] for obj in objects] == ["ResourceQuota", "LimitRange", "NetworkPolicy", "Service", "Deployment"]
    assert container["envFrom"] == [{"secretRef": {"name": naming.APP_SECRET_NAME}}]


def test_redis_url_reaches_app_through_secret(app, redis_settings):
    objects = builders.app_objects(app, redis_settings)
    (redis_secret,) = [obj for obj in objects if obj["kind"] == "Secret"]
    deployment = objects[-1]
    container = deployment["spec"]["template"]["spec"]["containers"][0]

    assert deployment["kind"] == "Deployment"
    assert redis_secret["metadata"]["name"] == builders.REDIS_SECRET_NAME
    assert redis_secret["metadata"]["namespace"] == "tenant-acme-corp"
    assert builders.decode_secret(redis_secret) == {"LIVERY_REDIS_URL": REDIS_URL}
    assert container["envFrom"] == [
        {"secretRef": {"name": builders.REDIS_SECRET_NAME}},
        {"secretRef": {"name": naming.APP_SECRET_NAME}},
    ]
    assert "LIVERY_REDIS_URL" not in {item["name"] for item in container["env"]}
    assert "redis-pass-4821" not in repr(deployment)


def test_redis_url_change_changes_pod_template(app, settings, redis_settings):
    other = redis_settings.model_copy(update={"tenant_redis_url": SecretStr("redis://livery:new-pass-7312@10.0.0.9:6380/0")})
    before = builders.deployment(app, redis_settings)["spec"]["template"]["metadata"]["annotations"]
    after = builders.deployment(app, other)["spec"]["template"]["metadata"]["annotations"]
    without = builders.deployment(app, settings)["spec"]["template"]["metadata"]["annotations"]

    assert len(before[builders.REDIS_CHECKSUM_ANNOTATION]) == 64
    assert after[builders.REDIS_CHECKSUM_ANNOTATION] != before[builders.REDIS_CHECKSUM_ANNOTATION]
    assert builders.REDIS_CHECKSUM_ANNOTATION not in without


def pod_environment(deployment: dict, secrets: dict[str, dict]) -> dict[str, str]:
    """Return the app container's environment as the kubelet builds it: envFrom in order, then env."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    environment: dict[str, str] = {}
    for source in container["envFrom"]:
        environment.update(builders.decode_secret(secrets[source["secretRef"]["name"]]))
    environment.update({item["name"]: item["value"] for item in container["env"]})
    return environment


def test_tenant_app_reads_redis_url_from_secret(app, redis_settings, monkeypatch):
    from livery_tenant_app.settings import TenantAppSettings

    objects = builders.app_objects(app, redis_settings)
    app_secret = builders.secret(
        "acme-corp", {"LIVERY_DATABASE_URL": "postgresql://tenant_acme_corp:pw@db/app", "LIVERY_SESSION_KEY": "s" * 32}
    )
    secrets = {obj["metadata"]["name"]: obj for obj in [*objects, app_secret] if obj["kind"] == "Secret"}
    for name in [name for name in os.environ if name.startswith("LIVERY_")]:
        monkeypatch.delenv(name)
    for name, value in pod_environment(objects[-1], secrets).items():
        monkeypatch.setenv(name, value)

    assert TenantAppSettings().redis_url.get_secret_value() == REDIS_URL


def test_network_policy_admits_redis_address(redis_settings):
    policy = builders.network_policy("acme-corp", redis_settings)["spec"]

    dns, database, redis, control_api = policy["egress"]
    assert redis == {"ports": [{"protocol": "TCP", "port": 6380}], "to": [{"ipBlock": {"cidr": "10.0.0.9/32"}}]}
    assert "redis-pass-4821" not in repr(policy)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rediss://redis.cache.svc:6390", {"ports": [{"protocol": "TCP", "port": 6390}]}),
        ("redis://redis.cache.svc", {"ports": [{"protocol": "TCP", "port": 6379}]}),
        ("redis://[fd00::9]:6381/1", {"ports": [{"protocol": "TCP", "port": 6381}], "to": [{"ipBlock": {"cidr": "fd00::9/128"}}]}),
    ],
)
def test_network_policy_redis_rule_follows_url(settings, url, expected):
    configured = settings.model_copy(update={"tenant_redis_url": SecretStr(url)})

    egress = builders.network_policy("acme-corp", configured)["spec"]["egress"]

    assert egress[2] == expected


def test_network_policy_admits_metrics_namespaces(redis_settings):
    ingress = builders.network_policy("acme-corp", redis_settings)["spec"]["ingress"]

    controller, metrics = ingress
    assert controller == {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}}}]}
    assert metrics == {
        "from": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}},
        ],
        "ports": [{"protocol": "TCP", "port": 8000}],
    }


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, NEWEST_KUBERNETES])
def test_redis_and_metrics_objects_pass_schema(app, redis_settings, version):
    for obj in builders.app_objects(app, redis_settings):
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://cache.example.com:6379", "has scheme 'http'"),
        ("redis:///0", "has no host"),
        ("redis://cache.example.com:port/0", "is not a valid URL"),
    ],
)
def test_invalid_redis_url_is_rejected(monkeypatch, url, message):
    from livery.settings import SettingsError, load_settings

    monkeypatch.setenv("LIVERY_TENANT_REDIS_URL", url)

    with pytest.raises(SettingsError) as raised:
        load_settings(OperatorSettings)

    assert "LIVERY_TENANT_REDIS_URL" in str(raised.value)
    assert message in str(raised.value)


def test_redis_url_password_stays_out_of_errors(monkeypatch):
    from livery.settings import SettingsError, load_settings

    monkeypatch.setenv("LIVERY_TENANT_REDIS_URL", "http://user:redis-pass-4821@cache.example.com")

    with pytest.raises(SettingsError) as raised:
        load_settings(OperatorSettings)

    assert "redis-pass-4821" not in str(raised.value)
    assert "redis-pass-4821" not in repr(OperatorSettings(tenant_redis_url=SecretStr(REDIS_URL)))


def test_metrics_namespaces_split_on_commas(monkeypatch):
    from livery.settings import load_settings

    monkeypatch.setenv("LIVERY_METRICS_NAMESPACES", "monitoring, observability,")

    assert load_settings(OperatorSettings).metrics_namespaces == ["monitoring", "observability"]


def test_invalid_metrics_namespace_is_rejected(monkeypatch):
    from livery.settings import SettingsError, load_settings

    monkeypatch.setenv("LIVERY_METRICS_NAMESPACES", "monitoring,Prometheus_NS")

    with pytest.raises(SettingsError) as raised:
        load_settings(OperatorSettings)

    assert "LIVERY_METRICS_NAMESPACES" in str(raised.value)
    assert "'Prometheus_NS'" in str(raised.value)
