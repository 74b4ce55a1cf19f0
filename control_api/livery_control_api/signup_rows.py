"""Write the database rows of one signup in a single statement.

A signup adds an email verification token, the signup itself, for a new email
the account, and for a signup that needs no payment the owner membership. A
signup waiting for payment gets its membership only when its Tenant is written,
so it grants no role in a Tenant that someone else creates under the name meanwhile. Data-modifying CTEs send them as one
statement, so a signup costs one round trip to PostgreSQL instead of four.
Foreign keys are still checked, at the end of the statement, and a unique
violation (a concurrent signup of the same name or email) raises
`IntegrityError` as separate inserts would.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Insert, bindparam, insert
from sqlalchemy.ext.asyncio import AsyncSession

from .tables import Account, EmailVerificationToken, Membership, Signup


def _signup_rows_statement(*, new_account: bool, owner: bool) -> Insert:
    account_id = bindparam("account_id")
    statement = insert(Signup.__table__).values(
        tenant=bindparam("tenant"), email=bindparam("email"), display_name=bindparam("display_name"),
        plan=bindparam("plan"), account_id=account_id, state=bindparam("state"),
    )
    if new_account:
        account = insert(Account.__table__).values(
            id=account_id, email=bindparam("email"), password_hash=bindparam("password_hash"), token_version=0
        )
        statement = statement.add_cte(account.cte("new_account"))
    if owner:
        membership = insert(Membership.__table__).values(account_id=account_id, tenant=bindparam("tenant"), role="owner")
        statement = statement.add_cte(membership.cte("new_membership"))
    token = insert(EmailVerificationToken.__table__).values(
        token_hash=bindparam("token_hash"), account_id=account_id, expires_at=bindparam("expires_at")
    )
    return statement.add_cte(token.cte("new_token"))


# Keyed by (new account, owner membership).
STATEMENTS = {
    (new_account, owner): _signup_rows_statement(new_account=new_account, owner=owner)
    for new_account in (True, False)
    for owner in (True, False)
}


async def insert_signup_rows(
    session: AsyncSession, signup: Signup, account: Account, *, new_account: bool, token_hash: str, expires_at: datetime
) -> None:
    """Insert the rows of `signup`, and `account` when `new_account`, in the session's transaction.

    The owner membership is inserted only for a signup in state `complete`.
    """
    parameters = {
        "tenant": signup.tenant, "email": signup.email, "display_name": signup.display_name, "plan": signup.plan,
        "account_id": account.id, "state": signup.state, "token_hash": token_hash, "expires_at": expires_at,
    }
    if new_account:
        parameters["password_hash"] = account.password_hash
    await session.execute(STATEMENTS[(new_account, signup.state == "complete")], parameters)
