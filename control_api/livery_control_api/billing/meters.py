"""API-call usage sent to Stripe Billing Meters, once per usage report.

The meter event identifier is the usage report id, so Stripe counts a report
once however often it is sent. Reports whose send failed stay marked unsent
and are sent again by `resend_meter_events`.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..context import AppContext
from ..dependencies import utcnow
from ..tables import TenantBilling, UsageRecord
from .provider import BillingError

logger = logging.getLogger("livery.control_api.meters")

RESEND_AFTER = timedelta(minutes=1)
RESEND_BATCH = 500


async def send_meter_events(context: AppContext, session: AsyncSession, tenant: str, records: list[UsageRecord]) -> int:
    """Send each record as a meter event, mark the sent ones and return how many were sent."""
    customer_id = await session.scalar(select(TenantBilling.customer_id).where(TenantBilling.tenant == tenant))
    if customer_id is None:
        return 0
    sent = []
    for record in records:
        try:
            await context.billing.send_meter_event(
                identifier=record.id, customer_id=customer_id, value=record.value,
                timestamp=int(record.timestamp.timestamp()),
            )
        except BillingError as exc:
            logger.warning("meter event for usage report %s of tenant %s failed, resent later: %s", record.id, tenant, exc)
            continue
        sent.append(record.id)
    if sent:
        await session.execute(update(UsageRecord).where(UsageRecord.id.in_(sent)).values(meter_event_sent=True))
        await session.commit()
    return len(sent)


async def resend_meter_events(context: AppContext) -> int:
    """Send API-call reports that are still unsent a minute after they arrived; return how many were sent."""
    if not context.billing.enabled:
        return 0
    total = 0
    async with context.sessions() as session:
        records = (
            await session.scalars(
                select(UsageRecord)
                .where(
                    UsageRecord.metric == "api_calls",
                    UsageRecord.meter_event_sent.is_(False),
                    UsageRecord.received_at < utcnow() - RESEND_AFTER,
                )
                .order_by(UsageRecord.received_at)
                .limit(RESEND_BATCH)
            )
        ).all()
        by_tenant: dict[str, list[UsageRecord]] = {}
        for record in records:
            by_tenant.setdefault(record.tenant, []).append(record)
        for tenant, tenant_records in by_tenant.items():
            total += await send_meter_events(context, session, tenant, tenant_records)
    return total
