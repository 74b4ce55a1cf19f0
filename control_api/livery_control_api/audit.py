"""The audit log: every admin action and every billing state change, in the caller's transaction."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from .tables import AuditEntry

logger = logging.getLogger("livery.control_api.audit")


def record_audit(session: AsyncSession, actor: str, action: str, tenant: str | None, **detail: Any) -> None:
    """Add an audit entry; it is written when the caller's transaction commits, and only then."""
    session.add(AuditEntry(actor=actor, action=action, tenant=tenant, detail=detail))
    logger.info("audit %s by %s on %s", action, actor, tenant or "-", extra={"detail": detail})
