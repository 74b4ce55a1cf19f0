"""Retire the billing state of a deleted tenant, so a later tenant of the same name starts without it.

The tenant's `TenantBilling` row is deleted, and the watermarks of its
subscription and payments are set beyond any event time, so every later
Stripe event for the old subscription or customer is acknowledged as stale
and changes no tenant, not even a new one that reuses the name.
"""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ..audit import record_audit
from ..tables import ObjectWatermark, TenantBilling

# Larger than any Stripe `created` time (Unix seconds), so each event compares as older.
RETIRED_WATERMARK = 2**62


async def retire_billing(session: AsyncSession, tenant: str, actor: str) -> None:
    """Delete the tenant's billing row and mark its Stripe subscription and customer retired; audited."""
    billing = await session.get(TenantBilling, tenant, with_for_update=True)
    if billing is None:
        return
    retired = []
    if billing.subscription_id:
        retired += [(billing.subscription_id, "subscription"), (f"{billing.subscription_id}:payment", "payment")]
    if billing.customer_id:
        retired.append((f"{billing.customer_id}:payment", "payment"))
    for object_id, object_type in retired:
        statement = insert(ObjectWatermark).values(
            object_id=object_id, object_type=object_type, watermark=RETIRED_WATERMARK, event_id=f"retired:{tenant}"
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[ObjectWatermark.object_id],
                set_={"watermark": RETIRED_WATERMARK, "event_id": statement.excluded.event_id},
            )
        )
    record_audit(
        session, actor, "billing.retired", tenant, customer=billing.customer_id, subscription=billing.subscription_id,
        status=billing.subscription_status,
    )
    await session.delete(billing)


async def is_retired(session: AsyncSession, subscription_id: str | None) -> bool:
    """Return whether `subscription_id` belonged to a deleted tenant."""
    if not subscription_id:
        return False
    row = await session.get(ObjectWatermark, subscription_id)
    return row is not None and row.watermark >= RETIRED_WATERMARK
