"""Plans read for signups, kept for a few seconds because every signup reads one."""

from __future__ import annotations

import time

from livery.models.plan import Plan
from livery.store.base import ResourceStore


class PlanCache:
    """Plans from `store` by name, each kept for `seconds` after it was read.

    A missing plan is not kept, so a plan an admin has just created is found at
    once. An edited or deleted plan reaches signups after at most `seconds`.
    """

    def __init__(self, store: ResourceStore, seconds: float) -> None:
        self._store = store
        self._seconds = seconds
        self._plans: dict[str, tuple[float, Plan]] = {}

    async def get(self, name: str) -> Plan:
        """Return the plan `name`, or raise the store's `NotFound`."""
        cached = self._plans.get(name)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self._seconds:
            return cached[1]
        plan = await self._store.get_plan(name)
        if self._seconds > 0:
            self._plans[name] = (now, plan)
        return plan
