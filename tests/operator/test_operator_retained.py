"""Under kopf: a Tenant re-created with the name of a deleted, retained one waits for an admin's opt-in.

Uses the module-scoped operator of test_operator_e2e (a new one for this module).
"""

from __future__ import annotations

from operator_support import tenant_manifest, unique_name, wait_for
from test_operator_e2e import condition, create_ready_tenant, make_available, operator, status_of  # noqa: F401 - fixture

from livery import naming
from livery.reconcile.errors import ADOPT_RETAINED_DATA_ANNOTATION


def test_recreated_tenant_needs_adopt_annotation(kube, operator):
    name = unique_name("again")
    create_ready_tenant(kube, name, "pro")
    kube.delete("tenants", name)
    wait_for(lambda: kube.get("tenants", name) is None, timeout=60, message="Tenant gone")

    kube.create("tenants", tenant_manifest(name, "pro"))

    database = wait_for(
        lambda: condition(kube, name, "DatabaseReady").get("reason") == "RetainedDataExists" and condition(kube, name, "DatabaseReady"),
        message="RetainedDataExists",
    )
    assert database["status"] == "False"
    assert kube.get("secrets", naming.APP_SECRET_NAME, naming.namespace_name(name)) is None

    kube.patch("tenants", name, {"metadata": {"annotations": {ADOPT_RETAINED_DATA_ANNOTATION: "true"}}})
    make_available(kube, name)
    wait_for(lambda: status_of(kube, name).get("phase") == "Ready", timeout=60, message="Ready after opt-in")
