"""Password reset by emailed token: the API, the limits, the web pages and account takeover."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select, update

from livery_control_api.dependencies import SESSION_COOKIE, utcnow
from livery_control_api.password_reset import MAX_RESET_EMAILS_PER_HOUR
from livery_control_api.security import token_digest
from livery_control_api.tables import Account, AuditEntry, PasswordResetToken

from .conftest import unique_name
from .test_pages import form_token

pytestmark = pytest.mark.asyncio(loop_scope="session")

NEW_PASSWORD = "a new and long password"


async def request_reset(api, email: str):
    return await api.http.post("/v1/auth/password-reset", json={"email": email})


def reset_token(api, email: str) -> str:
    link = api.mailer.last_link(email)
    assert link.startswith("http://127.0.0.1:8000/password-reset/confirm?token=")
    return parse_qs(urlsplit(link).query)["token"][0]


async def confirm(api, token: str, password: str = NEW_PASSWORD):
    return await api.http.post("/v1/auth/password-reset/confirm", json={"token": token, "newPassword": password})


async def test_request_same_answer_for_unknown_email(api, fresh_limiter):
    _, _, email = await api.signup()
    unknown = f"{unique_name()}@example.com"
    sent_before = len(api.mailer.sent)

    known_response = await request_reset(api, email)
    unknown_response = await request_reset(api, unknown)

    assert known_response.status_code == 202
    assert unknown_response.status_code == 202
    assert known_response.json() == unknown_response.json()
    recipients = [to for to, _, _ in api.mailer.sent[sent_before:]]
    assert recipients == [email]


async def test_token_is_stored_hashed(api, fresh_limiter):
    _, _, email = await api.signup()
    await request_reset(api, email)
    token = reset_token(api, email)

    async with api.context.sessions() as session:
        account_id = await session.scalar(select(Account.id).where(Account.email == email))
        rows = (await session.scalars(select(PasswordResetToken).where(PasswordResetToken.account_id == account_id))).all()

    assert [row.token_hash for row in rows] == [token_digest(token)]
    assert rows[0].expires_at > utcnow()
    assert rows[0].expires_at < utcnow() + timedelta(hours=2)


async def test_confirm_sets_password_and_ends_sessions(api, fresh_limiter):
    _, _, email = await api.signup()
    old_tokens = (await api.http.post(
        "/v1/auth/token", data={"username": email, "password": "correct horse battery"}
    )).json()
    await request_reset(api, email)

    response = await confirm(api, reset_token(api, email))

    assert response.status_code == 204
    me = await api.http.get("/v1/me", headers={"Authorization": f"Bearer {old_tokens['access_token']}"})
    assert me.status_code == 401
    refresh = await api.http.post(
        "/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": old_tokens["refresh_token"]}
    )
    assert refresh.status_code == 401
    old_password = await api.http.post("/v1/auth/token", data={"username": email, "password": "correct horse battery"})
    assert old_password.status_code == 401
    assert await api.token(email, NEW_PASSWORD)


async def test_confirm_marks_email_verified_and_audits(api, fresh_limiter):
    _, _, email = await api.signup()
    await request_reset(api, email)

    await confirm(api, reset_token(api, email))

    headers = {"Authorization": f"Bearer {await api.token(email, NEW_PASSWORD)}"}
    assert (await api.http.get("/v1/me", headers=headers)).json()["emailVerified"] is True
    async with api.context.sessions() as session:
        actions = (await session.scalars(select(AuditEntry.action).where(AuditEntry.actor == f"account:{email}"))).all()
    assert "account.password_reset" in actions


async def test_used_token_is_rejected(api, fresh_limiter):
    _, _, email = await api.signup()
    await request_reset(api, email)
    token = reset_token(api, email)
    await confirm(api, token)

    response = await confirm(api, token, "yet another password")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_token"
    assert response.json()["error"]["field"] == "token"
    assert await api.token(email, NEW_PASSWORD)


async def test_confirm_uses_up_other_tokens(api, fresh_limiter):
    _, _, email = await api.signup()
    await request_reset(api, email)
    first = reset_token(api, email)
    await request_reset(api, email)
    second = reset_token(api, email)
    assert first != second

    assert (await confirm(api, second)).status_code == 204
    response = await confirm(api, first, "yet another password")

    assert response.status_code == 400


async def test_expired_token_is_rejected(api, fresh_limiter):
    _, _, email = await api.signup()
    await request_reset(api, email)
    token = reset_token(api, email)
    async with api.context.sessions() as session:
        await session.execute(
            update(PasswordResetToken)
            .where(PasswordResetToken.token_hash == token_digest(token))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()

    response = await confirm(api, token)

    assert response.status_code == 400
    assert "expired" in response.json()["error"]["message"]
    assert await api.token(email)


async def test_unknown_token_is_rejected(api, fresh_limiter):
    response = await confirm(api, "not-a-token")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_token"


async def test_short_password_is_rejected(api, fresh_limiter):
    _, _, email = await api.signup()
    await request_reset(api, email)
    token = reset_token(api, email)

    response = await confirm(api, token, "short")

    assert response.status_code == 422
    assert "newPassword" in response.json()["error"]["field"]
    assert (await confirm(api, token)).status_code == 204


async def test_emails_per_account_are_limited(api, fresh_limiter):
    _, _, email = await api.signup()
    sent_before = len(api.mailer.sent)

    statuses = [(await request_reset(api, email)).status_code for _ in range(MAX_RESET_EMAILS_PER_HOUR + 2)]

    assert statuses == [202] * (MAX_RESET_EMAILS_PER_HOUR + 2)
    recipients = [to for to, _, _ in api.mailer.sent[sent_before:]]
    assert recipients == [email] * MAX_RESET_EMAILS_PER_HOUR


async def test_requests_per_address_are_limited(api, fresh_limiter):
    limit = api.context.settings.login_attempts_per_minute
    for _ in range(limit):
        assert (await request_reset(api, f"{unique_name()}@example.com")).status_code == 202

    response = await request_reset(api, f"{unique_name()}@example.com")

    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0


async def test_reset_clears_account_lockout(api, fresh_limiter):
    _, _, email = await api.signup()
    for _ in range(api.context.settings.login_attempts_per_minute):
        await api.http.post("/v1/auth/token", data={"username": email, "password": "wrong password!"})
    locked = await api.http.post("/v1/auth/token", data={"username": email, "password": "correct horse battery"})
    assert locked.status_code == 429
    # The test client's address is blocked too. Clear it, as the owner's own address would not be.
    await api.context.limiter.clear("address:127.0.0.1")
    await request_reset(api, email)

    await confirm(api, reset_token(api, email))

    assert await api.token(email, NEW_PASSWORD)


async def test_owner_takes_back_squatted_email(api, fresh_limiter):
    squatter_response, tenant, email = await api.signup(password="squatter password")
    assert squatter_response.status_code == 201
    squatter = {"Authorization": f"Bearer {await api.token(email, 'squatter password')}"}
    await request_reset(api, email)

    await confirm(api, reset_token(api, email))

    assert (await api.http.get(f"/v1/tenants/{tenant}/members", headers=squatter)).status_code == 401
    wrong = await api.http.post("/v1/auth/token", data={"username": email, "password": "squatter password"})
    assert wrong.status_code == 401
    owner = {"Authorization": f"Bearer {await api.token(email, NEW_PASSWORD)}"}
    assert (await api.http.get(f"/v1/tenants/{tenant}/members", headers=owner)).status_code == 200


async def test_signin_page_links_to_reset(api):
    page = await api.http.get("/signin")

    assert 'href="/password-reset"' in page.text


async def test_reset_pages_change_password(api, fresh_limiter):
    _, _, email = await api.signup()
    api.http.cookies.clear()
    form = await api.http.get("/password-reset")
    assert form.status_code == 200

    sent = await api.http.post("/password-reset", data={"csrf": form_token(form.text), "email": email})

    assert sent.status_code == 200
    assert "Check your email" in sent.text
    token = reset_token(api, email)
    confirm_page = await api.http.get("/password-reset/confirm", params={"token": token})
    assert f'value="{token}"' in confirm_page.text

    done = await api.http.post(
        "/password-reset/confirm",
        data={"csrf": form_token(confirm_page.text), "token": token, "password": NEW_PASSWORD},
    )

    assert done.status_code == 200
    assert "Password changed" in done.text
    assert await api.token(email, NEW_PASSWORD)
    again = await api.http.post(
        "/password-reset/confirm",
        data={"csrf": form_token(confirm_page.text), "token": token, "password": NEW_PASSWORD},
    )
    assert again.status_code == 400
    assert "invalid, used or expired" in again.text
    api.http.cookies.clear()


async def test_reset_page_rejects_forged_form(api, fresh_limiter):
    _, _, email = await api.signup()
    api.http.cookies.clear()
    sent_before = len(api.mailer.sent)

    response = await api.http.post("/password-reset", data={"csrf": "forged", "email": email})

    assert response.status_code == 400
    assert len(api.mailer.sent) == sent_before
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    api.http.cookies.clear()


async def test_invalid_token_skips_hashing(api, fresh_limiter, monkeypatch):
    passwords = api.context.passwords
    hashed = []
    original_hash = passwords.hash

    async def counting_hash(password: str) -> str:
        hashed.append(password)
        return await original_hash(password)

    monkeypatch.setattr(passwords, "hash", counting_hash)

    response = await confirm(api, "not-a-token")

    assert response.status_code == 400
    assert hashed == []


async def test_parallel_confirms_use_token_once(api, fresh_limiter):
    _, _, email = await api.signup()
    await request_reset(api, email)
    token = reset_token(api, email)

    responses = await asyncio.gather(*(confirm(api, token, f"parallel password {index}") for index in range(5)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [204, 400, 400, 400, 400]
