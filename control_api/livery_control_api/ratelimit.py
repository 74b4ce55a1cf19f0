"""Fixed-window counters of failed sign-ins per account and per client address.

A password check is admitted (`begin_attempt`) before the hash is verified,
and ended (`end_attempt`) with its result. While it runs it counts as pending
on each key. A check is admitted only when the key's failures plus its pending
checks stay under the limit, and otherwise waits until the pending checks end.
So parallel wrong passwords cannot all pass the check before any of them is
counted, and a correct password never counts: 20 parallel sign-ins with the
right password all succeed.

A key whose failures reach the limit is blocked until its one-minute window
ends. The account key makes this a lockout: anyone who sends the limit's worth
of wrong passwords for an email blocks password sign-in to that account for the
rest of the minute, from every address. Tokens and console sessions issued
before keep working, and a password reset clears the account's counter. The
lockout is kept because without it a guesser with many addresses would get the
limit's worth of guesses per address instead of per account.

`LoginLimiter` counts in this process, so each replica limits on its own.
`RedisLoginLimiter` counts in Redis (`LIVERY_REDIS_URL`), so the limit applies
across every replica.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

WINDOW_SECONDS = 60
KEY_PREFIX = "livery:login-failures:"
PENDING_PREFIX = "livery:login-pending:"
# A check waiting for pending checks gives up after this many seconds with a 429.
# Argon2 at the defaults takes tens of milliseconds, so only a stalled server reaches it.
PENDING_WAIT_SECONDS = 10.0
PENDING_POLL_SECONDS = 0.02
ADMITTED = -1
MUST_WAIT = 0

# KEYS: the failure counters, then the pending counters of the same keys. ARGV: limit, window seconds.
# Returns ADMITTED, MUST_WAIT, or the seconds until the first blocked key's window ends.
_ADMIT_SCRIPT = """
local n = #KEYS / 2
local limit = tonumber(ARGV[1])
local wait = 0
for i = 1, n do
  if tonumber(redis.call('GET', KEYS[i]) or '0') >= limit then
    wait = math.max(wait, redis.call('TTL', KEYS[i]), 1)
  end
end
if wait > 0 then return wait end
for i = 1, n do
  local failures = tonumber(redis.call('GET', KEYS[i]) or '0')
  local pending = tonumber(redis.call('GET', KEYS[n + i]) or '0')
  if failures + pending >= limit then return 0 end
end
for i = 1, n do
  redis.call('INCR', KEYS[n + i])
  redis.call('EXPIRE', KEYS[n + i], ARGV[2])
end
return -1
"""

# KEYS as above. ARGV: 'failed' or 'succeeded', window seconds. A success clears the first key (the account).
_END_SCRIPT = """
local n = #KEYS / 2
for i = 1, n do
  if tonumber(redis.call('GET', KEYS[n + i]) or '0') > 0 then redis.call('DECR', KEYS[n + i]) end
  if ARGV[1] == 'failed' then
    redis.call('INCR', KEYS[i])
    if redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ARGV[2]) end
  end
end
if ARGV[1] == 'succeeded' then redis.call('DEL', KEYS[1]) end
return 0
"""


async def _wait_for_admission(try_admit, keys: tuple[str, ...]) -> int | None:
    """Call `try_admit` until it admits the check (None) or blocks it (seconds to wait)."""
    deadline = time.monotonic() + PENDING_WAIT_SECONDS
    while True:
        outcome = await try_admit(keys)
        if outcome == ADMITTED:
            return None
        if outcome != MUST_WAIT:
            return outcome
        if time.monotonic() >= deadline:
            return 1
        await asyncio.sleep(PENDING_POLL_SECONDS)


class LoginLimiter:
    """Count failures per key in one-minute windows; a key at the limit is blocked until its window ends."""

    def __init__(self, max_failures_per_minute: int, clock=time.monotonic) -> None:
        self.max_failures = max_failures_per_minute
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}
        self._pending: dict[str, int] = defaultdict(int)

    def _failures(self, key: str, now: float) -> tuple[float, int]:
        started, count = self._windows.get(key, (0.0, 0))
        if now - started >= WINDOW_SECONDS:
            return now, 0
        return started, count

    async def retry_after(self, *keys: str) -> int | None:
        """Return seconds to wait when any key is at the limit, else None."""
        now = self._clock()
        waits = []
        for key in keys:
            started, count = self._failures(key, now)
            if count >= self.max_failures:
                waits.append(int(WINDOW_SECONDS - (now - started)) + 1)
        return max(waits) if waits else None

    async def begin_attempt(self, *keys: str) -> int | None:
        """Admit one password check on `keys` and return None, or return seconds to wait when a key is blocked.

        Waits while the key's pending checks could still bring it to the limit.
        """
        return await _wait_for_admission(self._try_admit, keys)

    async def _try_admit(self, keys: tuple[str, ...]) -> int:
        # Nothing awaits between reading and writing the counters, so this is atomic on the event loop.
        wait = await self.retry_after(*keys)
        if wait is not None:
            return wait
        now = self._clock()
        if any(self._failures(key, now)[1] + self._pending[key] >= self.max_failures for key in keys):
            return MUST_WAIT
        for key in keys:
            self._pending[key] += 1
        return ADMITTED

    async def end_attempt(self, *keys: str, succeeded: bool) -> None:
        """End a check admitted by `begin_attempt`: count a failure on every key, or clear the first (the account)."""
        for key in keys:
            self._pending[key] -= 1
            if self._pending[key] <= 0:
                del self._pending[key]
        if succeeded:
            await self.clear(keys[0])
        else:
            await self.record_failure(*keys)

    async def record_failure(self, *keys: str) -> None:
        now = self._clock()
        for key in keys:
            started, count = self._failures(key, now)
            self._windows[key] = (started, count + 1)
        if len(self._windows) > 100_000:
            self._forget_old(now)

    async def clear(self, *keys: str) -> None:
        """Forget the failures counted on `keys`."""
        for key in keys:
            self._windows.pop(key, None)

    async def reset(self) -> None:
        self._windows.clear()
        self._pending.clear()

    def _forget_old(self, now: float) -> None:
        for key in [key for key, (started, _) in self._windows.items() if now - started >= WINDOW_SECONDS]:
            del self._windows[key]


class RedisLoginLimiter:
    """The same limits as `LoginLimiter`, counted in Redis by Lua scripts, with a 60-second expiry per key.

    NOTE: the scripts touch every key of a check, so on Redis Cluster the keys
    of one check must hash to one slot, which these key names do not ensure.
    A pending counter left by a crashed replica expires 60 seconds after the
    key's last admitted check.
    """

    def __init__(self, url: str, max_failures_per_minute: int) -> None:
        import redis.asyncio

        self.max_failures = max_failures_per_minute
        self._redis = redis.asyncio.from_url(url)
        self._admit = self._redis.register_script(_ADMIT_SCRIPT)
        self._end = self._redis.register_script(_END_SCRIPT)

    @staticmethod
    def _script_keys(keys: tuple[str, ...]) -> list[str]:
        return [KEY_PREFIX + key for key in keys] + [PENDING_PREFIX + key for key in keys]

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
        """Admit one password check on `keys` and return None, or return seconds to wait when a key is blocked."""
        return await _wait_for_admission(self._try_admit, keys)

    async def _try_admit(self, keys: tuple[str, ...]) -> int:
        return int(await self._admit(keys=self._script_keys(keys), args=[self.max_failures, WINDOW_SECONDS]))

    async def end_attempt(self, *keys: str, succeeded: bool) -> None:
        """End a check admitted by `begin_attempt`: count a failure on every key, or clear the first (the account)."""
        outcome = "succeeded" if succeeded else "failed"
        await self._end(keys=self._script_keys(keys), args=[outcome, WINDOW_SECONDS])

    async def record_failure(self, *keys: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipeline:
            for key in keys:
                pipeline.incr(KEY_PREFIX + key)
                # NX keeps the window's first expiry, so repeated failures do not extend it.
                pipeline.expire(KEY_PREFIX + key, WINDOW_SECONDS, nx=True)
            await pipeline.execute()

    async def clear(self, *keys: str) -> None:
        """Forget the failures counted on `keys`."""
        await self._redis.delete(*(KEY_PREFIX + key for key in keys))

    async def reset(self) -> None:
        keys = [key async for key in self._redis.scan_iter(match="livery:login-*")]
        if keys:
            await self._redis.delete(*keys)

    async def close(self) -> None:
        await self._redis.aclose()


async def check_password_limited(context, keys: tuple[str, str], password_hash: str | None, password: str) -> bool:
    """Verify `password` against `password_hash` within the sign-in limits of `keys` (account key first).

    Raises `TooManyRequests` without verifying when a key is blocked. Only a
    wrong password counts, also when the client disconnects during the check.
    Every path that checks an account's password (token, sign-in page, signup)
    goes through here, so all of them share one budget per account and address.
    """
    from .errors import TooManyRequests

    wait = await context.limiter.begin_attempt(*keys)
    if wait is not None:
        raise TooManyRequests(f"too many failed sign-ins; retry in {wait} seconds", headers={"Retry-After": str(wait)})
    correct = False
    try:
        correct = await context.passwords.verify(password_hash, password)
    finally:
        await context.limiter.end_attempt(*keys, succeeded=correct)
    return correct
