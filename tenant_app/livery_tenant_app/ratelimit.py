"""Per-tenant API rate limiting at the plan's `apiRequestsPerMinute`.

The limiter counts requests to `/api/` in fixed one-minute windows. The
counter lives in-process by default; with `LIVERY_REDIS_URL` set it lives in
Redis, so every replica of the tenant's app shares one budget. A rejected
request gets 429 with `Retry-After` set to the seconds until the window ends.
"""

from __future__ import annotations

import abc
import logging
import math
import time
from collections.abc import Callable

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from .config import LoadedConfig
from .metrics import AppMetrics

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
RATE_LIMITED_PREFIX = "/api/"


class LimiterStore(abc.ABC):
    """Counts hits per key and window."""

    @abc.abstractmethod
    async def hit(self, key: str, window: int) -> int:
        """Count one hit on `key` in window number `window` and return the window's count so far."""

    async def close(self) -> None:
        return None


class MemoryLimiterStore(LimiterStore):
    """Counters in this process; fine for one replica."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, int]] = {}

    async def hit(self, key: str, window: int) -> int:
        current_window, count = self._counts.get(key, (window, 0))
        if current_window != window:
            count = 0
        count += 1
        self._counts[key] = (window, count)
        return count


class RedisLimiterStore(LimiterStore):
    """Counters in Redis, shared by every replica; each window's key expires after two windows."""

    def __init__(self, url: str, prefix: str = "livery:ratelimit:") -> None:
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(url)
        self._prefix = prefix

    async def hit(self, key: str, window: int) -> int:
        name = f"{self._prefix}{key}:{window}"
        async with self._redis.pipeline(transaction=True) as pipeline:
            pipeline.incr(name)
            pipeline.expire(name, WINDOW_SECONDS * 2)
            count, _ = await pipeline.execute()
        return int(count)

    async def close(self) -> None:
        await self._redis.aclose()


async def check_budget(store: LimiterStore, key: str, limit: int, now: float | None = None) -> int | None:
    """Count one hit on `key`; return the seconds to wait when it passes `limit` this minute, else None."""
    now = time.time() if now is None else now
    window = int(now // WINDOW_SECONDS)
    if await store.hit(key, window) <= limit:
        return None
    return max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))


class RateLimitMiddleware:
    """Reject API requests past the tenant's per-minute budget with 429 and Retry-After."""

    def __init__(
        self,
        app: ASGIApp,
        store: LimiterStore,
        metrics: AppMetrics,
        on_allowed: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.store = store
        self.metrics = metrics
        self.on_allowed = on_allowed
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(RATE_LIMITED_PREFIX):
            await self.app(scope, receive, send)
            return
        loaded: LoadedConfig = scope["state"]["loaded_config"]
        limit = loaded.config.limits.api_requests_per_minute
        if limit is not None:
            retry_after = await check_budget(self.store, loaded.config.tenant, limit, self.clock())
            if retry_after is not None:
                self.metrics.rate_limited.inc()
                await _too_many_requests(limit, retry_after)(scope, receive, send)
                return
        if self.on_allowed is not None:
            self.on_allowed()
        await self.app(scope, receive, send)


def _too_many_requests(limit: int, retry_after: int) -> JSONResponse:
    message = f"API rate limit of {limit} requests a minute exceeded; retry in {retry_after} s"
    return JSONResponse(
        {"error": {"code": "rate_limited", "message": message, "field": None}},
        status_code=429,
        headers={"retry-after": str(retry_after)},
    )
