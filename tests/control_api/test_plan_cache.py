"""Plans kept for signups: read once within the cache time, missing plans never kept."""

from __future__ import annotations

import pytest

from livery.models.plan import Plan
from livery.store.base import CLI_FIELD_MANAGER, NotFound
from livery_control_api.plan_cache import PlanCache

from .conftest import unique_name

pytestmark = pytest.mark.asyncio(loop_scope="session")


def plan_named(name: str, users: int) -> Plan:
    return Plan.model_validate({
        "apiVersion": "livery.dev/v1alpha1", "kind": "Plan", "metadata": {"name": name},
        "spec": {"displayName": name, "limits": {"users": users, "storageMiB": 100, "apiRequestsPerMinute": 60}},
    })


async def test_cached_plan_is_reused(local_store):
    name = unique_name()
    await local_store.apply_plan(plan_named(name, 3), CLI_FIELD_MANAGER)
    cache = PlanCache(local_store, seconds=300)

    first = await cache.get(name)
    await local_store.apply_plan(plan_named(name, 9), CLI_FIELD_MANAGER)
    second = await cache.get(name)

    assert first.spec.limits.users == 3
    assert second.spec.limits.users == 3


async def test_zero_seconds_reads_every_time(local_store):
    name = unique_name()
    await local_store.apply_plan(plan_named(name, 3), CLI_FIELD_MANAGER)
    cache = PlanCache(local_store, seconds=0)

    await cache.get(name)
    await local_store.apply_plan(plan_named(name, 9), CLI_FIELD_MANAGER)

    assert (await cache.get(name)).spec.limits.users == 9


async def test_missing_plan_is_not_cached(local_store):
    name = unique_name()
    cache = PlanCache(local_store, seconds=300)

    with pytest.raises(NotFound):
        await cache.get(name)
    await local_store.apply_plan(plan_named(name, 4), CLI_FIELD_MANAGER)

    assert (await cache.get(name)).spec.limits.users == 4
