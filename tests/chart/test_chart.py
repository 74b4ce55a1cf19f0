"""The Helm chart renders, lints and validates, and keeps its security and secret rules.

Every test works on the chart rendered by Helm's Go library (see
chart_rendering.py), made once per session with the default values and once
with values-full.yaml, which sets every value.
"""

from __future__ import annotations

import http.server
import importlib.util
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from livery.crds import all_crds, render_crd
from livery.naming import CONTROL_SECRET_NAME, TENANT_EVENT_NAMESPACE
from livery.manifests import validate_data
from livery.settings import load_settings
from livery_operator.handlers import build_registry
from livery_operator.kube import KINDS as OPERATOR_KINDS

from chart_rendering import CHART_DIR, FULL_VALUES_FILE, RELEASE_NAMESPACE, REPO_ROOT, Rendering, render

# The chart's `kubeVersion` starts at 1.28, the first release whose API server
# accepts `reason` and `fieldPath` on CRD validation rules. The newest is the
# newest release that kubernetes-validate ships schemas for.
OLDEST_KUBERNETES = "1.28.0"
NEWEST_KUBERNETES = kubernetes_validate.utils.latest_version()

LIVERY_CRD_FILES = ("tenants.livery.dev.yaml", "plans.livery.dev.yaml")

# Environment variables that carry credentials: each must come from a Secret key.
CREDENTIAL_VARIABLES = {
    "LIVERY_DATABASE_URL",
    "LIVERY_TENANT_DATABASE_URL",
    "LIVERY_ADMIN_TOKEN",
    "LIVERY_JWT_SECRET",
    "LIVERY_STRIPE_API_KEY",
    "LIVERY_STRIPE_WEBHOOK_SECRET",
    "LIVERY_REDIS_URL",
    "LIVERY_TENANT_REDIS_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
}

# Patterns of credentials: a URL with a password, Stripe keys, AWS access key
# ids and PEM private keys.
CREDENTIAL_PATTERNS = [
    re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@\"']+:[^/\s@\"']+@"),
    re.compile(r"\b(sk|rk)_(live|test)_[0-9A-Za-z]{8,}"),
    re.compile(r"\bwhsec_[0-9A-Za-z]{8,}"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
]


def _load_crd_verdict() -> Any:
    """Import tests/foundation/crd_verdict.py, which judges Tenant and Plan objects as the API server does."""
    path = REPO_ROOT / "tests" / "foundation" / "crd_verdict.py"
    spec = importlib.util.spec_from_file_location("livery_tests_crd_verdict", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


crd_verdict = _load_crd_verdict()


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


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    """Return the pod spec of a Pod or of a Deployment's pod template."""
    return workload["spec"] if workload["kind"] == "Pod" else workload["spec"]["template"]["spec"]


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    pod = pod_spec(workload)
    return pod.get("initContainers", []) + pod["containers"]


def environment(deployment: dict[str, Any], container: str) -> dict[str, dict[str, Any]]:
    """Return the container's environment variables keyed by name."""
    (found,) = [item for item in containers(deployment) if item["name"] == container]
    return {variable["name"]: variable for variable in found.get("env", [])}


# Values that the templates pass on whole as Kubernetes objects (or merge into
# a plan), so their inner keys are not chart values of their own.
WHOLE_OBJECT_VALUES = {
    "podSecurityContext",
    "securityContext",
    "resources",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "affinity",
    "annotations",
    "labels",
    "podAnnotations",
    "nodeSelector",
    "overrides",
}


def value_paths(values: Any, prefix: str = "") -> Iterator[str]:
    """Yield the dotted path of every chart value. A list, an empty map or a whole object counts as one value."""
    name = prefix.rstrip(".").rsplit(".", 1)[-1]
    if isinstance(values, dict) and values and name not in WHOLE_OBJECT_VALUES:
        for key, child in values.items():
            yield from value_paths(child, f"{prefix}{key}.")
    else:
        yield prefix.rstrip(".")


# Rendering and linting.


def test_default_render_contains_every_component(default_rendering: Rendering) -> None:
    kinds = sorted({(obj["kind"], obj["metadata"]["name"]) for obj in default_rendering.objects})

    assert kinds == [
        ("ClusterRole", "livery-control-api"),
        ("ClusterRole", "livery-operator"),
        ("ClusterRoleBinding", "livery-control-api"),
        ("ClusterRoleBinding", "livery-operator"),
        ("Deployment", "livery-control-api"),
        ("Deployment", "livery-operator"),
        ("Ingress", "livery-control-api"),
        ("NetworkPolicy", "livery-control-api"),
        ("NetworkPolicy", "livery-operator"),
        ("Plan", "enterprise"),
        ("Plan", "free"),
        ("Plan", "pro"),
        ("Pod", "livery-test-control-api"),
        ("PodDisruptionBudget", "livery-control-api"),
        ("Role", "livery-control-api-events"),
        ("RoleBinding", "livery-control-api-events"),
        ("Service", "livery-control-api"),
        ("Service", "livery-operator-metrics"),
        ("ServiceAccount", "livery-control-api"),
        ("ServiceAccount", "livery-operator"),
    ]


def test_namespaced_objects_go_to_release_namespace(rendering: Rendering) -> None:
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "Plan", "Tenant", "CustomResourceDefinition"}
    for obj in rendering.objects:
        if obj["kind"] in cluster_scoped:
            assert "namespace" not in obj["metadata"], f"{obj['kind']} {obj['metadata']['name']}"
        elif obj["metadata"]["name"].endswith("-control-api-events"):
            assert obj["metadata"]["namespace"] == TENANT_EVENT_NAMESPACE, f"{obj['kind']} {obj['metadata']['name']}"
        else:
            assert obj["metadata"].get("namespace") == RELEASE_NAMESPACE, f"{obj['kind']} {obj['metadata']['name']}"


@pytest.mark.parametrize("kube_version", [OLDEST_KUBERNETES, NEWEST_KUBERNETES])
@pytest.mark.parametrize("values_name", ["default", "full"])
def test_chart_lints_clean(kube_version: str, values_name: str, full_values: dict[str, Any]) -> None:
    values = full_values if values_name == "full" else None

    report = helm.lint(CHART_DIR, values, strict=True, namespace=RELEASE_NAMESPACE, kube_version=f"v{kube_version}")

    assert report["errors"] == []
    # Severity 1 is informational, such as "icon is recommended". Warnings are 2 and errors 3.
    findings = [message for message in report["messages"] if message["severity"] >= 2]
    assert findings == []


# Validation against the Kubernetes API schemas.


def test_chart_requires_oldest_validated_version(chart: helm.Chart) -> None:
    assert chart.metadata["kubeVersion"] == f">={OLDEST_KUBERNETES}-0"



@pytest.mark.parametrize("kube_version", [OLDEST_KUBERNETES, NEWEST_KUBERNETES])
def test_rendered_objects_match_kubernetes_schemas(rendering: Rendering, kube_version: str) -> None:
    checked = 0
    for obj in rendering.objects:
        # Plans are checked against their CRD below. kubernetes-validate has no
        # schema for the Prometheus Operator's kinds, so test_service_monitor_matches_schema
        # and test_pod_monitor_matches_schema check those.
        if obj["apiVersion"].split("/")[0] in ("livery.dev", "monitoring.coreos.com"):
            continue
        kubernetes_validate.validate(obj, kube_version, strict=True)
        checked += 1

    skipped = len(rendering.of_kind("Plan")) + len(rendering.of_kind("ServiceMonitor")) + len(rendering.of_kind("PodMonitor"))
    assert checked == len(rendering.objects) - skipped


@pytest.mark.parametrize("kube_version", [OLDEST_KUBERNETES, NEWEST_KUBERNETES])
def test_chart_crds_match_kubernetes_schema(chart: helm.Chart, kube_version: str) -> None:
    for crd in chart.crds:
        kubernetes_validate.validate(yaml.safe_load(crd["data"]), kube_version, strict=True)


def test_rendered_plans_pass_crd_validation(rendering: Rendering) -> None:
    plans = rendering.of_kind("Plan")

    assert plans
    for plan in plans:
        assert crd_verdict.crd_errors(plan) == [], plan["metadata"]["name"]
        assert validate_data(plan)[1] == [], plan["metadata"]["name"]


# CRDs and plans are copies of the generated and built-in ones.


def test_chart_crds_equal_generated_crds(chart: helm.Chart) -> None:
    chart_files = {Path(crd["filename"]).name: crd["data"] for crd in chart.crds}

    assert sorted(chart_files) == sorted(LIVERY_CRD_FILES)
    for file_name, crd in all_crds().items():
        assert chart_files[file_name] == render_crd(crd), f"charts/livery/crds/{file_name} is stale; copy crds/{file_name}"
        assert chart_files[file_name] == (REPO_ROOT / "crds" / file_name).read_text(encoding="utf-8")


def test_default_plans_equal_builtin_plans(default_rendering: Rendering) -> None:
    builtin = {}
    for path in sorted((REPO_ROOT / "livery" / "plans").glob("*.yaml")):
        plan = yaml.safe_load(path.read_text(encoding="utf-8"))
        builtin[plan["metadata"]["name"]] = plan
    rendered = {plan["metadata"]["name"]: plan for plan in default_rendering.of_kind("Plan")}

    assert sorted(rendered) == sorted(builtin) == ["enterprise", "free", "pro"]
    for name, plan in builtin.items():
        assert rendered[name]["apiVersion"] == plan["apiVersion"]
        assert rendered[name]["spec"] == plan["spec"], name


def test_chart_plan_files_equal_builtin_plan_files() -> None:
    chart_files = {path.name: path.read_bytes() for path in (CHART_DIR / "plans").glob("*.yaml")}
    builtin_files = {path.name: path.read_bytes() for path in (REPO_ROOT / "livery" / "plans").glob("*.yaml")}

    assert chart_files == builtin_files


def test_plan_overrides_merge_into_spec(full_rendering: Rendering, default_rendering: Rendering) -> None:
    pro = full_rendering.one("Plan", "pro")
    default_pro = default_rendering.one("Plan", "pro")
    enterprise = full_rendering.one("Plan", "enterprise")

    assert pro["spec"]["billing"]["stripePriceId"] == "price_AcmeProMonthly"
    assert pro["spec"]["billing"]["monthlyPriceCents"] == default_pro["spec"]["billing"]["monthlyPriceCents"]
    assert pro["spec"]["limits"] == default_pro["spec"]["limits"]
    assert enterprise["spec"]["limits"]["users"] == 1000


def test_plans_kept_on_uninstall_by_default(default_rendering: Rendering, full_rendering: Rendering) -> None:
    for plan in default_rendering.of_kind("Plan"):
        assert plan["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    for plan in full_rendering.of_kind("Plan"):
        assert "helm.sh/resource-policy" not in plan["metadata"].get("annotations", {})


def test_plans_left_out_when_disabled(chart: helm.Chart) -> None:
    rendering = render(chart, {"plans": {"create": False}})

    assert rendering.of_kind("Plan") == []


# RBAC.


def test_cluster_roles_have_no_wildcards(rendering: Rendering) -> None:
    roles = rendering.of_kind("ClusterRole")

    assert len(roles) == 2
    for role in roles:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(field, []), f"{role['metadata']['name']}: {field} {rule}"
            assert not any(resource.endswith("/*") for resource in rule["resources"])
            assert "nonResourceURLs" not in rule


def grants(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """Return the verbs a ClusterRole grants, keyed by (API group, resource)."""
    result: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                result.setdefault((group, resource), set()).update(rule["verbs"])
    return result


def api_group(kind: str) -> str:
    """Return the API group of a kind the operator's kube client handles ("" for the core group)."""
    prefix = OPERATOR_KINDS[kind].prefix
    return prefix.removeprefix("/apis/").rsplit("/", 1)[0] if prefix.startswith("/apis/") else ""


def operator_watched_resources() -> set[tuple[str, str]]:
    """Return (API group, resource) of everything the operator's kopf handlers list and watch."""
    registry = build_registry(SimpleNamespace(known_tenants=set()), resync_seconds=60)  # type: ignore[arg-type]
    # kopf 1.45 has no public way to enumerate handlers, so this reads its registries.
    handlers = [
        *registry._indexing.get_all_handlers(),
        *registry._watching.get_all_handlers(),
        *registry._changing.get_all_handlers(),
    ]
    return {(handler.selector.group or "", handler.selector.any_name) for handler in handlers}


def operator_requests() -> dict[tuple[str, str], set[str]]:
    """Return the verbs the operator sends, derived from its kube client's kinds and its kopf handlers.

    The kube client reads tenant objects by name and writes them with create, server-side
    apply (patch) and delete. It reads Tenants and Plans and patches their status, kopf
    patches them for finalizers and annotations, and kopf lists and watches CRDs.
    """
    requests: dict[tuple[str, str], set[str]] = {}
    for kind, info in OPERATOR_KINDS.items():
        if kind in ("Tenant", "Plan"):
            verbs = {"get", "patch"}
            requests[(api_group(kind), f"{info.plural}/status")] = {"patch"}
        elif kind == "Event":
            verbs = {"create"}
        else:
            verbs = {"create", "get", "patch", "delete"}
        requests[(api_group(kind), info.plural)] = verbs
    for resource in operator_watched_resources():
        requests.setdefault(resource, set()).update({"list", "watch"})
    requests[("apiextensions.k8s.io", "customresourcedefinitions")] = {"list", "watch"}
    return requests


def test_operator_role_grants_only_used_verbs(default_rendering: Rendering) -> None:
    role = default_rendering.one("ClusterRole", "-operator")

    assert grants(role) == operator_requests()


def test_operator_role_lists_only_watched_kinds(default_rendering: Rendering) -> None:
    granted = grants(default_rendering.one("ClusterRole", "-operator"))

    listed = {resource for resource, verbs in granted.items() if verbs & {"list", "watch"}}
    assert listed == {
        ("livery.dev", "tenants"),
        ("livery.dev", "plans"),
        ("apps", "deployments"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
    }


def test_operator_role_covers_every_kind_the_operator_writes(default_rendering: Rendering) -> None:
    granted = grants(default_rendering.one("ClusterRole", "-operator"))

    for kind, info in OPERATOR_KINDS.items():
        assert (api_group(kind), info.plural) in granted, f"the operator's kube client handles {kind}, the ClusterRole does not"


def test_control_api_role_reads_only_control_secrets(default_rendering: Rendering) -> None:
    role = default_rendering.one("ClusterRole", "-control-api")
    (secret_rule,) = [rule for rule in role["rules"] if "secrets" in rule["resources"]]

    assert secret_rule["resourceNames"] == [CONTROL_SECRET_NAME]
    assert secret_rule["verbs"] == ["get"]


def test_control_api_role_cannot_touch_workloads(default_rendering: Rendering) -> None:
    granted = grants(default_rendering.one("ClusterRole", "-control-api"))

    assert set(granted) == {
        ("livery.dev", "tenants"),
        ("livery.dev", "plans"),
        ("", "secrets"),
    }
    assert "watch" not in granted[("livery.dev", "tenants")]


def test_control_api_lists_events_in_one_namespace(default_rendering: Rendering) -> None:
    role = default_rendering.one("Role", "-control-api-events")
    binding = default_rendering.one("RoleBinding", "-control-api-events")
    account = default_rendering.one("ServiceAccount", "-control-api")

    assert role["metadata"]["namespace"] == TENANT_EVENT_NAMESPACE
    assert role["rules"] == [{"apiGroups": [""], "resources": ["events"], "verbs": ["list"]}]
    assert binding["metadata"]["namespace"] == TENANT_EVENT_NAMESPACE
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": RELEASE_NAMESPACE}
    ]


def test_role_bindings_name_release_service_accounts(rendering: Rendering) -> None:
    accounts = {account["metadata"]["name"] for account in rendering.of_kind("ServiceAccount")}
    roles = {role["metadata"]["name"] for role in rendering.of_kind("ClusterRole")}

    for binding in rendering.of_kind("ClusterRoleBinding"):
        assert binding["roleRef"]["name"] in roles
        (subject,) = binding["subjects"]
        assert subject["name"] in accounts
        assert subject["namespace"] == RELEASE_NAMESPACE
    for deployment in rendering.of_kind("Deployment"):
        assert deployment["spec"]["template"]["spec"]["serviceAccountName"] in accounts


# Pod security.


def test_pods_run_restricted(rendering: Rendering) -> None:
    workloads = rendering.of_kind("Deployment") + rendering.of_kind("Pod")

    assert len(workloads) == 3
    for deployment in workloads:
        name = deployment["metadata"]["name"]
        pod = pod_spec(deployment)
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        for container in containers(deployment):
            context = container["securityContext"]
            where = f"{name}/{container['name']}"
            assert context["runAsNonRoot"] is True, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in context["capabilities"], where
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert context.get("privileged", False) is False, where


def test_deployments_have_probes_and_resources(rendering: Rendering) -> None:
    for deployment in rendering.of_kind("Deployment"):
        for container in containers(deployment):
            where = f"{deployment['metadata']['name']}/{container['name']}"
            assert "livenessProbe" in container, where
            assert container["resources"]["requests"]["memory"], where
            assert container["resources"]["limits"]["memory"], where
    control_api = rendering.one("Deployment", "-control-api")
    assert control_api["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_probes_name_declared_ports(rendering: Rendering) -> None:
    for deployment in rendering.of_kind("Deployment"):
        for container in containers(deployment):
            ports = {port["name"] for port in container.get("ports", [])}
            for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
                probe = container.get(probe_name)
                if probe and "httpGet" in probe:
                    assert probe["httpGet"]["port"] in ports, f"{deployment['metadata']['name']} {probe_name}"


def test_writable_tmp_is_mounted(rendering: Rendering) -> None:
    for deployment in rendering.of_kind("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        for container in containers(deployment):
            mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]]


def test_operator_never_runs_two_pods(rendering: Rendering) -> None:
    operator = rendering.one("Deployment", "-operator")

    assert operator["spec"]["replicas"] <= 1
    assert operator["spec"]["strategy"] == {"type": "Recreate"}


def test_pod_disruption_budget_selects_control_api_pods(rendering: Rendering) -> None:
    budget = rendering.one("PodDisruptionBudget", "-control-api")
    control_api = rendering.one("Deployment", "-control-api")

    assert budget["spec"]["selector"] == control_api["spec"]["selector"]
    assert budget["spec"]["maxUnavailable"] == rendering.values.get("controlApi", {}).get("podDisruptionBudget", {}).get(
        "maxUnavailable", 1
    )


# Secrets.


def test_credentials_come_from_secret_key_refs(rendering: Rendering) -> None:
    seen = set()
    for deployment in rendering.of_kind("Deployment"):
        for container in containers(deployment):
            for name, variable in environment(deployment, container["name"]).items():
                if name in CREDENTIAL_VARIABLES:
                    seen.add(name)
                    assert "value" not in variable, f"{name} in {deployment['metadata']['name']} has a literal value"
                    assert variable["valueFrom"]["secretKeyRef"]["key"], name

    assert seen == CREDENTIAL_VARIABLES


def test_required_credentials_are_not_optional(default_rendering: Rendering) -> None:
    operator = environment(default_rendering.one("Deployment", "-operator"), "operator")
    control_api = environment(default_rendering.one("Deployment", "-control-api"), "control-api")

    assert operator["LIVERY_TENANT_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["optional"] is False
    assert control_api["LIVERY_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["optional"] is False
    assert control_api["LIVERY_JWT_SECRET"]["valueFrom"]["secretKeyRef"]["optional"] is False
    assert control_api["LIVERY_STRIPE_API_KEY"]["valueFrom"]["secretKeyRef"]["optional"] is True


def test_operator_gets_no_control_credentials(default_rendering: Rendering) -> None:
    operator = environment(default_rendering.one("Deployment", "-operator"), "operator")

    assert "LIVERY_DATABASE_URL" not in operator
    assert "LIVERY_REDIS_URL" not in operator
    assert "AWS_ACCESS_KEY_ID" not in operator
    assert "AWS_SECRET_ACCESS_KEY" not in operator


def test_operator_gets_s3_keys_with_bucket(full_rendering: Rendering) -> None:
    operator = environment(full_rendering.one("Deployment", "-operator"), "operator")

    assert full_rendering.values["storage"]["s3"]["bucket"]
    assert operator["LIVERY_S3_BUCKET"]["value"] == full_rendering.values["storage"]["s3"]["bucket"]
    assert operator["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert operator["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert "LIVERY_DATABASE_URL" not in operator
    assert "LIVERY_REDIS_URL" not in operator


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"secrets": {"tenantDatabaseUrl": {"key": ""}}}, "/secrets/tenantDatabaseUrl/key"),
        ({"secrets": {"tenantDatabaseUrl": None}}, "tenantDatabaseUrl"),
    ],
    ids=["empty-key", "null"],
)
def test_missing_tenant_database_url_is_rejected(chart: helm.Chart, values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmValuesError) as raised:
        chart.render(values, name="livery", namespace=RELEASE_NAMESPACE)

    assert message in str(raised.value)


def test_release_name_with_digit_is_rejected(chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmRenderError) as raised:
        chart.render({}, name="1abc", namespace=RELEASE_NAMESPACE)

    assert 'invalid release name "1abc"' in str(raised.value)
    assert "fullnameOverride" in str(raised.value)


def test_fullname_override_fixes_digit_release(chart: helm.Chart) -> None:
    texts = chart.render({"fullnameOverride": "abc"}, name="1abc", namespace=RELEASE_NAMESPACE, is_install=True)
    services = [
        document
        for path, text in texts.items()
        if not path.endswith("NOTES.txt")
        for document in yaml.safe_load_all(text)
        if document and document["kind"] == "Service"
    ]

    assert services
    for service in services:
        assert re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", service["metadata"]["name"]), service["metadata"]["name"]


@pytest.mark.parametrize("override", ["1abc", "-abc", "Abc", "a_b"])
def test_schema_rejects_bad_fullname_override(chart: helm.Chart, override: str) -> None:
    with pytest.raises(helm.HelmValuesError) as raised:
        chart.render({"fullnameOverride": override}, name="livery", namespace=RELEASE_NAMESPACE)

    assert "/fullnameOverride" in str(raised.value)


def test_secret_references_follow_values(full_rendering: Rendering) -> None:
    control_api = environment(full_rendering.one("Deployment", "-control-api"), "control-api")
    operator = environment(full_rendering.one("Deployment", "-operator"), "operator")

    assert control_api["LIVERY_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "control-database",
        "key": "url",
        "optional": False,
    }
    assert control_api["LIVERY_STRIPE_WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "stripe"
    assert operator["LIVERY_TENANT_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "tenant-database"


def test_chart_renders_no_secret_objects(rendering: Rendering) -> None:
    assert rendering.of_kind("Secret") == []


def test_rendered_text_contains_no_credentials(rendering: Rendering) -> None:
    for path, text in rendering.texts.items():
        for pattern in CREDENTIAL_PATTERNS:
            assert not pattern.search(text), f"{path} matches {pattern.pattern}"


@pytest.mark.parametrize(
    "values",
    [
        {"secrets": {"databaseUrl": "postgresql://livery:hunter2@db:5432/livery"}},
        {"secrets": {"databaseUrl": {"key": "url", "value": "postgresql://livery:hunter2@db:5432/livery"}}},
        {"databaseUrl": "postgresql://livery:hunter2@db:5432/livery"},
        {"controlApi": {"password": "hunter2"}},
    ],
    ids=["url-instead-of-ref", "value-in-ref", "top-level-url", "unknown-key"],
)
def test_schema_rejects_secret_values(chart: helm.Chart, values: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmValuesError):
        chart.render(values, name="livery", namespace=RELEASE_NAMESPACE)


# Values and their schema.


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"baseDomain": "Not A Domain"}, "/baseDomain"),
        ({"baseDomain": ""}, "/baseDomain"),
        ({"operator": {"replicas": 2}}, "/operator/replicas"),
        ({"controlApi": {"replicas": -1}}, "/controlApi/replicas"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"ingress": {"scheme": "ftp"}}, "/ingress/scheme"),
        ({"ingress": {"className": ""}}, "/ingress/className"),
        ({"operator": {"resyncSeconds": 120}}, "/operator/resyncSeconds"),
        ({"controlApi": {"podDisruptionBudget": {"maxUnavailable": "half"}}}, "/controlApi/podDisruptionBudget/maxUnavailable"),
        ({"plans": {"overrides": {"gold": {"displayName": "Gold"}}}}, "gold"),
        ({"storage": {"s3": {"endpointUrl": "minio:9000"}}}, "/storage/s3/endpointUrl"),
        ({"logLevel": "TRACE"}, "/logLevel"),
    ],
)
def test_schema_rejects_invalid_value(chart: helm.Chart, values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmValuesError) as caught:
        chart.validate_schema(values)

    assert message in str(caught.value)


def test_schema_accepts_full_values(chart: helm.Chart, full_values: dict[str, Any]) -> None:
    chart.validate_schema(full_values)


def test_full_values_set_every_default_key(chart: helm.Chart, full_values: dict[str, Any]) -> None:
    defaults = set(value_paths(chart.values))
    full = set(value_paths(full_values))

    assert defaults - full == set()


def test_readme_lists_every_value(chart: helm.Chart) -> None:
    readme = (CHART_DIR / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.MULTILINE))

    assert set(value_paths(chart.values)) - listed == set()
    assert listed - set(value_paths(chart.values)) == set()


def test_values_file_comments_every_key(chart: helm.Chart) -> None:
    lines = (CHART_DIR / "values.yaml").read_text(encoding="utf-8").splitlines()
    values = set(value_paths(chart.values))
    sections = {".".join(path.split(".")[:depth]) for path in values for depth in range(1, path.count(".") + 1)}
    stack: list[tuple[int, str]] = []

    commented = set()
    for number, line in enumerate(lines):
        key = re.match(r"^(\s*)([A-Za-z][A-Za-z0-9]*):", line)
        if not key:
            continue
        indent = len(key.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([name for _, name in stack] + [key.group(2)])
        stack.append((indent, key.group(2)))
        if path in values or path in sections:
            previous = lines[number - 1].strip() if number else ""
            assert previous.startswith("#"), f"values.yaml line {number + 1}: {path} has no comment above it"
            commented.add(path)

    assert values - commented == set()


# What the values change.


def test_full_values_reach_operator_environment(full_rendering: Rendering) -> None:
    variables = environment(full_rendering.one("Deployment", "-operator"), "operator")

    def value(name: str) -> str:
        return variables[name]["value"]

    assert value("LIVERY_BASE_DOMAIN") == "apps.example.com"
    assert value("LIVERY_APP_IMAGE") == "registry.example.com/acme/tenant-app:4.5.6"
    assert value("LIVERY_INGRESS_CLASS") == "haproxy"
    assert value("LIVERY_INGRESS_NAMESPACE") == "haproxy-controller"
    assert value("LIVERY_CERT_ISSUER") == "letsencrypt-production"
    assert value("LIVERY_URL_SCHEME") == "https"
    assert value("LIVERY_URL_PORT") == "8443"
    assert value("LIVERY_METRICS_PORT") == "9400"
    assert value("LIVERY_RESYNC_SECONDS") == "15"
    assert value("LIVERY_S3_BUCKET") == "acme-livery-files"
    assert value("LIVERY_CONTROL_API_URL") == f"http://acme-saas-control-api.{RELEASE_NAMESPACE}.svc:8100"
    assert value("LIVERY_CONTROL_API_NAMESPACE") == RELEASE_NAMESPACE
    assert value("LIVERY_METRICS_NAMESPACES") == "monitoring,observability"
    assert value("LIVERY_EXTRA_OPERATOR_SETTING") == "on"
    assert variables["LIVERY_TENANT_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "tenant-redis",
        "key": "url",
        "optional": True,
    }


def test_default_operator_environment(default_rendering: Rendering) -> None:
    variables = environment(default_rendering.one("Deployment", "-operator"), "operator")

    assert "LIVERY_METRICS_NAMESPACES" not in variables
    assert variables["LIVERY_TENANT_REDIS_URL"]["valueFrom"]["secretKeyRef"]["key"] == "tenant-redis-url"
    assert variables["LIVERY_TENANT_REDIS_URL"]["valueFrom"]["secretKeyRef"]["optional"] is True


def test_full_values_reach_control_api_environment(full_rendering: Rendering) -> None:
    variables = environment(full_rendering.one("Deployment", "-control-api"), "control-api")

    assert variables["LIVERY_PUBLIC_URL"]["value"] == "https://signup.apps.example.com:8443"
    assert variables["LIVERY_SECURE_COOKIES"]["value"] == "true"
    assert variables["LIVERY_ENVIRONMENT"]["value"] == "production"
    assert variables["LIVERY_STORE"]["value"] == "kubernetes"
    assert variables["LIVERY_EXTRA_CONTROL_API_SETTING"]["value"] == "on"


def test_tenant_app_image_defaults_to_livery_image(default_rendering: Rendering, chart: helm.Chart) -> None:
    variables = environment(default_rendering.one("Deployment", "-operator"), "operator")
    (container,) = default_rendering.one("Deployment", "-operator")["spec"]["template"]["spec"]["containers"]

    assert variables["LIVERY_APP_IMAGE"]["value"] == container["image"] == f"livery:{chart.metadata['appVersion']}"


def test_ingress_carries_tls_and_issuer(full_rendering: Rendering) -> None:
    ingress = full_rendering.one("Ingress", "-control-api")

    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt-production"
    assert ingress["spec"]["ingressClassName"] == "haproxy"
    assert ingress["spec"]["tls"] == [{"hosts": ["signup.apps.example.com"], "secretName": "signup-tls"}]
    assert ingress["spec"]["rules"][0]["host"] == "signup.apps.example.com"


def test_default_ingress_serves_console_host_without_tls(default_rendering: Rendering) -> None:
    ingress = default_rendering.one("Ingress", "-control-api")

    assert ingress["spec"]["rules"][0]["host"] == "console.livery.example.com"
    assert "tls" not in ingress["spec"]


def test_ingress_left_out_when_disabled(chart: helm.Chart) -> None:
    rendering = render(chart, {"controlApi": {"ingress": {"enabled": False}}})

    assert rendering.of_kind("Ingress") == []
    assert "(no Ingress)" in rendering.texts["livery/templates/NOTES.txt"]


def test_object_names_fit_dns_labels(chart: helm.Chart) -> None:
    rendering = render(chart, {"fullnameOverride": "a" * 40})

    for obj in rendering.objects:
        assert len(obj["metadata"]["name"]) <= 63, obj["metadata"]["name"]


def test_notes_warn_about_placeholders(default_rendering: Rendering, full_rendering: Rendering) -> None:
    default_notes = default_rendering.texts["livery/templates/NOTES.txt"]
    full_notes = full_rendering.texts["livery/templates/NOTES.txt"]

    assert "baseDomain is still the placeholder" in default_notes
    assert "storage.s3.bucket is empty" in default_notes
    assert "placeholder" not in full_notes
    assert "storage.s3.bucket is empty" not in full_notes


# The image.


def test_dockerfile_user_matches_chart_user(chart: helm.Chart) -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    user = chart.values["podSecurityContext"]["runAsUser"]

    assert re.search(rf"^USER {user}(:\d+)?$", dockerfile, flags=re.MULTILINE)
    assert re.search(r'^ENTRYPOINT \["livery"\]$', dockerfile, flags=re.MULTILINE)
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, flags=re.MULTILINE)


# The programs accept the environment the chart gives them.


def pod_environment(rendering: Rendering, deployment_suffix: str, container: str) -> dict[str, str]:
    """Return the container's environment as the kubelet would set it, with every Secret key present.

    Each secretKeyRef gets a stand-in value (URLs shaped like real ones), so the
    settings classes validate a pod with every optional credential set.
    """
    stand_ins = {
        "LIVERY_DATABASE_URL": "postgresql://livery:stand-in@db.example.com:5432/livery",
        "LIVERY_TENANT_DATABASE_URL": "postgresql://livery_admin:stand-in@db.example.com:5432/postgres",
        "LIVERY_REDIS_URL": "redis://redis.example.com:6379/0",
        "LIVERY_TENANT_REDIS_URL": "redis://tenant-apps:stand-in@redis.example.com:6379/1",
        "LIVERY_JWT_SECRET": "j" * 48,
        "LIVERY_ADMIN_TOKEN": "a" * 48,
        "LIVERY_STRIPE_API_KEY": "stripe-api-key-stand-in",
        "LIVERY_STRIPE_WEBHOOK_SECRET": "stripe-webhook-secret-stand-in",
        "AWS_ACCESS_KEY_ID": "access-key-id-stand-in",
        "AWS_SECRET_ACCESS_KEY": "secret-access-key-stand-in",
    }
    result = {}
    for name, variable in environment(rendering.one("Deployment", deployment_suffix), container).items():
        result[name] = variable["value"] if "value" in variable else stand_ins[name]
    return result


def settings_fields(settings_class: Any) -> set[str]:
    prefix = settings_class.model_config["env_prefix"]
    return {prefix + name.upper() for name in settings_class.model_fields}


@pytest.mark.parametrize(
    ("values_key", "container", "settings_module", "settings_class"),
    [
        ("operator", "operator", "livery_operator.settings", "OperatorSettings"),
        ("controlApi", "control-api", "livery_control_api.settings", "ControlApiSettings"),
    ],
)
def test_programs_accept_chart_environment(
    rendering: Rendering,
    monkeypatch: pytest.MonkeyPatch,
    values_key: str,
    container: str,
    settings_module: str,
    settings_class: str,
) -> None:
    module = pytest.importorskip(settings_module)
    settings_type = getattr(module, settings_class)
    extra = {variable["name"] for variable in rendering.values.get(values_key, {}).get("extraEnv", [])}
    variables = pod_environment(rendering, f"-{container}", container)
    for name in list(os.environ):
        if name.startswith("LIVERY_"):
            monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)

    unknown = {name for name in variables if name.startswith("LIVERY_")} - settings_fields(settings_type) - extra
    settings = load_settings(settings_type)

    assert unknown == set()
    assert settings.base_domain == variables["LIVERY_BASE_DOMAIN"]


def test_container_args_are_livery_commands(rendering: Rendering) -> None:
    from typer.testing import CliRunner

    from livery_runtime.cli import app

    for deployment in rendering.of_kind("Deployment"):
        for container in containers(deployment):
            result = CliRunner().invoke(app, [*container["args"], "--help"])

            assert result.exit_code == 0, f"livery {' '.join(container['args'])}: {result.output}"


# Network policies and metrics.


def test_control_api_url_port_is_pod_port(rendering: Rendering) -> None:
    # Tenant NetworkPolicies admit egress on the URL's port, and NetworkPolicy
    # ports match the destination pod's port, so the three must agree.
    url = environment(rendering.one("Deployment", "-operator"), "operator")["LIVERY_CONTROL_API_URL"]["value"]
    (container,) = rendering.one("Deployment", "-control-api")["spec"]["template"]["spec"]["containers"]
    (service_port,) = rendering.one("Service", "-control-api")["spec"]["ports"]

    assert url.rsplit(":", 1)[1] == str(container["ports"][0]["containerPort"])
    assert service_port["port"] == container["ports"][0]["containerPort"]


def test_control_api_admits_ingress_and_tenants(default_rendering: Rendering) -> None:
    policy = default_rendering.one("NetworkPolicy", "-control-api")
    (rule,) = policy["spec"]["ingress"]

    assert policy["spec"]["podSelector"] == default_rendering.one("Deployment", "-control-api")["spec"]["selector"]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}},
        {
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "livery",
                    "app.kubernetes.io/instance": "livery",
                    "app.kubernetes.io/component": "helm-test",
                }
            }
        },
        {"namespaceSelector": {"matchLabels": {"app.kubernetes.io/managed-by": "livery"}}},
    ]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]


def test_operator_admits_nothing_by_default(default_rendering: Rendering) -> None:
    policy = default_rendering.one("NetworkPolicy", "-operator")

    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"] == []


def test_metrics_namespaces_may_scrape(full_rendering: Rendering) -> None:
    operator_rule = full_rendering.one("NetworkPolicy", "-operator")["spec"]["ingress"][0]
    control_api_sources = full_rendering.one("NetworkPolicy", "-control-api")["spec"]["ingress"][0]["from"]
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}

    assert monitoring in operator_rule["from"]
    assert operator_rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert monitoring in control_api_sources


def test_network_policies_left_out_when_disabled(chart: helm.Chart) -> None:
    rendering = render(chart, {"networkPolicy": {"enabled": False}})

    assert rendering.of_kind("NetworkPolicy") == []


def test_service_monitor_scrapes_both_programs(full_rendering: Rendering) -> None:
    monitor = full_rendering.one("ServiceMonitor", "acme-saas")
    services = {service["metadata"]["name"]: service for service in full_rendering.of_kind("Service")}
    selected = [
        service
        for service in services.values()
        if service["metadata"]["labels"]["app.kubernetes.io/component"]
        in monitor["spec"]["selector"]["matchExpressions"][0]["values"]
    ]
    scraped_ports = {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]}

    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert sorted(service["metadata"]["name"] for service in selected) == [
        "acme-saas-control-api",
        "acme-saas-operator-metrics",
    ]
    for service in selected:
        assert {port["name"] for port in service["spec"]["ports"]} & scraped_ports


# The `helm test` hook.


class ReadinessHandler(http.server.BaseHTTPRequestHandler):
    """A stand-in control API: 200 on /readyz, and 503, as when not ready, on any other path."""

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        self.send_response(200 if self.path == "/readyz" else 503)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def readiness_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ReadinessHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


def run_test_hook(rendering: Rendering, url: str) -> subprocess.CompletedProcess[str]:
    """Run the test hook's command here, with its URL argument replaced by `url`."""
    (container,) = rendering.one("Pod", "-test-control-api")["spec"]["containers"]
    command = [sys.executable, *container["command"][1:-1], url]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def test_test_hook_targets_control_api(default_rendering: Rendering) -> None:
    pod = default_rendering.one("Pod", "-test-control-api")
    (container,) = pod["spec"]["containers"]

    admitted = [
        source["podSelector"]["matchLabels"]
        for source in default_rendering.one("NetworkPolicy", "-control-api")["spec"]["ingress"][0]["from"]
        if "podSelector" in source
    ]

    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert any(labels.items() <= pod["metadata"]["labels"].items() for labels in admitted)
    assert container["command"][0] == "python"
    assert container["command"][-1] == f"http://livery-control-api.{RELEASE_NAMESPACE}.svc:8000/readyz"


def test_test_hook_passes_when_ready(default_rendering: Rendering, readiness_server: str) -> None:
    result = run_test_hook(default_rendering, f"{readiness_server}/readyz")

    assert result.returncode == 0, result.stderr


def test_test_hook_fails_when_not_ready(default_rendering: Rendering, readiness_server: str) -> None:
    result = run_test_hook(default_rendering, f"{readiness_server}/not-ready")

    assert result.returncode != 0
    assert "503" in result.stderr



# Prometheus Operator objects.


# The PodMonitor fields the chart sets, with the types and the Duration pattern of
# the Prometheus Operator's monitoring.coreos.com/v1 API. Any other field fails,
# so a typo in the template cannot pass unnoticed.
PODMONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PodMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name", "namespace", "labels"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "required": ["selector", "podMetricsEndpoints"],
            "additionalProperties": False,
            "properties": {
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}},
                },
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}},
                },
                "podMetricsEndpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "interval": {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                            "relabelings": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "sourceLabels": {
                                            "type": "array",
                                            "items": {"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"},
                                        },
                                        "targetLabel": {"type": "string"},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


SERVICEMONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": PODMONITOR_SCHEMA["properties"]["metadata"],
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "matchExpressions": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["key", "operator"],
                                "additionalProperties": False,
                                "properties": {
                                    "key": {"type": "string"},
                                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                                    "values": {"type": "array", "items": {"type": "string"}},
                                },
                            },
                        },
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "interval": PODMONITOR_SCHEMA["properties"]["spec"]["properties"]["podMetricsEndpoints"][
                                "items"
                            ]["properties"]["interval"],
                        },
                    },
                },
            },
        },
    },
}


def test_service_monitor_matches_schema(full_rendering: Rendering) -> None:
    import jsonschema

    jsonschema.validate(full_rendering.one("ServiceMonitor", "acme-saas"), SERVICEMONITOR_SCHEMA)


def built_tenant_pod() -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Return the labels and container ports of a tenant app pod as the operator builds it."""
    from livery import naming
    from livery.drivers.base import AppSpec
    from livery_operator import builders
    from livery_operator.settings import OperatorSettings

    spec = AppSpec(
        tenant="acme",
        replicas=1,
        cpu="500m",
        memory="512Mi",
        environment={},
        config_checksum="abc123",
        labels=naming.labels("acme", "app"),
    )
    template = builders.deployment(spec, OperatorSettings())["spec"]["template"]
    return template["metadata"]["labels"], template["spec"]["containers"][0]["ports"]


def test_pod_monitor_left_out_by_default(default_rendering: Rendering) -> None:
    assert default_rendering.of_kind("PodMonitor") == []


def test_pod_monitor_matches_schema(full_rendering: Rendering) -> None:
    import jsonschema

    monitor = full_rendering.one("PodMonitor", "-tenant-apps")

    jsonschema.validate(monitor, PODMONITOR_SCHEMA)
    assert monitor["metadata"]["namespace"] == RELEASE_NAMESPACE
    assert monitor["metadata"]["labels"]["release"] == "prometheus"


def test_pod_monitor_selects_tenant_app_pods(full_rendering: Rendering) -> None:
    monitor = full_rendering.one("PodMonitor", "-tenant-apps")
    pod_labels, pod_ports = built_tenant_pod()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]

    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert endpoint["port"] in {port["name"] for port in pod_ports}
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "20s"
    assert endpoint["relabelings"] == [
        {"sourceLabels": ["__meta_kubernetes_pod_label_livery_dev_tenant"], "targetLabel": "tenant"}
    ]


def test_pod_monitor_skips_chart_pods(full_rendering: Rendering) -> None:
    selector = full_rendering.one("PodMonitor", "-tenant-apps")["spec"]["selector"]["matchLabels"]

    for deployment in full_rendering.of_kind("Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert not selector.items() <= labels.items(), deployment["metadata"]["name"]


def test_pod_monitor_without_scrape_namespace_warns(chart: helm.Chart) -> None:
    warned = render(chart, {"metrics": {"podMonitor": {"enabled": True}}})
    quiet = render(chart, {"metrics": {"podMonitor": {"enabled": True}}, "networkPolicy": {"metricsNamespaces": ["monitoring"]}})

    assert "drops Prometheus's scrapes" in warned.texts["livery/templates/NOTES.txt"]
    assert "drops Prometheus's scrapes" not in quiet.texts["livery/templates/NOTES.txt"]
