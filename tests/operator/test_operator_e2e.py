"""The operator under kopf against the Kubernetes API emulator and a real PostgreSQL.

One operator runs for the whole module in a background thread. The tests act as
kubectl and as the kubelet through the `kube` fixture's helpers and watch the
Tenant's status, the objects in its namespace and the databases.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
from pathlib import Path

import httpx
import psycopg
import pytest
from operator_support import (
    PLAN_OF_ISOLATION,
    FlakyProvisioner,
    load_plan,
    tenant_manifest,
    unique_name,
    wait_for,
)
from prometheus_client import generate_latest
from pydantic import SecretStr

from livery import naming
from livery.database import DatabaseProvisioner
from livery.database.snapshot import choose_pg_dump
from livery_operator.builders import SUSPENSION_SERVICE_NAME, decode_secret
from livery_operator.main import build_operator, run_operator
from livery_operator.settings import OperatorSettings

RESYNC_SECONDS = 3.0
MANAGED_KINDS = (
    ("secrets", naming.APP_SECRET_NAME),
    ("configmaps", naming.APP_CONFIG_NAME),
    ("deployments", naming.APP_NAME),
    ("services", naming.APP_NAME),
    ("ingresses", naming.APP_NAME),
    ("networkpolicies", "tenant-isolation"),
    ("resourcequotas", "tenant-quota"),
    ("limitranges", "tenant-limits"),
)


class RunningOperator:
    """`livery operator` in a background thread, stoppable and restartable."""

    def __init__(self, settings: OperatorSettings, kubeconfig: Path, provisioner, storage) -> None:
        self.settings = settings
        self.kubeconfig = kubeconfig
        self.provisioner = provisioner
        self.storage = storage
        self.thread: threading.Thread | None = None
        self.stop_flag = threading.Event()
        self.parts = None

    def start(self) -> None:
        self.stop_flag = threading.Event()
        ready = threading.Event()
        self.parts = build_operator(
            self.settings, kubeconfig=str(self.kubeconfig), provisioner=self.provisioner, storage=self.storage
        )
        self.thread = threading.Thread(
            target=lambda: asyncio.run(run_operator(self.parts, stop_flag=self.stop_flag, ready_flag=ready)),
            name="livery-operator",
            daemon=True,
        )
        self.thread.start()
        assert ready.wait(20), "the operator did not start within 20 s"

    def stop(self) -> None:
        self.stop_flag.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
            assert not self.thread.is_alive(), "the operator did not stop within 30 s"


@pytest.fixture(scope="module")
def operator(kube, postgres_url, tmp_path_factory):
    real = DatabaseProvisioner(postgres_url)
    provisioner = FlakyProvisioner(real, "postgresql://postgres@127.0.0.1:1/postgres")
    snapshots = tmp_path_factory.mktemp("snapshots")
    storage = open_snapshot_storage(snapshots)
    settings = OperatorSettings(
        base_domain="saas.test",
        tenant_database_url=SecretStr(postgres_url),
        resync_seconds=RESYNC_SECONDS,
        metrics_port=0,
        files_dir=snapshots if storage is not None else None,
        control_api_url="http://livery-control-api.livery.svc:8000",
    )
    for name in ("free", "pro", "enterprise"):
        create_if_missing(kube, "plans", load_plan(name).to_json())
    running = RunningOperator(settings, kube.kubeconfig, provisioner, storage)
    running.snapshots = snapshots
    running.start()
    yield running
    running.stop()
    kube.reset()


def open_snapshot_storage(folder: Path):
    try:
        from livery.storage import open_storage
    except ImportError:
        return None
    return open_storage(None, None, folder)


def create_if_missing(kube, resource: str, body: dict) -> None:
    try:
        kube.create(resource, body)
    except httpx.HTTPStatusError as error:
        if error.response.status_code != 409:
            raise


def status_of(kube, name: str) -> dict:
    tenant = kube.get("tenants", name) or {}
    return tenant.get("status") or {}


def condition(kube, name: str, kind: str) -> dict:
    for item in status_of(kube, name).get("conditions") or []:
        if item["type"] == kind:
            return item
    return {}


def make_available(kube, name: str) -> dict:
    """Wait for the tenant's Deployment and report its replicas available, as the kubelet would."""
    namespace = naming.namespace_name(name)
    deployment = wait_for(lambda: kube.get("deployments", naming.APP_NAME, namespace), message=f"deployment of {name}")
    return kube.set_deployment_available(namespace, naming.APP_NAME, deployment["spec"]["replicas"])


def create_ready_tenant(kube, name: str, plan: str, **spec) -> dict:
    kube.create("tenants", tenant_manifest(name, plan, **spec))
    make_available(kube, name)
    wait_for(lambda: status_of(kube, name).get("phase") == "Ready", message=f"{name} Ready")
    return status_of(kube, name)


def secret_of(kube, name: str) -> dict[str, str]:
    return decode_secret(kube.get("secrets", naming.APP_SECRET_NAME, naming.namespace_name(name)))


@pytest.mark.parametrize("isolation", ["database", "schema", "shared"])
def test_tenant_becomes_ready_in_each_mode(isolation, kube, operator, provisioner_probe):
    name = unique_name(f"acme-corp-{isolation[:2]}")

    status = create_ready_tenant(kube, name, PLAN_OF_ISOLATION[isolation])

    assert status["isolation"] == isolation
    assert status["database"]["role"] == "tenant_" + name.replace("-", "_")
    assert [c["status"] for c in status["conditions"]] == ["True"] * 4
    assert status["url"] == f"https://{name}.saas.test/"
    assert provisioner_probe(name, isolation) is True
    namespace = kube.get("namespaces", naming.namespace_name(name))
    assert namespace["metadata"]["labels"][naming.TENANT_LABEL] == name
    for resource, object_name in MANAGED_KINDS:
        obj = kube.get(resource, object_name, naming.namespace_name(name))
        assert obj is not None, resource
        assert obj["metadata"]["labels"][naming.MANAGED_BY_LABEL] == "livery", resource
        assert obj["metadata"]["labels"][naming.TENANT_LABEL] == name, resource


def test_kopf_bookkeeping_stays_out_of_status(kube, operator):
    name = unique_name("books")

    create_ready_tenant(kube, name, "pro")

    tenant = kube.get("tenants", name)
    assert "kopf" not in tenant["status"]
    assert "livery.dev/finalizer" in tenant["metadata"]["finalizers"]
    assert any(key.startswith("livery.dev/") for key in tenant["metadata"].get("annotations", {}))


def test_step_failing_once_is_retried_to_ready(kube, operator):
    name = unique_name("retry")
    operator.provisioner.fail_once.add(name)

    create_ready_tenant(kube, name, "pro")

    assert operator.provisioner.calls[("ensure_database", name)] >= 2
    assert "kopf" not in kube.get("tenants", name)["status"]
    # The API server prunes what the status schema does not declare, so kopf's default
    # status storage would have lost the retry state.
    kube.patch("tenants", name, {"status": {"kopf": {"progress": {"reconcile": {"retries": 1}}}}}, subresource="status")
    assert "kopf" not in kube.get("tenants", name)["status"]


@pytest.mark.parametrize("name", ["1", "9lives", "a"])
def test_invalid_names_are_rejected_at_admission(name, kube, operator):
    with pytest.raises(httpx.HTTPStatusError) as rejected:
        kube.create("tenants", tenant_manifest(name, "pro"))

    assert rejected.value.response.status_code == 422
    assert "metadata.name" in rejected.value.response.text
    assert kube.get("tenants", name) is None
    assert kube.get("namespaces", naming.namespace_name(name)) is None


def test_missing_plan_fails_then_recovers(kube, operator):
    name = unique_name("late")
    plan_name = unique_name("gold")
    kube.create("tenants", tenant_manifest(name, plan_name))

    wait_for(lambda: condition(kube, name, "Ready").get("reason") == "PlanNotFound", message="PlanNotFound")
    assert status_of(kube, name)["phase"] == "Failed"
    plan = load_plan("pro").to_json()
    plan["metadata"] = {"name": plan_name}
    kube.create("plans", plan)
    make_available(kube, name)

    wait_for(lambda: status_of(kube, name).get("phase") == "Ready", message="Ready after the plan appeared")


def test_plan_change_reaches_deployment(kube, operator):
    plan_name = unique_name("flex")
    plan = load_plan("pro").to_json()
    plan["metadata"] = {"name": plan_name}
    plan["spec"]["limits"]["replicas"] = 1
    kube.create("plans", plan)
    name = unique_name("flex")
    create_ready_tenant(kube, name, plan_name)

    kube.patch("plans", plan_name, {"spec": {"limits": {"replicas": 3, "memory": "1Gi"}}})

    namespace = naming.namespace_name(name)
    deployment = wait_for(
        lambda: (d := kube.get("deployments", naming.APP_NAME, namespace)) and d["spec"]["replicas"] == 3 and d,
        message="3 replicas",
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["memory"] == "1Gi"
    wait_for(lambda: status_of(kube, name).get("limits", {}).get("replicas") == 3, message="status limits")
    assert kube.get("plans", plan_name)["status"]["tenants"] == 1


def test_branding_change_rolls_out_app(kube, operator):
    name = unique_name("brand")
    create_ready_tenant(kube, name, "pro")
    namespace = naming.namespace_name(name)

    def checksum() -> str:
        template = kube.get("deployments", naming.APP_NAME, namespace)["spec"]["template"]
        return template["metadata"]["annotations"]["livery.dev/config-checksum"]

    before = checksum()
    kube.patch("tenants", name, {"spec": {"branding": {"primaryColor": "#123456"}}})

    wait_for(lambda: checksum() != before, message="new config checksum")
    config = kube.get("configmaps", naming.APP_CONFIG_NAME, namespace)["data"]["tenant.json"]
    assert "#123456" in config


def test_deleted_plan_fails_its_tenants(kube, operator):
    plan_name = unique_name("gone")
    plan = load_plan("pro").to_json()
    plan["metadata"] = {"name": plan_name}
    kube.create("plans", plan)
    name = unique_name("gone")
    create_ready_tenant(kube, name, plan_name)

    kube.delete("plans", plan_name)

    wait_for(lambda: condition(kube, name, "Ready").get("reason") == "PlanNotFound", message="PlanNotFound")
    assert status_of(kube, name)["phase"] == "Failed"
    assert kube.get("deployments", naming.APP_NAME, naming.namespace_name(name)) is not None


def test_suspend_then_resume(kube, operator):
    name = unique_name("pause")
    create_ready_tenant(kube, name, "pro")
    namespace = naming.namespace_name(name)

    kube.patch("tenants", name, {"spec": {"suspended": True}})
    wait_for(lambda: status_of(kube, name).get("phase") == "Suspended", message="Suspended")
    assert kube.get("deployments", naming.APP_NAME, namespace)["spec"]["replicas"] == 0

    kube.patch("tenants", name, {"spec": {"suspended": False}})
    wait_for(lambda: kube.get("deployments", naming.APP_NAME, namespace)["spec"]["replicas"] == 2, message="2 replicas")
    make_available(kube, name)
    wait_for(lambda: status_of(kube, name).get("phase") == "Ready", message="Ready after resume")


def ingress_backends(kube, name: str) -> set[str]:
    ingress = kube.get("ingresses", naming.APP_NAME, naming.namespace_name(name)) or {"spec": {"rules": []}}
    return {
        path["backend"]["service"]["name"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }


def test_suspension_switches_ingress_backend(kube, operator):
    name = unique_name("page")
    create_ready_tenant(kube, name, "pro")
    namespace = naming.namespace_name(name)
    assert ingress_backends(kube, name) == {naming.APP_NAME}

    kube.patch("tenants", name, {"spec": {"suspended": True}})
    wait_for(lambda: ingress_backends(kube, name) == {SUSPENSION_SERVICE_NAME}, message="suspension backend")
    service = kube.get("services", SUSPENSION_SERVICE_NAME, namespace)
    assert service["spec"]["type"] == "ExternalName"
    assert service["spec"]["externalName"] == operator.settings.suspension_service_host
    assert service["metadata"]["labels"][naming.TENANT_LABEL] == name

    kube.patch("tenants", name, {"spec": {"suspended": False}})
    wait_for(lambda: ingress_backends(kube, name) == {naming.APP_NAME}, message="app backend after resume")
    wait_for(lambda: kube.get("services", SUSPENSION_SERVICE_NAME, namespace) is None, message="suspension Service removed")


def test_deleted_objects_come_back(kube, operator):
    name = unique_name("drift")
    create_ready_tenant(kube, name, "pro")
    namespace = naming.namespace_name(name)

    for resource, object_name in (("networkpolicies", "tenant-isolation"), ("configmaps", naming.APP_CONFIG_NAME), ("deployments", naming.APP_NAME)):
        assert kube.delete(resource, object_name, namespace)

    for resource, object_name in (("networkpolicies", "tenant-isolation"), ("configmaps", naming.APP_CONFIG_NAME), ("deployments", naming.APP_NAME)):
        wait_for(lambda: kube.get(resource, object_name, namespace), timeout=60, message=f"{resource} restored")


def test_deleted_namespace_comes_back(kube, operator):
    name = unique_name("nsgone")
    create_ready_tenant(kube, name, "pro")
    namespace = naming.namespace_name(name)

    kube.delete("namespaces", namespace)

    wait_for(lambda: kube.get("deployments", naming.APP_NAME, namespace), timeout=60, message="deployment restored")
    secret = secret_of(kube, name)
    assert secret["LIVERY_DATABASE_URL"].startswith("postgresql")
    make_available(kube, name)
    wait_for(lambda: status_of(kube, name).get("phase") == "Ready", timeout=60, message="Ready again")


def test_edited_deployment_is_restored(kube, operator):
    name = unique_name("edit")
    create_ready_tenant(kube, name, "pro")
    namespace = naming.namespace_name(name)

    kube.patch("deployments", naming.APP_NAME, {"spec": {"replicas": 7}}, namespace=namespace)

    wait_for(lambda: kube.get("deployments", naming.APP_NAME, namespace)["spec"]["replicas"] == 2, timeout=60, message="replicas 2")


def test_later_tenant_reports_host_conflict(kube, operator):
    first = unique_name("first")
    second = unique_name("second")
    create_ready_tenant(kube, first, "pro", domains=["shop.conflict.test"])

    kube.create("tenants", tenant_manifest(second, "pro", domains=["shop.conflict.test"]))

    routing = wait_for(lambda: condition(kube, second, "RoutingReady").get("reason") == "HostConflict" and condition(kube, second, "RoutingReady"), message="HostConflict")
    assert routing["status"] == "False"
    ingress = kube.get("ingresses", naming.APP_NAME, naming.namespace_name(second))
    assert [rule["host"] for rule in ingress["spec"]["rules"]] == [f"{second}.saas.test"]


@pytest.mark.parametrize("policy", ["Retain", "Delete", "Snapshot"])
def test_delete_applies_policy(policy, kube, operator, provisioner_probe, postgres_url):
    if policy == "Snapshot" and operator.storage is None:
        pytest.skip("livery.storage is not available, so there is nowhere to put a snapshot")
    name = unique_name(f"bye-{policy.lower()}")
    create_ready_tenant(kube, name, "enterprise", deletionPolicy=policy)

    kube.delete("tenants", name)

    wait_for(lambda: kube.get("tenants", name) is None, timeout=60, message="Tenant gone")
    assert kube.get("namespaces", naming.namespace_name(name)) is None
    assert provisioner_probe(name, "database") is (policy == "Retain")
    if policy == "Snapshot":
        archives = list(Path(operator.snapshots).rglob("*.dump"))
        archive = [path for path in archives if f"/{name}/" in str(path)]
        assert len(archive) == 1
        with psycopg.connect(postgres_url) as connection:
            server_version = connection.info.server_version
        pg_restore = choose_pg_dump(server_version).with_name("pg_restore")
        listing = subprocess.run(
            [str(pg_restore), "--list", str(archive[0])],
            capture_output=True, text=True, check=True,
        )
        assert "TABLE" in listing.stdout


def test_delete_during_failing_create_finishes(kube, operator):
    name = unique_name("halfmade")
    operator.provisioner.unreachable.add(name)
    kube.create("tenants", tenant_manifest(name, "enterprise", deletionPolicy="Delete"))
    wait_for(lambda: condition(kube, name, "DatabaseReady").get("reason") == "DatabaseUnreachable", message="unreachable")
    operator.provisioner.unreachable.discard(name)

    kube.delete("tenants", name)

    wait_for(lambda: kube.get("tenants", name) is None, timeout=60, message="Tenant gone")
    assert operator.provisioner.calls[("drop_database", name)] == 1


def test_tenant_role_cannot_open_other_database(kube, operator, postgres_url):
    first = unique_name("walla")
    second = unique_name("wallb")
    create_ready_tenant(kube, first, "enterprise")
    create_ready_tenant(kube, second, "enterprise")
    first_url = secret_of(kube, first)["LIVERY_DATABASE_URL"]
    other_database = "tenant_" + second.replace("-", "_")

    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(psycopg.conninfo.make_conninfo(first_url, dbname=other_database), connect_timeout=5).close()

    assert "permission denied" in str(refused.value)


def test_restart_keeps_credentials_and_converges(kube, operator):
    name = unique_name("restart")
    create_ready_tenant(kube, name, "pro")
    before = secret_of(kube, name)

    operator.stop()
    kube.delete("configmaps", naming.APP_CONFIG_NAME, naming.namespace_name(name))
    operator.start()

    wait_for(lambda: kube.get("configmaps", naming.APP_CONFIG_NAME, naming.namespace_name(name)), timeout=60, message="config back")
    assert secret_of(kube, name) == before
    assert status_of(kube, name)["phase"] == "Ready"


def test_failing_drop_keeps_tenant_until_it_succeeds(kube, operator):
    name = unique_name("stuck")
    create_ready_tenant(kube, name, "enterprise", deletionPolicy="Delete")
    operator.provisioner.unreachable.add(name)

    kube.delete("tenants", name)

    ready = wait_for(lambda: condition(kube, name, "Ready").get("reason") == "DropFailed" and condition(kube, name, "Ready"), message="DropFailed")
    assert "dropping the database database objects failed" in ready["message"]
    assert status_of(kube, name)["phase"] == "Deleting"
    assert kube.get("tenants", name)["metadata"]["finalizers"] == ["livery.dev/finalizer"]
    operator.provisioner.unreachable.discard(name)
    wait_for(lambda: kube.get("tenants", name) is None, timeout=60, message="Tenant gone")


def test_plan_isolation_change_keeps_data_mode(kube, operator):
    plan_name = unique_name("shift")
    plan = load_plan("pro").to_json()
    plan["metadata"] = {"name": plan_name}
    kube.create("plans", plan)
    name = unique_name("shift")
    create_ready_tenant(kube, name, plan_name)
    generation = kube.get("plans", plan_name)["metadata"]["generation"]

    kube.patch("plans", plan_name, {"spec": {"isolation": "database", "limits": {"users": 7}}})

    wait_for(lambda: (status_of(kube, name).get("limits") or {}).get("users") == 7, message="new plan limits applied")
    assert kube.get("plans", plan_name)["metadata"]["generation"] > generation
    assert status_of(kube, name)["isolation"] == "schema"
    assert status_of(kube, name)["phase"] == "Ready"
    assert condition(kube, name, "DatabaseReady")["status"] == "True"


def test_explicit_isolation_change_is_rejected(kube, operator):
    name = unique_name("shift")
    create_ready_tenant(kube, name, "pro")

    kube.patch("tenants", name, {"spec": {"isolation": "database"}})

    database = wait_for(
        lambda: condition(kube, name, "DatabaseReady").get("reason") == "IsolationChangeRejected" and condition(kube, name, "DatabaseReady"),
        message="IsolationChangeRejected",
    )
    assert "'schema'" in database["message"]
    assert status_of(kube, name)["isolation"] == "schema"
    assert status_of(kube, name)["phase"] == "Failed"


def test_condition_changes_become_events(kube, operator):
    name = unique_name("news")

    create_ready_tenant(kube, name, "pro")

    events = [event for event in kube.list("events", namespace="default") if event["involvedObject"]["name"] == name]
    reasons = {event["reason"] for event in events}
    assert {"Provisioned", "ReplicasAvailable", "Routed", "Ready"} <= reasons
    assert all(event["involvedObject"]["kind"] == "Tenant" for event in events)
    assert all(event["involvedObject"].get("uid") == kube.get("tenants", name)["metadata"]["uid"] for event in events)
    password = secret_of(kube, name)["LIVERY_DATABASE_PASSWORD"]
    assert all(password not in event["message"] for event in events)


def test_metrics_count_steps_and_phases(kube, operator):
    name = unique_name("count")
    create_ready_tenant(kube, name, "pro")

    text = generate_latest().decode()

    assert 'livery_operator_step_runs_total{outcome="success",step="ensure_database"}' in text
    assert "livery_operator_step_duration_seconds_bucket" in text
    ready = [line for line in text.splitlines() if line.startswith('livery_operator_tenants{phase="Ready"}')]
    assert float(ready[0].split()[-1]) >= 1


@pytest.fixture
def provisioner_probe(postgres_url):
    """Return a function that checks whether a tenant's database objects exist."""
    real = DatabaseProvisioner(postgres_url)

    def probe(name: str, isolation: str) -> bool:
        return asyncio.run(real.database_exists(name, isolation))

    return probe
