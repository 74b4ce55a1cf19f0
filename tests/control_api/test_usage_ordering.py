"""Usage reports: the plan checks use the report received last, whatever timestamp the tenant app sends."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from livery_control_api.dependencies import utcnow
from livery_control_api.tables import UsageRecord

pytestmark = pytest.mark.asyncio(loop_scope="session")


def users_report(value: int, timestamp: str) -> dict:
    return {"id": str(uuid.uuid4()), "metric": "users", "value": value, "timestamp": timestamp}


async def tenant_with_usage_token(api, local_store, plan: str = "free") -> tuple[str, dict[str, str]]:
    tenant, _ = await api.owner()
    if plan != "free":
        changed = await api.admin("POST", f"/v1/admin/tenants/{tenant}/plan", json={"plan": plan})
        assert changed.status_code == 200, changed.text
    await local_store.write_tenant_secret(tenant, {"LIVERY_USAGE_TOKEN": "t-" + tenant})
    return tenant, {"Authorization": f"Bearer t-{tenant}"}


async def report(api, tenant: str, headers: dict[str, str], *reports: dict):
    return await api.http.post("/v1/usage", json={"tenant": tenant, "reports": list(reports)}, headers=headers)


async def test_late_report_with_old_timestamp_counts(api, local_store):
    tenant, headers = await tenant_with_usage_token(api, local_store, plan="pro")
    await report(api, tenant, headers, users_report(0, (utcnow() + timedelta(minutes=4)).isoformat()))
    # A tenant app whose clock is behind the server's sends an older timestamp for a newer value.
    behind = await report(api, tenant, headers, users_report(10, (utcnow() - timedelta(hours=1)).isoformat()))

    downgrade = await api.admin("POST", f"/v1/admin/tenants/{tenant}/plan", json={"plan": "free"})
    view = await api.admin("GET", f"/v1/admin/tenants/{tenant}")

    assert behind.status_code == 200
    assert view.json()["usage"] == {"users": 10}
    assert downgrade.status_code == 409
    assert downgrade.json()["error"]["message"].endswith("users: used 10, limit 3, excess 7")
    assert (await api.context.store.get_tenant(tenant)).spec.plan == "pro"


async def test_future_timestamp_is_rejected(api, local_store):
    tenant, headers = await tenant_with_usage_token(api, local_store, plan="pro")
    await report(api, tenant, headers, users_report(10, utcnow().isoformat()))
    future = users_report(0, (utcnow() + timedelta(days=3650)).isoformat())

    response = await report(api, tenant, headers, users_report(1, utcnow().isoformat()), future)
    downgrade = await api.admin("POST", f"/v1/admin/tenants/{tenant}/plan", json={"plan": "free"})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "reports[1].timestamp"
    assert "ahead of the server clock" in error["message"]
    async with api.context.sessions() as session:
        stored = (await session.scalars(select(UsageRecord.value).where(UsageRecord.tenant == tenant))).all()
    assert stored == [10]
    assert downgrade.status_code == 409


async def test_reports_of_one_request_order_by_timestamp(api, local_store):
    tenant, headers = await tenant_with_usage_token(api, local_store)
    now = utcnow()

    response = await report(
        api, tenant, headers,
        users_report(2, now.isoformat()), users_report(1, (now - timedelta(minutes=10)).isoformat()),
    )
    view = await api.admin("GET", f"/v1/admin/tenants/{tenant}")

    assert response.status_code == 200
    assert view.json()["usage"] == {"users": 2}


async def test_naive_timestamp_is_read_as_utc(api, local_store):
    tenant, headers = await tenant_with_usage_token(api, local_store)
    naive = (utcnow() + timedelta(minutes=30)).replace(tzinfo=None).isoformat()

    response = await report(api, tenant, headers, users_report(1, naive))

    assert response.status_code == 422
    assert response.json()["error"]["field"] == "reports[0].timestamp"
