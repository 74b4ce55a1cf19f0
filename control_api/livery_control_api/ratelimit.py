"""A fixed-window counter of failed sign-ins per account and per client address."""

from __future__ import annotations

import time
from collections import defaultdict


class LoginLimiter:
    """Count failures per key in one-minute windows; a key over the limit is blocked until its window ends.

    NOTE: the counters live in this process, so each replica limits on its own.
    A shared store (Redis, `LIVERY_REDIS_URL`) is needed for a global limit.
    """

    def __init__(self, max_failures_per_minute: int, clock=time.monotonic) -> None:
        self.max_failures = max_failures_per_minute
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = defaultdict(lambda: (0.0, 0))

    def retry_after(self, *keys: str) -> int | None:
        """Return seconds to wait when any key is over the limit, else None."""
        now = self._clock()
        waits = []
        for key in keys:
            started, count = self._windows.get(key, (0.0, 0))
            if now - started < 60 and count >= self.max_failures:
                waits.append(int(60 - (now - started)) + 1)
        return max(waits) if waits else None

    def record_failure(self, *keys: str) -> None:
        now = self._clock()
        for key in keys:
            started, count = self._windows[key]
            if now - started >= 60:
                started, count = now, 0
            self._windows[key] = (started, count + 1)
        if len(self._windows) > 100_000:
            self._forget_old(now)

    def record_success(self, account_key: str) -> None:
        self._windows.pop(account_key, None)

    def _forget_old(self, now: float) -> None:
        for key in [key for key, (started, _) in self._windows.items() if now - started >= 60]:
            del self._windows[key]
