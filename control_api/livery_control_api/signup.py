"""Signup: name check, owner account, Tenant resource or Stripe Checkout.

A signup writes its database rows and the Tenant resource as one unit: the
rows are flushed (so unique constraints decide races) before the Tenant is
written, and the transaction commits only after the write succeeded. If the
commit fails afterwards, the Tenant is deleted again, so no path leaves an
account without its tenant or a tenant without its account.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from livery.models.plan import Plan
from livery.models.rules import TENANT_NAME
from livery.models.tenant import Tenant, reserved_name_reason
from livery.store.base import AlreadyExists as StoreAlreadyExists
from livery.store.base import CONTROL_API_FIELD_MANAGER, ResourceStore
from livery.store.base import NotFound as StoreNotFound

from .audit import record_audit
from .billing.provider import BillingError
from .billing.retire import retire_billing
from .context import AppContext
from .dependencies import utcnow
from .errors import Conflict, InvalidInput, PaymentRequired, Unavailable
from .ratelimit import check_password_limited
from .schemas import NameCheck, SignupRequest
from .security import new_token, token_digest
from .signup_rows import insert_signup_rows
from .team_sync import bind, grant_owner
from .tables import Account, Signup, TenantBilling

logger = logging.getLogger("livery.control_api.signup")

VERIFICATION_HOURS = 48


async def check_tenant_name(name: str, store: ResourceStore, session: AsyncSession) -> NameCheck:
    """Return whether `name` can be signed up, with distinct reasons for invalid, reserved and taken names."""
    problem = name_problem(name)
    if problem is not None:
        return problem
    if await session.get(Signup, name) is not None or await _tenant_exists(store, name):
        return _taken(name)
    return NameCheck(name=name, available=True, message=f"{name!r} is available.")


def name_problem(name: str) -> NameCheck | None:
    """Return why `name` breaks the Tenant name rules or is reserved, or None when it does neither."""
    try:
        TENANT_NAME.check(name)
    except Exception as exc:  # pydantic_core.PydanticCustomError carries the rule text
        message = str(exc)
        return NameCheck(name=name, available=False, reason="invalid", message=f"Tenant name {message}")
    reason = reserved_name_reason(name)
    if reason is not None:
        return NameCheck(name=name, available=False, reason="reserved", message=f"Tenant name {name!r} {reason}.")
    return None


def _taken(name: str) -> NameCheck:
    return NameCheck(name=name, available=False, reason="taken", message=f"Tenant name {name!r} is already taken.")


async def _tenant_exists(store: ResourceStore, name: str) -> bool:
    return await _existing_tenant(store, name) is not None


async def _existing_tenant(store: ResourceStore, name: str) -> Tenant | None:
    try:
        return await store.get_tenant(name)
    except StoreNotFound:
        return None


@dataclass
class SignupResult:
    signup: Signup
    account: Account
    created: bool
    verification_token: str | None = None
    tenant: Tenant | None = None


def tenant_spec(signup: Signup) -> dict:
    return {"displayName": signup.display_name, "plan": signup.plan, "owner": {"email": signup.email}}


async def sign_up(
    context: AppContext, session: AsyncSession, request: SignupRequest, *, client_address: str
) -> SignupResult:
    """Create the owner account and the Tenant, or start a Checkout for a paid plan.

    A repeat of a completed or pending signup with the same email, tenant and
    password returns the first result (`created` False) and creates nothing.
    Every check of an existing account's password is subject to the sign-in
    limits of that account and of `client_address`, as `/v1/auth/token` is, and
    a wrong password counts against them.
    """
    email = request.email.lower()
    keys = (f"account:{email}", f"address:{client_address}")
    existing = await session.get(Signup, request.tenant)
    if existing is not None:
        return await _repeat(context, session, existing, email, request.password, keys)

    problem = name_problem(request.tenant)
    if problem is not None:
        raise InvalidInput(problem.message, field="tenant", code=f"name_{problem.reason}")
    plan = await _plan_for_signup(context, request.plan)
    paid = plan.spec.billing.stripe_price_id is not None
    # A free signup finds out that a Tenant of that name exists when its own create fails, which
    # also closes the race with an admin creating one. A paid signup checks before the Checkout.
    if paid and await _tenant_exists(context.store, request.tenant):
        raise _name_taken(request.tenant)
    # The name is free, so billing state under it belongs to a deleted tenant (deleted with kubectl, say).
    await retire_billing(session, request.tenant, "signup")

    account = await session.scalar(select(Account).where(Account.email == email))
    new_account = account is None
    if account is None:
        password_hash = await context.passwords.hash(request.password)
        account = Account(id=str(uuid.uuid4()), email=email, password_hash=password_hash, token_version=0)
    elif not await check_password_limited(context, keys, account.password_hash, request.password):
        # NOTE: this answer tells that the email has an account, at the sign-in rate limit. Hiding it
        # needs a confirmation email before a tenant is added to an existing account.
        raise Conflict(
            f"an account with {email} exists already; sign in with its password to add a tenant", field="email",
            code="account_exists",
        )

    signup = Signup(
        tenant=request.tenant, email=email, display_name=request.display_name, plan=plan.name,
        account_id=account.id, state="pending_payment" if paid else "complete",
    )
    verification = new_token()
    try:
        await insert_signup_rows(
            session, signup, account, new_account=new_account, token_hash=token_digest(verification),
            expires_at=utcnow() + timedelta(hours=VERIFICATION_HOURS),
        )
    except IntegrityError:
        # A concurrent signup for the same tenant name or email won the race.
        await session.rollback()
        existing = await session.get(Signup, request.tenant)
        if existing is not None:
            return await _repeat(context, session, existing, email, request.password, keys)
        raise Conflict(f"signup for {request.tenant!r} collided with another; retry", field="tenant") from None

    tenant = None
    if paid:
        await _start_checkout(context, session, signup, plan)
        await session.commit()
    else:
        tenant = await _write_tenant_then_commit(context, session, signup)
    logger.info("signup of tenant %s on plan %s (%s)", signup.tenant, plan.name, signup.state)
    return SignupResult(signup=signup, account=account, created=True, verification_token=verification, tenant=tenant)


async def _repeat(
    context: AppContext, session: AsyncSession, existing: Signup, email: str, password: str, keys: tuple[str, str]
) -> SignupResult:
    account = await session.get(Account, existing.account_id)
    # The password is checked, and counted, even for another email, so the answer's timing
    # does not tell which email owns the tenant.
    password_hash = account.password_hash if account is not None and existing.email == email else None
    if not await check_password_limited(context, keys, password_hash, password):
        raise Conflict(f"Tenant name {existing.tenant!r} is already taken.", field="tenant", code="name_taken")
    return SignupResult(signup=existing, account=account, created=False)


async def _plan_for_signup(context: AppContext, name: str) -> Plan:
    try:
        plan = await context.plans.get(name)
    except StoreNotFound:
        known = ", ".join(plan.name for plan in await context.store.list_plans()) or "none"
        raise InvalidInput(f"plan {name!r} does not exist; available plans: {known}", field="plan") from None
    if plan.spec.billing.stripe_price_id is not None and not context.billing.enabled:
        raise PaymentRequired(
            f"plan {name!r} is paid and this platform has no billing configured; sign up for a free plan "
            "and ask a platform admin to change it",
            field="plan",
        )
    return plan


async def _start_checkout(context: AppContext, session: AsyncSession, signup: Signup, plan: Plan) -> None:
    base = context.settings.public_url.rstrip("/")
    try:
        checkout = await context.billing.create_checkout_session(
            tenant=signup.tenant, plan=plan, email=signup.email, customer_id=None,
            success_url=f"{base}/console/{signup.tenant}?checkout=success",
            cancel_url=f"{base}/signup?checkout=cancelled",
            idempotency_key=f"signup-{signup.tenant}-{token_digest(signup.email)[:16]}",
        )
    except BillingError as exc:
        await session.rollback()
        raise Unavailable(f"payment could not be started: {exc}; nothing was created, retry later") from None
    signup.checkout_session_id = checkout.id
    signup.checkout_url = checkout.url
    await session.execute(
        update(Signup)
        .where(Signup.tenant == signup.tenant)
        .values(checkout_session_id=checkout.id, checkout_url=checkout.url)
    )


async def _write_tenant_then_commit(context: AppContext, session: AsyncSession, signup: Signup) -> Tenant:
    try:
        tenant = await context.store.create_tenant(signup.tenant, tenant_spec(signup), CONTROL_API_FIELD_MANAGER)
    except StoreAlreadyExists:
        await session.rollback()
        raise _name_taken(signup.tenant) from None
    except Exception:
        await session.rollback()
        raise
    try:
        # Recorded at once, so that a Tenant re-created outside the API before the next team sync
        # is recognised as a different Tenant.
        await bind(session, tenant)
        await session.commit()
    except Exception:
        logger.error("signup of tenant %s failed at commit; deleting its Tenant again", signup.tenant)
        await context.store.delete_tenant(signup.tenant)
        raise
    return tenant


def _name_taken(name: str) -> Conflict:
    return Conflict(_taken(name).message, field="tenant", code="name_taken")


async def complete_paid_signup(
    context: AppContext, session: AsyncSession, tenant: str, customer_id: str | None, subscription_id: str | None
) -> bool:
    """Write the Tenant of a signup whose payment completed; return False when no signup waits for it."""
    signup = await session.get(Signup, tenant, with_for_update=True)
    if signup is None:
        return False
    if signup.state != "complete":
        existing = await _existing_tenant(context.store, signup.tenant)
        owner = existing.spec.owner.email if existing is not None and existing.spec.owner else None
        if existing is not None and owner != signup.email:
            # An admin created a tenant of this name while the payment ran. Writing over it would
            # hand someone else's tenant to this customer, so a platform admin has to resolve it.
            logger.error("paid signup of %s collides with an existing tenant of another owner; not written", signup.tenant)
            record_audit(session, "stripe", "billing.signup_collision", signup.tenant, email=signup.email)
            return True
        written = await context.store.apply_tenant(signup.tenant, tenant_spec(signup), CONTROL_API_FIELD_MANAGER)
        signup.state = "complete"
        # The signup's owner membership waited for this write.
        await grant_owner(session, signup.tenant, signup.account_id)
        await bind(session, written)
    billing = await session.get(TenantBilling, tenant, with_for_update=True)
    if billing is None:
        billing = TenantBilling(tenant=tenant)
        session.add(billing)
    billing.customer_id = customer_id or billing.customer_id
    billing.subscription_id = subscription_id or billing.subscription_id
    return True
