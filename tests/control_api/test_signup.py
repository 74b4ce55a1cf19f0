"""Signup through the JSON API: name checks, accounts, Tenant resources, idempotency."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from livery_control_api.tables import Account, Signup

from .conftest import unique_name

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_free_signup_writes_tenant(api):
    response, tenant, email = await api.signup()

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["tenant"] == tenant
    assert body["state"] == "provisioning"
    assert body["checkoutUrl"] is None
    stored = await api.context.store.get_tenant(tenant)
    assert stored.spec.plan == "free"
    assert stored.spec.owner.email == email
    assert stored.spec.display_name == f"{tenant} Inc"


async def test_signup_sends_verification_email(api):
    response, tenant, email = await api.signup()

    assert response.status_code == 201
    link = api.mailer.last_link(email)
    assert "/verify-email?token=" in link


async def test_signup_repeat_returns_same_result(api):
    first, tenant, email = await api.signup()
    second, _, _ = await api.signup(tenant=tenant, email=email)

    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json()["tenant"] == tenant
    async with api.context.sessions() as session:
        accounts = await session.scalar(select(func.count()).select_from(Account).where(Account.email == email))
    assert accounts == 1


async def test_signup_of_taken_name_conflicts(api):
    first, tenant, _ = await api.signup()
    second, _, _ = await api.signup(tenant=tenant, email="someone-else@example.com")

    assert first.status_code == 201
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "name_taken"
    assert second.json()["error"]["field"] == "tenant"


async def test_signup_of_admin_created_name_conflicts(api):
    from livery.store.base import CLI_FIELD_MANAGER

    tenant = unique_name()
    await api.context.store.apply_tenant(
        tenant, {"displayName": "Admin Made", "plan": "free", "owner": {"email": "admin@example.com"}}, CLI_FIELD_MANAGER
    )
    email = f"{unique_name()}@example.com"

    response, _, _ = await api.signup(tenant=tenant, email=email)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "name_taken"
    assert (await api.context.store.get_tenant(tenant)).spec.owner.email == "admin@example.com"
    async with api.context.sessions() as session:
        assert await session.scalar(select(Account).where(Account.email == email)) is None
        assert await session.get(Signup, tenant) is None


async def test_signup_of_existing_account_adds_membership(api):
    from livery_control_api.tables import Membership

    first, _, email = await api.signup()
    second, tenant, _ = await api.signup(email=email)

    assert first.status_code == 201
    assert second.status_code == 201, second.text
    async with api.context.sessions() as session:
        account = await session.scalar(select(Account).where(Account.email == email))
        membership = await session.get(Membership, (account.id, tenant))
    assert membership is not None
    assert membership.role == "owner"


@pytest.mark.parametrize(
    ("name", "reason"),
    [("admin", "reserved"), ("kube-system", "reserved"), ("9lives", "invalid"), ("a", "invalid"), ("Acme", "invalid"),
     ("ac--me", "invalid")],
)
async def test_signup_rejects_bad_names(api, name, reason):
    response, _, email = await api.signup(tenant=name, email=f"{unique_name()}@example.com")

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "tenant"
    assert error["code"] == f"name_{reason}"
    async with api.context.sessions() as session:
        assert await session.scalar(select(Account).where(Account.email == email)) is None


@pytest.mark.parametrize(
    ("name", "reason", "fragment"),
    [("admin", "reserved", "reserved for the platform"), ("tenant-x1", "reserved", "must not start with 'tenant-'"),
     ("1abc", "invalid", "start with a letter"), ("ok", "invalid", "3 to 40 characters")],
)
async def test_name_check_explains_rejection(api, name, reason, fragment):
    response = await api.http.get("/v1/signup/check-name", params={"name": name})

    assert response.status_code == 200
    body = response.json()
    assert body["available"] is False
    assert body["reason"] == reason
    assert fragment in body["message"]


async def test_name_check_reports_taken_and_free(api):
    _, tenant, _ = await api.signup()

    taken = await api.http.get("/v1/signup/check-name", params={"name": tenant})
    free = await api.http.get("/v1/signup/check-name", params={"name": unique_name()})

    assert taken.status_code == 200
    assert taken.json()["reason"] == "taken"
    assert free.status_code == 200
    assert free.json()["available"] is True


async def test_paid_plan_without_billing_is_refused(api):
    response, tenant, _ = await api.signup(plan="pro")

    assert response.status_code == 402
    assert response.json()["error"]["field"] == "plan"
    async with api.context.sessions() as session:
        assert await session.get(Signup, tenant) is None


async def test_unknown_plan_is_invalid(api):
    response, _, _ = await api.signup(plan="platinum")

    assert response.status_code == 422
    assert response.json()["error"]["field"] == "plan"
    assert "free" in response.json()["error"]["message"]


async def test_short_password_names_field(api):
    response, _, _ = await api.signup(password="short")

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "password"
    assert "at least 10 characters" in error["message"]


async def test_store_failure_leaves_no_account(api, monkeypatch):
    async def broken_apply(*args, **kwargs):
        raise RuntimeError("store unavailable")

    monkeypatch.setattr(api.context.store, "create_tenant", broken_apply)
    tenant, email = unique_name(), f"{unique_name()}@example.com"
    response, _, _ = await api.signup(tenant=tenant, email=email)
    monkeypatch.undo()

    assert response.status_code == 500
    async with api.context.sessions() as session:
        assert await session.scalar(select(Account).where(Account.email == email)) is None
        assert await session.get(Signup, tenant) is None
    retry, _, _ = await api.signup(tenant=tenant, email=email)
    assert retry.status_code == 201


async def test_concurrent_signups_create_one_tenant(api):
    import asyncio

    tenant, email = unique_name(), f"{unique_name()}@example.com"

    responses = await asyncio.gather(*(api.signup(tenant=tenant, email=email) for _ in range(4)))

    codes = sorted(response.status_code for response, _, _ in responses)
    assert codes.count(201) == 1
    assert set(codes) <= {200, 201, 409}
    async with api.context.sessions() as session:
        accounts = await session.scalar(select(func.count()).select_from(Account).where(Account.email == email))
    assert accounts == 1
    assert (await api.context.store.get_tenant(tenant)).spec.owner.email == email


async def test_commit_failure_removes_written_tenant(api, monkeypatch):
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.ext.asyncio import AsyncSession

    async def lost_connection(self):
        raise OperationalError("COMMIT", {}, Exception("connection lost"))

    monkeypatch.setattr(AsyncSession, "commit", lost_connection)
    response, tenant, email = await api.signup()
    monkeypatch.undo()

    assert response.status_code == 500
    # The store only marks a Tenant for deletion; the reconciler removes it after cleanup.
    left = next((item for item in await api.context.store.list_tenants() if item.name == tenant), None)
    assert left is None or left.metadata.deletion_timestamp is not None
    async with api.context.sessions() as session:
        assert await session.scalar(select(Account).where(Account.email == email)) is None


async def test_store_outage_is_unavailable(api, monkeypatch):
    from livery.store.base import StoreError

    async def outage(*args, **kwargs):
        raise StoreError("list tenants failed: HTTP 503 Service Unavailable")

    monkeypatch.setattr(api.context.store, "create_tenant", outage)
    response, tenant, email = await api.signup()
    monkeypatch.undo()

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
    async with api.context.sessions() as session:
        assert await session.scalar(select(Account).where(Account.email == email)) is None
        assert await session.get(Signup, tenant) is None
