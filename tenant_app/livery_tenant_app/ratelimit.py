"""API rate limiting: the plan's `apiRequestsPerMinute` and a budget for failed authentication.

Only authenticated API requests count toward the tenant's budget and its
`api_calls` usage, so anonymous callers cannot use it up. API requests that
fail authentication are counted per client address, which is the address
behind trusted proxies (see `hosts.resolve_request`). An address past
`FAILED_AUTHENTICATIONS_PER_MINUTE` gets 429 before its credentials are
checked. Counters use fixed one-minute windows and live in-process by
default. With `LIVERY_REDIS_URL` set they live in Redis, so every replica of
the tenant's app shares them. A rejected request gets 429 with `Retry-After`
set to the seconds until the window ends.
"""

from __future__ import annotations

import abc
import logging
import math
import time

from starlette.requests import Request

from .config import LoadedConfig
from .errors import AppError

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
# Failed API authentications a minute per client address; past it the address gets 429.
FAILED_AUTHENTICATIONS_PER_MINUTE = 60


class LimiterStore(abc.ABC):
    """Counts hits per key and window."""

    @abc.abstractmethod
    async def hit(self, key: str, window: int) -> int:
        """Count one hit on `key` in window number `window` and return the window's count so far."""

    @abc.abstractmethod
    async def count(self, key: str, window: int) -> int:
        """Return the hits on `key` in window number `window` without counting one."""

    async def close(self) -> None:
        return None


class MemoryLimiterStore(LimiterStore):
    """Counters in this process; fine for one replica.

    Only counters of the current window are kept: the first hit of a new window
    drops the rest. Within a window at most `max_keys` counters are kept, and
    a new key past that evicts the oldest one.
    """

    # NOTE: an eviction resets that key's count, so a caller who sends more than
    # DEFAULT_MAX_KEYS distinct keys (emails, addresses) in one minute can reset
    # others' counters. Use the Redis store where that matters.
    DEFAULT_MAX_KEYS = 100_000

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self._counts: dict[str, tuple[int, int]] = {}
        self._window: int | None = None
        self._max_keys = max_keys

    def __len__(self) -> int:
        return len(self._counts)

    async def hit(self, key: str, window: int) -> int:
        if self._window is None or window > self._window:
            self._counts = {name: value for name, value in self._counts.items() if value[0] >= window}
            self._window = window
        current_window, count = self._counts.get(key, (window, 0))
        if current_window != window:
            count = 0
        if key not in self._counts and len(self._counts) >= self._max_keys:
            # Dicts keep insertion order, so the first key is the oldest.
            del self._counts[next(iter(self._counts))]
        count += 1
        self._counts[key] = (window, count)
        return count

    async def count(self, key: str, window: int) -> int:
        current_window, count = self._counts.get(key, (window, 0))
        return count if current_window == window else 0


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

    async def count(self, key: str, window: int) -> int:
        value = await self._redis.get(f"{self._prefix}{key}:{window}")
        return int(value or 0)

    async def close(self) -> None:
        await self._redis.aclose()


async def check_budget(store: LimiterStore, key: str, limit: int, now: float | None = None) -> int | None:
    """Count one hit on `key`; return the seconds to wait when it passes `limit` this minute, else None."""
    now = time.time() if now is None else now
    window = int(now // WINDOW_SECONDS)
    if await store.hit(key, window) <= limit:
        return None
    return max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))


def _seconds_to_next_window(now: float) -> int:
    window = int(now // WINDOW_SECONDS)
    return max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))


def _too_many_requests(request: Request, message: str, retry_after: int) -> AppError:
    request.app.state.metrics.rate_limited.inc()
    headers = {"retry-after": str(retry_after)}
    return AppError(429, "rate_limited", f"{message}; retry in {retry_after} s", headers=headers)


def _failed_authentication_key(request: Request) -> str:
    loaded: LoadedConfig = request.scope["state"]["loaded_config"]
    client_ip = request.scope["state"].get("client_ip") or (request.client.host if request.client else "")
    return f"api-auth-failed:{loaded.config.tenant}:{client_ip}"


async def check_failed_authentications(request: Request) -> None:
    """Raise 429 when the request's client address failed API authentication too often this minute."""
    now = time.time()
    store: LimiterStore = request.app.state.limiter_store
    failures = await store.count(_failed_authentication_key(request), int(now // WINDOW_SECONDS))
    if failures >= FAILED_AUTHENTICATIONS_PER_MINUTE:
        message = (
            f"more than {FAILED_AUTHENTICATIONS_PER_MINUTE} failed API authentications a minute from this address; "
            "check the API key"
        )
        raise _too_many_requests(request, message, _seconds_to_next_window(now))


async def count_failed_authentication(request: Request) -> None:
    await check_budget(request.app.state.limiter_store, _failed_authentication_key(request), FAILED_AUTHENTICATIONS_PER_MINUTE)


async def spend_api_budget(request: Request) -> None:
    """Count one authenticated API request toward the plan's budget and usage, or raise 429 past it."""
    loaded: LoadedConfig = request.scope["state"]["loaded_config"]
    limit = loaded.config.limits.api_requests_per_minute
    if limit is not None:
        retry_after = await check_budget(request.app.state.limiter_store, f"api:{loaded.config.tenant}", limit)
        if retry_after is not None:
            raise _too_many_requests(request, f"API rate limit of {limit} requests a minute exceeded", retry_after)
    request.app.state.usage.count_api_call()
