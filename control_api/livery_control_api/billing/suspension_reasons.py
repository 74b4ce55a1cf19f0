"""Why a tenant is suspended: by billing after a grace period, by a platform admin, or both.

`spec.suspended` is one flag that both set, so the reasons are kept in the
tenant's `TenantBilling` row. A payment clears only the billing reason and
resumes the tenant only when no admin suspension is left.
"""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ..tables import TenantBilling


async def record_admin_suspension(session: AsyncSession, tenant: str, suspended: bool) -> None:
    """Record that an admin suspended the tenant, or that an admin resumed it, which clears both reasons."""
    if suspended:
        statement = insert(TenantBilling).values(tenant=tenant, suspended_by_admin=True)
        await session.execute(
            statement.on_conflict_do_update(index_elements=[TenantBilling.tenant], set_={"suspended_by_admin": True})
        )
        return
    billing = await session.get(TenantBilling, tenant, with_for_update=True)
    if billing is not None:
        billing.suspended_by_admin = False
        billing.suspended_by_billing = False
