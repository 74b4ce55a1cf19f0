"""PostgreSQL provisioning of tenants in database, schema and shared isolation mode."""

from .errors import DatabaseError, SnapshotError
from .provisioner import DatabaseInfo, DatabaseProvisioner

__all__ = ["DatabaseError", "DatabaseInfo", "DatabaseProvisioner", "SnapshotError"]
