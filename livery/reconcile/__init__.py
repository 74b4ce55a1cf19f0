"""Reconcile steps shared by the Kubernetes operator and the embedded runtime.

`reconcile_tenant` brings one Tenant in line with its spec through a driver and
the database provisioner, and returns the status to persist. `finalize_tenant`
applies the deletion policy. Callers own persistence and scheduling.
"""

from .context import ReconcileSettings, StepObserver
from .errors import IsolationChangeRejected, PlanNotFound, ReconcileError
from .finalize import finalize_tenant, snapshot_key
from .secrets import SECRET_DATABASE_PASSWORD, SECRET_ISOLATION
from .tenant import ReconcileResult, reconcile_tenant

__all__ = [
    "IsolationChangeRejected",
    "PlanNotFound",
    "ReconcileError",
    "ReconcileResult",
    "ReconcileSettings",
    "SECRET_DATABASE_PASSWORD",
    "SECRET_ISOLATION",
    "StepObserver",
    "finalize_tenant",
    "reconcile_tenant",
    "snapshot_key",
]
