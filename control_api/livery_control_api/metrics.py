"""Prometheus metrics of the control API and the pure ASGI middleware that times requests."""

from __future__ import annotations

import logging
import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("livery.control_api.access")


class Metrics:
    """The metrics of one app instance, in their own registry so that tests can build many apps."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.signups = Counter(
            "livery_signups_total", "Signups by plan and outcome.", ["plan", "outcome"], registry=self.registry
        )
        self.webhook_events = Counter(
            "livery_webhook_events_total",
            "Stripe webhook events by type and outcome.",
            ["type", "outcome"],
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "livery_http_request_duration_seconds",
            "Request latency by method, route and status code.",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )


class RequestMetricsMiddleware:
    """Time each HTTP request and log one line per request; pure ASGI, no response buffering."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            elapsed = time.perf_counter() - started
            # The route template, never the raw path, so tenant names do not explode label cardinality.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.request_latency.labels(scope["method"], route, str(status)).observe(elapsed)
            # The query string is left out because it may carry a login link token.
            logger.info(
                "%s %s %d %.1fms", scope["method"], scope["path"], status, elapsed * 1000,
                extra={"method": scope["method"], "route": route, "status": status},
            )
