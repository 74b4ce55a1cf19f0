"""Fixed-window counters of sign-in attempts per account and per client address.

A password check first counts the attempt (`begin_attempt`), atomically, and
only then verifies the password, so parallel wrong passwords cannot all pass
the check before any of them is counted. A correct password takes its own
attempt back (`record_success`).

`LoginLimiter` counts in this process, so each replica limits on its own.
`RedisLoginLimiter` counts in Redis (`LIVERY_REDIS_URL`), so the limit applies
across every replica.
"""

from __future__ import annotations

import time
from collections import defaultdict

WINDOW_SECONDS = 60
KEY_PREFIX = "livery:login-failures:"
_DECREMENT_IF_EXISTS = "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end return 0"


class LoginLimiter:
    """Count failures per key in one-minute windows; a key over the limit is blocked until its window ends."""

    def __init__(self, max_failures_per_minute: int, clock=time.monotonic) -> None:
        self.max_failures = max_failures_per_minute
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = defaultdict(lambda: (0.0, 0))

    async def retry_after(self, *keys: str) -> int | None:
        """Return seconds to wait when any key is over the limit, else None."""
        now = self._clock()
        waits = []
        for key in keys:
            started, count = self._windows.get(key, (0.0, 0))
            if now - started < WINDOW_SECONDS and count >= self.max_failures:
                waits.append(int(WINDOW_SECONDS - (now - started)) + 1)
        return max(waits) if waits else None

    async def begin_attempt(self, *keys: str) -> int | None:
        """Count one attempt on every key; return seconds to wait when a key is now over the limit, else None.

        Nothing awaits between reading and writing the counters, so concurrent
        requests on one event loop see each other's counts.
        """
        await self.record_failure(*keys)
        now = self._clock()
        waits = []
        for key in keys:
            started, count = self._windows[key]
            if count > self.max_failures:
                waits.append(int(WINDOW_SECONDS - (now - started)) + 1)
        return max(waits) if waits else None

    async def record_failure(self, *keys: str) -> None:
        now = self._clock()
        for key in keys:
            started, count = self._windows[key]
            if now - started >= WINDOW_SECONDS:
                started, count = now, 0
            self._windows[key] = (started, count + 1)
        if len(self._windows) > 100_000:
            self._forget_old(now)

    async def record_success(self, account_key: str, *other_keys: str) -> None:
        """Clear the account's counter and take back the attempt counted on `other_keys`."""
        self._windows.pop(account_key, None)
        for key in other_keys:
            started, count = self._windows.get(key, (0.0, 0))
            if count > 0:
                self._windows[key] = (started, count - 1)

    async def reset(self) -> None:
        self._windows.clear()

    def _forget_old(self, now: float) -> None:
        for key in [key for key, (started, _) in self._windows.items() if now - started >= WINDOW_SECONDS]:
            del self._windows[key]


class RedisLoginLimiter:
    """The same limits as `LoginLimiter`, counted in Redis with INCR and a 60-second expiry per key."""

    def __init__(self, url: str, max_failures_per_minute: int) -> None:
        import redis.asyncio

        self.max_failures = max_failures_per_minute
        self._redis = redis.asyncio.from_url(url)

    async def retry_after(self, *keys: str) -> int | None:
        async with self._redis.pipeline(transaction=False) as pipeline:
            for key in keys:
                pipeline.get(KEY_PREFIX + key)
                pipeline.ttl(KEY_PREFIX + key)
            results = await pipeline.execute()
        waits = []
        for count, ttl in zip(results[::2], results[1::2]):
            if count is not None and int(count) >= self.max_failures:
                waits.append(max(int(ttl), 1))
        return max(waits) if waits else None

    async def begin_attempt(self, *keys: str) -> int | None:
        """Count one attempt on every key with INCR; return seconds to wait when a key is over the limit."""
        async with self._redis.pipeline(transaction=True) as pipeline:
            for key in keys:
                pipeline.incr(KEY_PREFIX + key)
                pipeline.expire(KEY_PREFIX + key, WINDOW_SECONDS, nx=True)
                pipeline.ttl(KEY_PREFIX + key)
            results = await pipeline.execute()
        waits = []
        for count, ttl in zip(results[::3], results[2::3]):
            if int(count) > self.max_failures:
                waits.append(max(int(ttl), 1))
        return max(waits) if waits else None

    async def record_failure(self, *keys: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipeline:
            for key in keys:
                pipeline.incr(KEY_PREFIX + key)
                # NX keeps the window's first expiry, so repeated failures do not extend it.
                pipeline.expire(KEY_PREFIX + key, WINDOW_SECONDS, nx=True)
            await pipeline.execute()

    async def record_success(self, account_key: str, *other_keys: str) -> None:
        """Clear the account's counter and take back the attempt counted on `other_keys`."""
        async with self._redis.pipeline(transaction=True) as pipeline:
            pipeline.delete(KEY_PREFIX + account_key)
            for key in other_keys:
                # DECR only a live key: on an expired one it would create a counter without expiry.
                pipeline.eval(_DECREMENT_IF_EXISTS, 1, KEY_PREFIX + key)
            await pipeline.execute()

    async def reset(self) -> None:
        keys = [key async for key in self._redis.scan_iter(match=KEY_PREFIX + "*")]
        if keys:
            await self._redis.delete(*keys)

    async def close(self) -> None:
        await self._redis.aclose()


async def check_password_limited(context, keys: tuple[str, str], password_hash: str | None, password: str) -> bool:
    """Count a sign-in attempt on `keys` (account key first), then verify `password` against `password_hash`.

    Raises `TooManyRequests` without verifying when a key is over the limit.
    Every path that checks an account's password (token, sign-in page, signup)
    goes through here, so all of them share one budget per account and address.
    """
    from .errors import TooManyRequests

    wait = await context.limiter.begin_attempt(*keys)
    if wait is not None:
        raise TooManyRequests(f"too many failed sign-ins; retry in {wait} seconds", headers={"Retry-After": str(wait)})
    if not await context.passwords.verify(password_hash, password):
        return False
    await context.limiter.record_success(*keys)
    return True
