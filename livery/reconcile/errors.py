"""Errors raised by reconcile steps.

Each error names the condition it affects and a CamelCase reason, so the
status and the events say which prerequisite is missing. `temporary` errors
are retried after `delay` seconds; the others wait for a change of spec.
"""

from __future__ import annotations

# Retry delays, in seconds.
DEFAULT_RETRY_DELAY = 10.0
MISSING_PLAN_RETRY_DELAY = 60.0
RETAINED_DATA_RETRY_DELAY = 60.0
# Annotation with which an admin lets a new Tenant take over the data a deleted Tenant of the same name retained.
ADOPT_RETAINED_DATA_ANNOTATION = "livery.dev/adopt-retained-data"


class ReconcileError(Exception):
    """A step could not finish. The message never contains a secret."""

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        condition: str = "Ready",
        temporary: bool = True,
        delay: float = DEFAULT_RETRY_DELAY,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.condition = condition
        self.temporary = temporary
        self.delay = delay

    @property
    def message(self) -> str:
        return str(self)


class PlanNotFound(ReconcileError):
    """The Tenant names a Plan that does not exist (yet)."""

    def __init__(self, plan: str) -> None:
        super().__init__(
            f"plan {plan!r} not found; create the Plan or change spec.plan",
            reason="PlanNotFound",
            delay=MISSING_PLAN_RETRY_DELAY,
        )


class IsolationChangeRejected(ReconcileError):
    """The tenant asks for an isolation mode other than the one its data is in."""

    def __init__(self, in_force: str, requested: str) -> None:
        super().__init__(
            f"isolation {requested!r} rejected: the tenant's data is provisioned in {in_force!r} mode and "
            f"moving data between isolation modes is not supported; remove spec.isolation (or set it to "
            f"{in_force!r} on a Tenant where it was unset) and the tenant keeps its {in_force!r} mode",
            reason="IsolationChangeRejected",
            condition="DatabaseReady",
            temporary=False,
        )


class RetainedDataExists(ReconcileError):
    """A new Tenant's name still has the database objects a deleted Tenant retained, and no admin opted in."""

    def __init__(self, modes: list[str]) -> None:
        super().__init__(
            f"database objects of an earlier tenant with this name still exist ({', '.join(modes)} isolation), "
            "kept by its Retain deletion policy. To give that data to this tenant, set the annotation "
            f'{ADOPT_RETAINED_DATA_ANNOTATION}: "true"; otherwise delete this tenant and pick another name, '
            "or drop the old data first",
            reason="RetainedDataExists",
            condition="DatabaseReady",
            delay=RETAINED_DATA_RETRY_DELAY,
        )
