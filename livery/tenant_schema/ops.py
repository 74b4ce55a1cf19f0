"""Operations that migrations use to keep every tenant table isolated in shared mode.

Every migration that creates a tenant table calls `isolate_table` on it. In
shared mode it forces row-level security with a policy that admits only rows
of the transaction's tenant, and only to that tenant's own role. In the other
modes the database or schema already isolates the tenant, so it does nothing.
"""

from __future__ import annotations

from alembic import op

from livery.naming import IDENTIFIER_PREFIX, SHARED_APP_ROLE

from .constants import CURRENT_TENANT_SQL, VERSION_TABLE

POLICY_NAME = "tenant_isolation"

# A row is visible when its tenant_id equals the transaction's tenant, and only
# to that tenant's own role, so a tenant role that sets another tenant's name
# gets no rows. The role test sits inside the compared expression
# instead of being a second condition, so the planner sees one equality on
# tenant_id: it estimates rows from tenant_id's statistics and uses indexes
# that lead with tenant_id, as for a query filtered in application code. The
# role expression repeats `livery.naming.postgres_identifier`, which is exact
# for every valid tenant name (at most 40 characters, never hashed).
POLICY_TENANT_SQL = (
    f"CASE WHEN current_user = ('{IDENTIFIER_PREFIX}' || translate({CURRENT_TENANT_SQL}, '-', '_'))::name "
    f"THEN {CURRENT_TENANT_SQL} END"
)
TENANT_PREDICATE = f"tenant_id = ({POLICY_TENANT_SQL})"


def migration_isolation() -> str:
    """Return the isolation mode (database, schema or shared) of the running migration."""
    return op.get_context().config.attributes["isolation"]


def isolate_table(table: str) -> None:
    """Force row-level security on `table` and grant DML on it to tenant roles (shared mode only)."""
    if migration_isolation() != "shared":
        return
    op.execute(f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY')
    op.execute(f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY')
    op.execute(
        f'CREATE POLICY {POLICY_NAME} ON "{table}" TO {SHARED_APP_ROLE} '
        f"USING ({TENANT_PREDICATE}) WITH CHECK ({TENANT_PREDICATE})"
    )
    op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON "{table}" TO {SHARED_APP_ROLE}')


def replace_policy(table: str) -> None:
    """Set the policy of an isolated `table` to the current `TENANT_PREDICATE` (shared mode only)."""
    if migration_isolation() != "shared":
        return
    op.execute(f'ALTER POLICY {POLICY_NAME} ON "{table}" USING ({TENANT_PREDICATE}) WITH CHECK ({TENANT_PREDICATE})')


def grant_version_table() -> None:
    """Let tenant roles read the version table, so the app's readiness check can (shared mode only)."""
    if migration_isolation() != "shared":
        return
    op.execute(f"GRANT SELECT ON {VERSION_TABLE} TO {SHARED_APP_ROLE}")
