"""Stripe webhooks and usage reports from tenant apps."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from livery.drivers.base import SECRET_USAGE_TOKEN

from ..billing.events import process_event
from ..billing.meters import send_meter_events
from ..billing.provider import BillingError, SignatureInvalid
from ..dependencies import Context, Session, bearer_token, utcnow
from ..errors import ApiError, InvalidInput, Unauthorized, Unavailable
from ..schemas import UsageRequest, UsageResponse
from ..security import constant_time_equal
from ..tables import UsageRecord

logger = logging.getLogger("livery.control_api.billing")

router = APIRouter(prefix="/v1", tags=["billing"])


# How far a usage report's timestamp may be ahead of this server's clock, to allow for clock skew.
MAX_USAGE_CLOCK_SKEW = timedelta(minutes=5)

# An event carries one API object, so 1 MiB is far above any Stripe event (an estimate, not a documented limit).
MAX_WEBHOOK_BYTES = 1024 * 1024


class PayloadTooLarge(ApiError):
    status_code = 413
    code = "too_large"


class WebhookRejected(ApiError):
    status_code = 400
    code = "invalid_signature"


@router.post("/billing/webhook")
async def stripe_webhook(request: Request, context: Context) -> dict:
    """Receive a Stripe event, verified on the raw request body; each event id takes effect once."""
    payload = bytearray()
    async for chunk in request.stream():
        payload.extend(chunk)
        if len(payload) > MAX_WEBHOOK_BYTES:
            raise PayloadTooLarge(f"webhook body is larger than {MAX_WEBHOOK_BYTES} bytes, so it is not a Stripe event")
    payload = bytes(payload)
    try:
        event = context.billing.construct_event(payload, request.headers.get("stripe-signature"))
    except SignatureInvalid as exc:
        context.metrics.webhook_events.labels("unknown", "rejected").inc()
        logger.warning("rejected a webhook request: %s", exc)
        raise WebhookRejected(str(exc)) from None
    try:
        outcome = await process_event(context, event)
    except BillingError as exc:
        # The event's transaction rolled back, so Stripe's retry after the 503 applies it.
        logger.warning("Stripe event %s not applied: %s", event["id"], exc)
        raise Unavailable(f"event {event['id']} could not be resolved with Stripe: {exc}; retry later") from None
    return {"received": True, "outcome": outcome.outcome}


@router.post("/usage", response_model=UsageResponse)
async def report_usage(body: UsageRequest, request: Request, context: Context, session: Session) -> UsageResponse:
    """Store usage reports from a tenant app; a report id seen before is counted once."""
    token = bearer_token(request)
    secret = await context.store.read_tenant_secret(body.tenant) if token else None
    expected = (secret or {}).get(SECRET_USAGE_TOKEN)
    # Unknown tenant and wrong token get the same response, so the endpoint reveals no tenant names.
    if token is None or not expected or not constant_time_equal(token, expected):
        raise Unauthorized("usage token is missing or does not match the tenant")

    rows = [
        {"id": str(report.id), "tenant": body.tenant, "metric": report.metric, "value": report.value,
         "timestamp": _aware(report.timestamp)}
        for report in body.reports
    ]
    latest_allowed = utcnow() + MAX_USAGE_CLOCK_SKEW
    for index, row in enumerate(rows):
        if row["timestamp"] > latest_allowed:
            logger.warning("rejected usage reports of tenant %s: report %s is dated %s, ahead of the server clock",
                           body.tenant, row["id"], row["timestamp"].isoformat())
            raise InvalidInput(
                f"reports[{index}].timestamp {row['timestamp'].isoformat()} is more than "
                f"{int(MAX_USAGE_CLOCK_SKEW.total_seconds())} seconds ahead of the server clock. "
                "Send the time the value was measured, and check the tenant app's clock",
                field=f"reports[{index}].timestamp",
            )
    inserted = (
        await session.scalars(
            insert(UsageRecord).values(rows).on_conflict_do_nothing(index_elements=[UsageRecord.id]).returning(UsageRecord.id)
        )
    ).all()
    await session.commit()

    new_ids = set(inserted)
    if context.billing.enabled and any(row["metric"] == "api_calls" for row in rows if row["id"] in new_ids):
        records = (
            await session.scalars(
                select(UsageRecord).where(UsageRecord.id.in_(new_ids), UsageRecord.metric == "api_calls")
            )
        ).all()
        await send_meter_events(context, session, body.tenant, list(records))
    return UsageResponse(accepted=len(new_ids), duplicates=len(rows) - len(new_ids))


def _aware(timestamp: datetime) -> datetime:
    """Return the timestamp with UTC as its time zone when the client sent none."""
    return timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC)
