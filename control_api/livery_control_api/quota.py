"""Plan changes checked against current usage, written to the Tenant resource."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from livery.models.plan import Limits, Plan
from livery.models.tenant import Tenant
from livery.store.base import CONTROL_API_FIELD_MANAGER, ResourceStore

from .tables import UsageRecord

logger = logging.getLogger("livery.control_api.quota")

MIB = 1024 * 1024


@dataclass(frozen=True)
class Excess:
    metric: str
    used: int
    limit: int

    @property
    def excess(self) -> int:
        return self.used - self.limit

    def describe(self) -> str:
        return f"{self.metric}: used {self.used}, limit {self.limit}, excess {self.excess}"


async def latest_usage(session: AsyncSession, tenant: str) -> dict[str, int]:
    """Return the last received value of each gauge metric (users, storage_bytes) of a tenant.

    Reports are ordered by the time this server stored them, not by the timestamp
    the tenant app sends, so a report dated in the future cannot hide later ones
    from the plan checks. Reports stored in one request are ordered by timestamp.

    NOTE: an older report that a tenant app resends late, after a failed request,
    counts as the latest until the app's next report arrives.
    """
    usage: dict[str, int] = {}
    for metric in ("users", "storage_bytes"):
        value = await session.scalar(
            select(UsageRecord.value)
            .where(UsageRecord.tenant == tenant, UsageRecord.metric == metric)
            .order_by(UsageRecord.received_at.desc(), UsageRecord.timestamp.desc())
            .limit(1)
        )
        if value is not None:
            usage[metric] = value
    return usage


def limits_for(plan: Plan, tenant: Tenant | None) -> Limits:
    """Return the limits the tenant would have on `plan`: the plan's with the tenant's overrides."""
    overrides = tenant.spec.limits if tenant is not None else None
    return plan.spec.limits.merged_with(overrides)


def usage_excess(usage: dict[str, int], limits: Limits) -> list[Excess]:
    """Return each usage figure that is over `limits`; storage is compared in bytes."""
    problems = []
    if limits.users is not None and usage.get("users", 0) > limits.users:
        problems.append(Excess("users", usage["users"], limits.users))
    if limits.storage_mi_b is not None and usage.get("storage_bytes", 0) > limits.storage_mi_b * MIB:
        problems.append(Excess("storage_bytes", usage["storage_bytes"], limits.storage_mi_b * MIB))
    return problems


async def write_plan(store: ResourceStore, tenant: str, plan: Plan) -> Tenant:
    """Write the plan into the Tenant resource.

    The Tenant carries the plan by name; its limits are the Plan's, merged
    with any `spec.limits` overrides an admin set, and the operator reports the
    result in `status.limits`. Copying the plan's limits into `spec.limits`
    would turn them into overrides that outlive the next Plan edit and would
    take ownership of fields that belong to admins.
    """
    return await store.apply_tenant(tenant, {"plan": plan.name}, CONTROL_API_FIELD_MANAGER)
