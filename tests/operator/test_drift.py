"""The fields of tenant objects that the driver puts back exactly, with JSON patch operations."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from livery import naming
from livery.drivers.base import AppSpec, RouteSpec
from livery_operator import builders
from livery_operator.drift import restore_operations
from livery_operator.settings import OperatorSettings

SETTINGS = OperatorSettings(base_domain="saas.test")
APP = AppSpec(
    tenant="acme",
    replicas=1,
    cpu="500m",
    memory="512Mi",
    environment={"LIVERY_TENANT": "acme"},
    config_checksum="abc123",
    labels=naming.labels("acme", "app"),
)


def built_objects() -> list[dict]:
    route = RouteSpec(tenant="acme", hosts=["acme.saas.test"], suspended=False)
    return [
        builders.namespace("acme"),
        builders.config_map("acme", {"tenant": "acme"}),
        builders.service("acme", SETTINGS),
        builders.deployment(APP, SETTINGS),
        builders.network_policy("acme", SETTINGS),
        builders.ingress(route, SETTINGS),
        builders.resource_quota(APP),
        builders.limit_range(APP),
    ]


@pytest.mark.parametrize("desired", built_objects(), ids=lambda obj: obj["kind"])
def test_built_object_needs_no_restore(desired):
    assert restore_operations(copy.deepcopy(desired), desired) == []


def test_server_defaults_are_not_drift():
    desired = builders.deployment(APP, SETTINGS)
    live = copy.deepcopy(desired)
    pod = live["spec"]["template"]["spec"]
    pod["volumes"][0]["configMap"]["defaultMode"] = 420
    pod["hostNetwork"] = False
    pod["containers"][0]["terminationMessagePath"] = "/dev/termination-log"

    assert restore_operations(live, desired) == []


def test_host_network_is_removed():
    desired = builders.deployment(APP, SETTINGS)
    live = copy.deepcopy(desired)
    live["spec"]["template"]["spec"]["hostNetwork"] = True

    assert restore_operations(live, desired) == [{"op": "remove", "path": "/spec/template/spec/hostNetwork"}]


def test_extra_container_is_replaced():
    desired = builders.deployment(APP, SETTINGS)
    live = copy.deepcopy(desired)
    live["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "busybox"})

    operations = restore_operations(live, desired)

    assert operations == [
        {"op": "add", "path": "/spec/template/spec/containers", "value": desired["spec"]["template"]["spec"]["containers"]}
    ]


def test_privileged_container_is_reset():
    desired = builders.deployment(APP, SETTINGS)
    live = copy.deepcopy(desired)
    live["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True

    operations = restore_operations(live, desired)

    assert [operation["path"] for operation in operations] == ["/spec/template/spec/containers/0/securityContext"]


def test_ingress_annotation_is_dropped():
    route = RouteSpec(tenant="acme", hosts=["acme.saas.test"], suspended=False)
    desired = builders.ingress(route, SETTINGS)
    live = copy.deepcopy(desired)
    live["metadata"]["annotations"]["nginx.ingress.kubernetes.io/server-snippet"] = "return 200;"

    operations = restore_operations(live, desired)

    assert operations == [{"op": "add", "path": "/metadata/annotations", "value": desired["metadata"]["annotations"]}]


def test_network_policy_empty_selector_counts():
    desired = builders.network_policy("acme", SETTINGS)
    live = copy.deepcopy(desired)
    del live["spec"]["egress"][0]["to"][0]["namespaceSelector"]

    operations = restore_operations(live, desired)

    assert operations == [{"op": "add", "path": "/spec", "value": desired["spec"]}]


def test_relaxed_pod_security_label_is_reset():
    desired = builders.namespace("acme")
    live = copy.deepcopy(desired)
    live["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] = "privileged"

    operations = restore_operations(live, desired)

    assert operations == [
        {"op": "add", "path": "/metadata/labels/pod-security.kubernetes.io~1enforce", "value": "restricted"}
    ]


def test_added_pod_security_label_is_removed():
    desired = builders.namespace("acme")
    live = copy.deepcopy(desired)
    live["metadata"]["labels"]["pod-security.kubernetes.io/enforce-version"] = "v1.20"

    operations = restore_operations(live, desired)

    assert operations == [{"op": "remove", "path": "/metadata/labels/pod-security.kubernetes.io~1enforce-version"}]


def test_admin_labels_stay():
    route = RouteSpec(tenant="acme", hosts=["acme.saas.test"], suspended=False)
    for desired in (builders.namespace("acme"), builders.deployment(APP, SETTINGS), builders.ingress(route, SETTINGS)):
        live = copy.deepcopy(desired)
        live["metadata"]["labels"]["team"] = "payments"
        live["metadata"].setdefault("annotations", {})
        if desired["kind"] != "Ingress":
            live["metadata"]["annotations"]["example.com/owner"] = "payments"

        assert restore_operations(live, desired) == [], desired["kind"]


@pytest.mark.parametrize("field", ["labels", "annotations"])
def test_added_livery_key_is_removed(field):
    desired = builders.config_map("acme", {"tenant": "acme"})
    live = copy.deepcopy(desired)
    live["metadata"].setdefault(field, {})["livery.dev/suspended"] = "true"

    operations = restore_operations(live, desired)

    assert operations == [{"op": "remove", "path": f"/metadata/{field}/livery.dev~1suspended"}]


def test_changed_tenant_label_is_reset():
    desired = builders.namespace("acme")
    live = copy.deepcopy(desired)
    live["metadata"]["labels"][naming.TENANT_LABEL] = "globex"

    operations = restore_operations(live, desired)

    assert operations == [{"op": "add", "path": "/metadata/labels/livery.dev~1tenant", "value": "acme"}]


def test_added_pod_label_is_removed():
    desired = builders.deployment(APP, SETTINGS)
    live = copy.deepcopy(desired)
    live["spec"]["template"]["metadata"]["labels"]["role"] = "database-client"

    operations = restore_operations(live, desired)

    assert operations == [
        {
            "op": "add",
            "path": "/spec/template/metadata/labels",
            "value": desired["spec"]["template"]["metadata"]["labels"],
        }
    ]


def test_added_pod_annotation_is_removed():
    desired = builders.deployment(APP, SETTINGS)
    live = copy.deepcopy(desired)
    live["spec"]["template"]["metadata"]["annotations"]["container.apparmor.security.beta.kubernetes.io/app"] = "unconfined"

    operations = restore_operations(live, desired)

    assert operations == [
        {
            "op": "add",
            "path": "/spec/template/metadata/annotations",
            "value": desired["spec"]["template"]["metadata"]["annotations"],
        }
    ]


def test_rollout_restart_annotation_stays():
    desired = builders.deployment(APP, SETTINGS)
    live = copy.deepcopy(desired)
    live["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] = "2026-12-04T22:00:00Z"

    assert restore_operations(live, desired) == []


def test_restart_annotation_survives_checksum_reset():
    desired = builders.deployment(APP, SETTINGS)
    live = copy.deepcopy(desired)
    annotations = live["spec"]["template"]["metadata"]["annotations"]
    annotations["kubectl.kubernetes.io/restartedAt"] = "2026-12-04T22:00:00Z"
    annotations[builders.CHECKSUM_ANNOTATION] = "edited"

    (operation,) = restore_operations(live, desired)

    assert operation["path"] == "/spec/template/metadata/annotations"
    assert operation["value"] == {
        builders.CHECKSUM_ANNOTATION: "abc123",
        "kubectl.kubernetes.io/restartedAt": "2026-12-04T22:00:00Z",
    }


def test_service_selector_is_reset():
    desired = builders.service("acme", SETTINGS)
    live = copy.deepcopy(desired)
    live["spec"]["selector"]["tier"] = "none"

    operations = restore_operations(live, desired)

    assert operations == [{"op": "add", "path": "/spec/selector", "value": desired["spec"]["selector"]}]


def test_added_secret_key_is_removed():
    desired = builders.secret("acme", {"LIVERY_REDIS_URL": "redis://cache:6379/0"})
    live = copy.deepcopy(desired)
    live["data"]["LIVERY_S3_ENDPOINT_URL"] = "aHR0cDovL2V4YW1wbGUuY29t"

    operations = restore_operations(live, desired)

    assert operations == [{"op": "add", "path": "/data", "value": desired["data"]}]


def volumes_restored(desired: dict) -> list[dict]:
    return [{"op": "add", "path": "/spec/template/spec/volumes", "value": desired["spec"]["template"]["spec"]["volumes"]}]


def test_swapped_volume_source_is_restored():
    desired = builders.deployment(APP, SETTINGS)
    live = copy.deepcopy(desired)
    live["spec"]["template"]["spec"]["volumes"][1] = {"name": "tmp", "hostPath": {"path": "/"}}

    assert restore_operations(live, desired) == volumes_restored(desired)


def test_added_volume_source_is_restored():
    desired = builders.deployment(APP, SETTINGS)
    live = copy.deepcopy(desired)
    live["spec"]["template"]["spec"]["volumes"][1]["hostPath"] = {"path": "/"}

    assert restore_operations(live, desired) == volumes_restored(desired)


def test_changed_volume_content_is_restored():
    desired = builders.deployment(APP, SETTINGS)
    live = copy.deepcopy(desired)
    live["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] = "other-config"

    assert restore_operations(live, desired) == volumes_restored(desired)


def test_widened_volume_mode_is_restored():
    desired = builders.deployment(APP, SETTINGS)
    live = copy.deepcopy(desired)
    live["spec"]["template"]["spec"]["volumes"][0]["configMap"]["defaultMode"] = 0o777

    assert restore_operations(live, desired) == volumes_restored(desired)


def test_extra_volume_is_removed():
    desired = builders.deployment(APP, SETTINGS)
    live = copy.deepcopy(desired)
    live["spec"]["template"]["spec"]["volumes"].append({"name": "host", "hostPath": {"path": "/"}})

    assert restore_operations(live, desired) == volumes_restored(desired)


def test_added_quota_key_is_removed():
    desired = builders.resource_quota(APP)
    live = copy.deepcopy(desired)
    live["spec"]["hard"]["count/secrets"] = "0"

    assert restore_operations(live, desired) == [{"op": "add", "path": "/spec", "value": desired["spec"]}]


def test_added_quota_scope_is_removed():
    desired = builders.resource_quota(APP)
    live = copy.deepcopy(desired)
    live["spec"]["scopes"] = ["BestEffort"]

    assert restore_operations(live, desired) == [{"op": "add", "path": "/spec", "value": desired["spec"]}]


def test_canonical_quota_quantity_is_not_drift():
    desired = builders.resource_quota(dataclasses.replace(APP, memory="1.5Gi"))
    live = copy.deepcopy(desired)
    live["spec"]["hard"]["limits.memory"] = "3Gi"
    live["spec"]["hard"]["requests.memory"] = "3072Mi"

    assert restore_operations(live, desired) == []


@pytest.mark.parametrize("field", ["min", "maxLimitRequestRatio"])
def test_added_limit_range_key_is_removed(field):
    desired = builders.limit_range(APP)
    live = copy.deepcopy(desired)
    live["spec"]["limits"][0][field] = {"cpu": "1m"}

    assert restore_operations(live, desired) == [{"op": "add", "path": "/spec", "value": desired["spec"]}]


def test_added_limit_range_item_is_removed():
    desired = builders.limit_range(APP)
    live = copy.deepcopy(desired)
    live["spec"]["limits"].append({"type": "PersistentVolumeClaim", "max": {"storage": "1Ti"}})

    assert restore_operations(live, desired) == [{"op": "add", "path": "/spec", "value": desired["spec"]}]
