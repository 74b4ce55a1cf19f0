"""Helpers that the database tests share."""

from __future__ import annotations

import uuid

ISOLATIONS = ("database", "schema", "shared")


def unique_tenant_name(prefix: str = "t") -> str:
    """Return a valid tenant name that no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
