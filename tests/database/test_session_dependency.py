"""The FastAPI session dependency: one transaction per request, committed before the response is sent."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from sqlalchemy import select

from livery_tenant_app.db import TenantDatabase, TenantSession, User

pytestmark = pytest.mark.asyncio(loop_scope="session")


def build_app(database: TenantDatabase) -> FastAPI:
    app = FastAPI()
    app.state.tenant_database = database

    @app.post("/users/{email}", status_code=201)
    async def add_user(email: str, db: TenantSession) -> dict:
        db.add(User(email=email))
        return {"email": email}

    @app.post("/users/{email}/then-fail")
    async def add_user_then_fail(email: str, db: TenantSession) -> dict:
        db.add(User(email=email))
        await db.flush()
        raise HTTPException(status_code=409, detail="rejected after writing")

    @app.get("/users")
    async def list_users(db: TenantSession) -> list[str]:
        return list((await db.scalars(select(User.email).order_by(User.email))).all())

    return app


@pytest.fixture
async def client(provision_tenant):
    info = await provision_tenant("shared")
    database = TenantDatabase(info.app_url, isolation="shared", tenant=info.tenant, pool_size=1, max_overflow=0)
    transport = httpx.ASGITransport(app=build_app(database), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://tenant.test") as client:
        yield client
    await database.dispose()


async def test_request_commits_its_writes(client):
    created = await client.post("/users/alice@example.com")
    listed = await client.get("/users")

    assert created.status_code == 201
    assert listed.status_code == 200
    assert listed.json() == ["alice@example.com"]


async def test_failed_request_rolls_back(client):
    failed = await client.post("/users/ghost@example.com/then-fail")
    listed = await client.get("/users")

    assert failed.status_code == 409
    assert listed.json() == []


async def test_failed_commit_becomes_error_response(client):
    await client.post("/users/alice@example.com")

    duplicate = await client.post("/users/alice@example.com")

    assert duplicate.status_code == 500


async def test_schema_revision_none_before_migrations(scratch_database):
    database = TenantDatabase(scratch_database, isolation="database", tenant="acme")
    try:
        revision = await database.schema_revision()
    finally:
        await database.dispose()

    assert revision is None
