"""Fixtures for the tenant app tests: provisioned tenants in every isolation mode, served by the real app.

Tenants are provisioned once per session with the real provisioner on the
session's PostgreSQL, two side by side (`acme` and `globex`, with a unique
suffix) in each isolation mode. Each gets its own config file, its own app
and an httpx client signed in as its owner, with an API key.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import pytest_asyncio

from livery.database import DatabaseInfo, DatabaseProvisioner

from .support import app_settings, tenant_config_document

ISOLATIONS = ("database", "schema", "shared")
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class TenantUnderTest:
    """One provisioned tenant with its running app and a client signed in as its owner."""

    name: str
    isolation: str
    info: DatabaseInfo
    config_path: Path
    document: dict[str, Any]
    app: Any
    client: httpx.AsyncClient
    owner_email: str
    login_key: str
    api_key: str = ""
    csrf_token: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return self.document["hosts"][0]

    def api_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def write_config(self, **changes: Any) -> None:
        """Rewrite the tenant config file with `changes` merged in, as the reconciler would."""
        self.document.update(changes)
        temporary = self.config_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.document))
        temporary.replace(self.config_path)

    def login_token(self, email: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        values = {"sub": email or self.owner_email, "tenant": self.name, "aud": "livery-login", "iat": now,
                  "exp": now + 300, "jti": uuid.uuid4().hex}
        values.update(claims)
        return jwt.encode(values, self.login_key, algorithm="HS256")

    def anonymous_client(self, host: str | None = None, **options: Any) -> httpx.AsyncClient:
        """Return a client without a session, for `host` or the tenant's primary host."""
        base_url = f"http://{host or self.host}"
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=base_url, **options)


@pytest.fixture(scope="session")
def provisioner(postgres_url: str) -> DatabaseProvisioner:
    return DatabaseProvisioner(postgres_url)


@pytest.fixture(scope="session")
def tenant_storage_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tenant-files")


async def start_tenant(
    provisioner: DatabaseProvisioner, base_dir: Path, files_dir: Path, prefix: str, isolation: str,
    storage: Any = None, **document_options: Any,
) -> TenantUnderTest:
    """Provision a tenant, write its config, start its app and sign its owner in."""
    from livery_tenant_app.app import create_app

    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    info = await provisioner.ensure_database(name, isolation, f"pw-{uuid.uuid4().hex}")
    owner_email = f"owner@{name}.example"
    document = tenant_config_document(name, isolation=isolation, owner_email=owner_email, **document_options)
    config_path = base_dir / f"{name}.json"
    config_path.write_text(json.dumps(document))
    settings = app_settings(
        config_path, name, database_url=info.app_url, isolation=isolation,
        db_schema=info.schema, files_dir=files_dir, config_poll_seconds=0.2,
    )
    app = create_app(settings, storage=storage)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{document['hosts'][0]}")
    tenant = TenantUnderTest(
        name=name, isolation=isolation, info=info, config_path=config_path, document=document, app=app,
        client=client, owner_email=owner_email, login_key=settings.login_key.get_secret_value(),
    )
    tenant.extra["lifespan"] = lifespan
    await sign_in_owner(tenant)
    response = await client.post(
        "/api/v1/api-keys", json={"name": "tests"}, headers={"X-CSRF-Token": tenant.csrf_token}
    )
    assert response.status_code == 201, response.text
    tenant.api_key = response.json()["key"]
    return tenant


async def sign_in_owner(tenant: TenantUnderTest) -> None:
    response = await tenant.client.get("/auth/link", params={"token": tenant.login_token()})
    assert response.status_code == 303, response.text
    tenant.csrf_token = await csrf_token_of(tenant.client)


async def csrf_token_of(client: httpx.AsyncClient, path: str = "/login") -> str:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    match = CSRF_INPUT.search(response.text)
    assert match is not None, "page has no CSRF token"
    return match.group(1)


async def stop_tenant(provisioner: DatabaseProvisioner, tenant: TenantUnderTest) -> None:
    await tenant.client.aclose()
    await tenant.extra["lifespan"].__aexit__(None, None, None)
    await provisioner.drop_database(tenant.name, tenant.isolation)


@pytest_asyncio.fixture(scope="session", loop_scope="session", params=ISOLATIONS)
async def tenant_pair(
    request: pytest.FixtureRequest, provisioner: DatabaseProvisioner, tmp_path_factory: pytest.TempPathFactory,
    tenant_storage_dir: Path,
) -> AsyncIterator[tuple[TenantUnderTest, TenantUnderTest]]:
    """Two tenants side by side in one isolation mode, sharing the file storage root."""
    base_dir = tmp_path_factory.mktemp(f"configs-{request.param}")
    acme = await start_tenant(provisioner, base_dir, tenant_storage_dir, "acme", request.param)
    globex = await start_tenant(provisioner, base_dir, tenant_storage_dir, "globex", request.param)
    yield acme, globex
    await stop_tenant(provisioner, globex)
    await stop_tenant(provisioner, acme)
