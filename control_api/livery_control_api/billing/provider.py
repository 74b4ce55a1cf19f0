"""Billing providers: `none` (admins assign plans) and Stripe.

The Stripe client pins `STRIPE_API_VERSION`, the version that stripe-python
16.1 is generated for. Create the webhook endpoint in the Stripe dashboard with
the same API version, so that event payloads have the shapes read here. In that
version, subscription periods are on the subscription items, not on the subscription.
"""

from __future__ import annotations

import abc
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import stripe

from livery.models.plan import Plan

logger = logging.getLogger("livery.control_api.billing")

STRIPE_API_VERSION = "2026-10-28.endive"


class BillingError(Exception):
    """A call to the billing provider failed; the message never contains a key."""


class BillingNotConfigured(BillingError):
    pass


class SignatureInvalid(Exception):
    """A webhook request is not authentic: missing or wrong signature, or a stale timestamp."""


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str
    # Unix seconds after which the session can no longer be paid (Stripe's default is 24 hours).
    expires_at: int | None = None


class BillingProvider(abc.ABC):
    name: str = "none"

    @property
    def enabled(self) -> bool:
        return False

    @abc.abstractmethod
    async def create_checkout_session(
        self, *, tenant: str, plan: Plan, email: str, customer_id: str | None, success_url: str, cancel_url: str,
        idempotency_key: str,
    ) -> CheckoutSession:
        """Start a Stripe Checkout Session that subscribes the tenant to `plan`."""

    @abc.abstractmethod
    async def create_portal_session(self, *, customer_id: str, return_url: str) -> str:
        """Return the URL of a Customer Portal session."""

    @abc.abstractmethod
    async def retrieve_subscription(self, subscription_id: str) -> dict[str, Any]:
        """Return the current subscription object from the provider."""

    @abc.abstractmethod
    async def send_meter_event(self, *, identifier: str, customer_id: str, value: int, timestamp: int) -> None:
        """Report usage; the provider counts each `identifier` once, so a retry never counts twice."""

    @abc.abstractmethod
    async def cancel_subscription(self, subscription_id: str) -> bool:
        """Cancel a subscription at once and return True, or False when it had ended already or does not exist.

        Safe to repeat: cancelling a subscription that has ended succeeds.
        """

    @abc.abstractmethod
    def construct_event(self, payload: bytes, signature_header: str | None) -> dict[str, Any]:
        """Verify a webhook on its raw bytes and return the decoded event, or raise `SignatureInvalid`."""


class NoBilling(BillingProvider):
    """Billing `none`: admins assign plans and no payment is taken."""

    async def create_checkout_session(self, **kwargs: Any) -> CheckoutSession:
        raise BillingNotConfigured("billing is not configured on this platform; ask an admin to change the plan")

    async def create_portal_session(self, **kwargs: Any) -> str:
        raise BillingNotConfigured("billing is not configured on this platform")

    async def retrieve_subscription(self, subscription_id: str) -> dict[str, Any]:
        raise BillingNotConfigured("billing is not configured on this platform")

    async def send_meter_event(self, **kwargs: Any) -> None:
        return None

    async def cancel_subscription(self, subscription_id: str) -> bool:
        return False

    def construct_event(self, payload: bytes, signature_header: str | None) -> dict[str, Any]:
        raise SignatureInvalid("billing is not configured, so no webhook is accepted")


class StripeBilling(BillingProvider):
    name = "stripe"

    def __init__(
        self, api_key: str, webhook_secret: str, *, api_base: str | None = None, tolerance_seconds: int = 300,
        meter_event_name: str = "livery_api_calls",
    ) -> None:
        base_addresses = {"api": api_base} if api_base else {}
        self._client = stripe.StripeClient(
            api_key,
            stripe_version=STRIPE_API_VERSION,
            base_addresses=base_addresses,
            max_network_retries=2,
            http_client=stripe.HTTPXClient(allow_sync_methods=True),
        )
        self._webhook_secret = webhook_secret
        self._tolerance = tolerance_seconds
        self._meter_event_name = meter_event_name

    @property
    def enabled(self) -> bool:
        return True

    async def create_checkout_session(
        self, *, tenant: str, plan: Plan, email: str, customer_id: str | None, success_url: str, cancel_url: str,
        idempotency_key: str,
    ) -> CheckoutSession:
        price = plan.spec.billing.stripe_price_id
        if price is None:
            raise BillingError(f"plan {plan.name!r} has no spec.billing.stripePriceId, so it cannot be bought")
        metadata = {"tenant": tenant, "plan": plan.name}
        params: dict[str, Any] = {
            "mode": "subscription",
            "line_items": [{"price": price, "quantity": 1}],
            "client_reference_id": tenant,
            "metadata": metadata,
            "subscription_data": {"metadata": metadata},
            "success_url": success_url,
            "cancel_url": cancel_url,
        }
        if customer_id:
            params["customer"] = customer_id
        else:
            params["customer_email"] = email
        try:
            session = await self._client.v1.checkout.sessions.create_async(
                params=params, options={"idempotency_key": idempotency_key}
            )
        except stripe.StripeError as exc:
            raise BillingError(f"Stripe Checkout Session for tenant {tenant} failed: {_stripe_reason(exc)}") from None
        return CheckoutSession(id=session.id, url=session.url, expires_at=session.to_dict().get("expires_at"))

    async def create_portal_session(self, *, customer_id: str, return_url: str) -> str:
        try:
            session = await self._client.v1.billing_portal.sessions.create_async(
                params={"customer": customer_id, "return_url": return_url}
            )
        except stripe.StripeError as exc:
            raise BillingError(f"Stripe Customer Portal session failed: {_stripe_reason(exc)}") from None
        return session.url

    async def retrieve_subscription(self, subscription_id: str) -> dict[str, Any]:
        try:
            subscription = await self._client.v1.subscriptions.retrieve_async(subscription_id)
        except stripe.StripeError as exc:
            raise BillingError(f"reading Stripe subscription {subscription_id} failed: {_stripe_reason(exc)}") from None
        return subscription.to_dict()

    async def send_meter_event(self, *, identifier: str, customer_id: str, value: int, timestamp: int) -> None:
        params = {
            "event_name": self._meter_event_name,
            "identifier": identifier,
            "timestamp": timestamp,
            "payload": {"stripe_customer_id": customer_id, "value": str(value)},
        }
        try:
            await self._client.v1.billing.meter_events.create_async(params=params)
        except stripe.StripeError as exc:
            raise BillingError(f"Stripe meter event {identifier} failed: {_stripe_reason(exc)}") from None

    async def cancel_subscription(self, subscription_id: str) -> bool:
        try:
            await self._client.v1.subscriptions.cancel_async(subscription_id)
        except stripe.InvalidRequestError as exc:
            if exc.code == "resource_missing" or exc.http_status == 404:
                return False
            # Stripe may reject cancelling a subscription that has ended, so the status decides.
            subscription = await self.retrieve_subscription(subscription_id)
            if subscription.get("status") in ("canceled", "incomplete_expired"):
                return False
            raise BillingError(f"cancelling Stripe subscription {subscription_id} failed: {_stripe_reason(exc)}") from None
        except stripe.StripeError as exc:
            raise BillingError(f"cancelling Stripe subscription {subscription_id} failed: {_stripe_reason(exc)}") from None
        return True

    def construct_event(self, payload: bytes, signature_header: str | None) -> dict[str, Any]:
        if not signature_header:
            raise SignatureInvalid("missing Stripe-Signature header")
        try:
            text = payload.decode("utf-8")
            stripe.WebhookSignature.verify_header(text, signature_header, self._webhook_secret, self._tolerance)
        except (UnicodeDecodeError, stripe.SignatureVerificationError) as exc:
            raise SignatureInvalid(f"webhook signature verification failed: {exc.args[0] if exc.args else exc}") from None
        # The SDK rejects only timestamps older than the tolerance; one too far ahead is as suspect.
        timestamp = _signature_timestamp(signature_header)
        if timestamp is None or timestamp > time.time() + self._tolerance:
            raise SignatureInvalid(
                f"webhook signature timestamp is more than {self._tolerance} seconds in the future; check the clocks"
            )
        try:
            event = json.loads(text)
        except json.JSONDecodeError:
            raise SignatureInvalid("webhook body is not JSON") from None
        if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
            raise SignatureInvalid("webhook body is not a Stripe event")
        data = event.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
            raise SignatureInvalid("webhook body is not a Stripe event: data.object must be an object")
        created = event.get("created")
        if created is not None and (isinstance(created, bool) or not isinstance(created, int)):
            raise SignatureInvalid(f"webhook body is not a Stripe event: created must be Unix seconds, got {created!r}")
        return event


def _signature_timestamp(header: str) -> int | None:
    """Return the `t=` value of a Stripe-Signature header, or None when it has none."""
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _stripe_reason(exc: stripe.StripeError) -> str:
    # user_message and code never contain the API key; str(exc) may include request details.
    return exc.user_message or exc.code or type(exc).__name__


def billing_from_settings(settings: Any) -> BillingProvider:
    if settings.stripe_api_key is None:
        return NoBilling()
    return StripeBilling(
        settings.stripe_api_key.get_secret_value(),
        settings.stripe_webhook_secret.get_secret_value(),
        api_base=settings.stripe_api_base,
        tolerance_seconds=settings.webhook_tolerance_seconds,
        meter_event_name=settings.stripe_meter_event_name,
    )
