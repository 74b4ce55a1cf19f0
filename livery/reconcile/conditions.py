"""Kubernetes-style conditions: set one, keeping `lastTransitionTime` while its status holds."""

from __future__ import annotations

from datetime import UTC, datetime

from ..models.tenant import CONDITION_TYPES, Condition


def now_rfc3339() -> str:
    """Return the current UTC time as the API server writes timestamps: `2026-01-02T03:04:05Z`."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_condition(
    kind: str,
    status: bool | None,
    reason: str,
    message: str,
    generation: int | None,
    previous: Condition | None,
) -> Condition:
    """Build condition `kind`; `lastTransitionTime` changes only when the status does."""
    text = "Unknown" if status is None else ("True" if status else "False")
    if previous is not None and previous.status == text and previous.last_transition_time:
        transition = previous.last_transition_time
    else:
        transition = now_rfc3339()
    return Condition(
        type=kind,
        status=text,
        reason=reason,
        message=message,
        last_transition_time=transition,
        observed_generation=generation,
    )


def ordered(conditions: dict[str, Condition]) -> list[Condition]:
    """Return the conditions in the documented order: Ready, DatabaseReady, AppReady, RoutingReady."""
    return [conditions[kind] for kind in CONDITION_TYPES if kind in conditions]


def changed(before: Condition | None, after: Condition) -> bool:
    """Tell whether a condition moved to another status or reason (an event is worth sending)."""
    return before is None or before.status != after.status or before.reason != after.reason
