"""Errors of the database provisioner. Messages never contain a password or a URL with one."""

from __future__ import annotations


class DatabaseError(Exception):
    """A provisioning step failed.

    `temporary` errors (the server is unreachable, a lock timed out) are worth
    retrying as they are; the others need a change of spec or of the server.
    `reason` is a CamelCase word for the Tenant's `DatabaseReady` condition.
    """

    def __init__(self, message: str, *, temporary: bool = True, reason: str = "DatabaseError") -> None:
        super().__init__(message)
        self.temporary = temporary
        self.reason = reason


class SnapshotError(DatabaseError):
    """pg_dump could not be run or failed."""

    def __init__(self, message: str, *, temporary: bool = False, reason: str = "SnapshotFailed") -> None:
        super().__init__(message, temporary=temporary, reason=reason)
