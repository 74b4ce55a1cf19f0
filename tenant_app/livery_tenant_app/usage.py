"""Report usage (users, storage bytes, API calls) to the control API in the background.

`record()` only appends to an in-memory queue, so it never blocks a request.
A background task sends the queue in batches to `POST /v1/usage` and retries
a failed batch with exponential backoff, keeping each report's id so the
control API stores it once however often it arrives. With no
`LIVERY_CONTROL_API_URL` or `LIVERY_USAGE_TOKEN` the reporter records nothing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from datetime import datetime, timezone
from typing import Any

import httpx

from .metrics import AppMetrics

logger = logging.getLogger(__name__)

METRICS = ("users", "storage_bytes", "api_calls")
MAX_QUEUED_REPORTS = 10_000
MAX_BATCH = 100


class UsageReporter:
    def __init__(
        self,
        tenant: str,
        control_api_url: str | None,
        token: str | None,
        metrics: AppMetrics | None = None,
        flush_seconds: float = 10.0,
        max_backoff_seconds: float = 300.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.tenant = tenant
        self.enabled = bool(control_api_url and token)
        self._url = (control_api_url or "").rstrip("/") + "/v1/usage"
        self._token = token or ""
        self._metrics = metrics
        self._flush_seconds = flush_seconds
        self._max_backoff = max_backoff_seconds
        self._transport = transport
        self._queue: deque[dict[str, Any]] = deque(maxlen=MAX_QUEUED_REPORTS)
        self._api_calls = 0
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._dropped = 0

    def record(self, metric: str, value: int) -> None:
        """Queue one report; returns at once and never raises for a full queue."""
        if not self.enabled:
            return
        if metric not in METRICS:
            raise ValueError(f"usage metric must be one of {', '.join(METRICS)}, got {metric!r}")
        if len(self._queue) == self._queue.maxlen:
            self._dropped += 1
        self._queue.append(
            {
                "id": str(uuid.uuid4()),
                "metric": metric,
                "value": int(value),
                "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
        )

    def count_api_call(self) -> None:
        """Count one API request; the total since the last batch goes out as one `api_calls` report."""
        if self.enabled:
            self._api_calls += 1

    @property
    def pending(self) -> int:
        return len(self._queue) + (1 if self._api_calls else 0)

    def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"usage-reporter-{self.tenant}")

    async def stop(self) -> None:
        """Stop the background task and try once to send what is still queued."""
        if self._task is None:
            return
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None
        async with self._client() as client:
            try:
                await self.flush(client)
            except httpx.HTTPError as exc:
                logger.warning("tenant %s: usage reports lost at shutdown: %s", self.tenant, exc)

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self._transport, timeout=10.0)

    async def _run(self) -> None:
        backoff = self._flush_seconds
        async with self._client() as client:
            while True:
                await asyncio.sleep(backoff)
                try:
                    await self.flush(client)
                    backoff = self._flush_seconds
                except httpx.HTTPError as exc:
                    backoff = min(max(backoff * 2, 1.0), self._max_backoff)
                    if self._metrics is not None:
                        self._metrics.usage_reports_failed.inc()
                    logger.warning(
                        "tenant %s: sending %d usage reports failed (%s); retrying in %.0f s",
                        self.tenant, len(self._queue), _describe(exc), backoff,
                    )

    async def flush(self, client: httpx.AsyncClient) -> int:
        """Send every queued report in batches; return how many were sent. Raise httpx.HTTPError on failure."""
        if self._api_calls:
            calls, self._api_calls = self._api_calls, 0
            self.record("api_calls", calls)
        if self._dropped:
            logger.warning("tenant %s: dropped %d usage reports because the queue was full", self.tenant, self._dropped)
            self._dropped = 0
        sent = 0
        while self._queue:
            batch = [self._queue[index] for index in range(min(MAX_BATCH, len(self._queue)))]
            response = await client.post(
                self._url,
                json={"tenant": self.tenant, "reports": batch},
                headers={"Authorization": f"Bearer {self._token}"},
            )
            if response.status_code >= 500 or response.status_code == 429:
                raise httpx.HTTPStatusError(
                    f"control API returned {response.status_code}", request=response.request, response=response
                )
            if response.status_code >= 400:
                # A 4xx will not get better by retrying the same batch: log it and move on.
                logger.error(
                    "tenant %s: control API rejected %d usage reports with %d: %s",
                    self.tenant, len(batch), response.status_code, response.text[:200],
                )
            for _ in batch:
                self._queue.popleft()
            sent += len(batch)
        return sent


def _describe(exc: httpx.HTTPError) -> str:
    # The URL carries no secret, but the request headers do, so only the type and message go to the log.
    return f"{type(exc).__name__}: {exc}"
