"""Fixtures of the operator tests: the real provisioner, the shipped plans and a Tenant factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from operator_support import CREATED_NAMES, load_plan, tenant_manifest

from livery.database import DatabaseProvisioner
from livery.reconcile.finalize import detect_isolation
from livery.models.plan import Plan
from livery.models.tenant import Tenant


@pytest.fixture(scope="session")
def plans() -> dict[str, Plan]:
    return {name: load_plan(name) for name in ("free", "pro", "enterprise")}


@pytest.fixture(scope="session")
async def provisioner(postgres_url: str):
    """Yield the real provisioner; at the end, drop every tenant the tests named, in every mode."""
    real = DatabaseProvisioner(postgres_url)
    yield real
    for name in CREATED_NAMES:
        for isolation in await detect_isolation(name, real):
            await real.drop_database(name, isolation)


@pytest.fixture
def make_tenant() -> Callable[..., Tenant]:
    """Build a Tenant model with generation 1 and a creationTimestamp, as the API server would."""

    def make(name: str, plan: str = "pro", **spec: Any) -> Tenant:
        manifest = tenant_manifest(name, plan, **spec)
        manifest["metadata"].update(generation=1, creationTimestamp="2026-01-01T00:00:00Z", uid=f"uid-{name}")
        return Tenant.model_validate(manifest)

    return make
