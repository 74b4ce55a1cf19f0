"""A restart after every API request: the operator killed mid-reconcile converges on restart.

No kopf here: each attempt builds a fresh client, driver and reconciler, as a
restarted process would, and the client dies after a set number of requests.
"""

from __future__ import annotations

import httpx
import psycopg
import pytest
from operator_support import PLAN_OF_ISOLATION, Crash, load_plan, tenant_manifest, unique_name
from pydantic import SecretStr

from livery import naming
from livery.reconcile import SECRET_DATABASE_PASSWORD
from livery_operator.builders import decode_secret
from livery_operator.driver import KubernetesDriver
from livery_operator.kube import KubeClient
from livery_operator.main import reconcile_settings
from livery_operator.reconciler import TenantReconciler
from livery_operator.settings import OperatorSettings


class CrashingClient(KubeClient):
    """A client that dies before request number `limit + 1`."""

    def __init__(self, base_url: str, limit: int | None) -> None:
        super().__init__(base_url)
        self.limit = limit
        self.sent = 0

    async def request(self, method: str, path: str, **kwargs):
        if self.limit is not None and self.sent >= self.limit:
            raise Crash(f"killed before request {self.sent + 1}: {method} {path}")
        self.sent += 1
        return await super().request(method, path, **kwargs)


def stored_password(kube, name: str) -> str | None:
    secret = kube.get("secrets", naming.APP_SECRET_NAME, naming.namespace_name(name))
    return None if secret is None else decode_secret(secret).get(SECRET_DATABASE_PASSWORD)


@pytest.mark.parametrize("isolation", ["database", "schema", "shared"])
async def test_restart_after_every_request_converges(isolation, kube, provisioner, postgres_url):
    plan = PLAN_OF_ISOLATION[isolation]
    try:
        kube.create("plans", load_plan(plan).to_json())
    except httpx.HTTPStatusError:
        pass
    name = unique_name(f"kill-{isolation[:2]}")
    kube.create("tenants", tenant_manifest(name, plan))
    settings = OperatorSettings(base_domain="saas.test", tenant_database_url=SecretStr(postgres_url))
    passwords: set[str] = set()

    async def attempt(limit: int | None):
        client = CrashingClient(kube.url, limit)
        reconciler = TenantReconciler(client, KubernetesDriver(client, settings), provisioner, reconcile_settings(settings))
        try:
            return await reconciler.reconcile(name, "test")
        finally:
            await client.close()

    limit = 0
    while True:
        try:
            await attempt(limit)
        except Crash:
            limit += 1
            if (password := stored_password(kube, name)) is not None:
                passwords.add(password)
            continue
        break
    deployment = kube.get("deployments", naming.APP_NAME, naming.namespace_name(name))
    kube.set_deployment_available(naming.namespace_name(name), naming.APP_NAME, deployment["spec"]["replicas"])
    result = await attempt(None)

    assert limit >= 10
    assert result.status.phase == "Ready"
    assert passwords == {stored_password(kube, name)}
    assert kube.get("tenants", name)["status"]["phase"] == "Ready"
    with psycopg.connect(postgres_url) as connection:
        roles = connection.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (naming.postgres_identifier(name),)).fetchone()[0]
    assert roles == 1
