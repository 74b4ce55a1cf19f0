"""Password checks share one rate limit per account and address, also under concurrency and on signup."""

from __future__ import annotations

import asyncio

import pytest

from livery_control_api.dependencies import SESSION_COOKIE

from .test_pages import form_token

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_parallel_wrong_passwords_are_limited(api, fresh_limiter):
    _, _, email = await api.signup()
    limit = api.context.settings.login_attempts_per_minute

    responses = await asyncio.gather(*(
        api.http.post("/v1/auth/token", data={"username": email, "password": "wrong password!"}) for _ in range(60)
    ))

    statuses = [response.status_code for response in responses]
    assert statuses.count(401) == limit
    assert statuses.count(429) == 60 - limit


async def test_repeated_signup_counts_wrong_passwords(api, fresh_limiter):
    _, tenant, email = await api.signup()
    for _ in range(api.context.settings.login_attempts_per_minute):
        await api.signup(tenant=tenant, email=email, password="wrong password!")

    response, _, _ = await api.signup(tenant=tenant, email=email)

    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0


async def test_signup_for_existing_account_counts_wrong_passwords(api, fresh_limiter):
    _, _, email = await api.signup()
    for _ in range(api.context.settings.login_attempts_per_minute):
        await api.signup(email=email, password="wrong password!")

    response, _, _ = await api.signup(email=email)

    assert response.status_code == 429


async def test_repeated_web_signup_starts_no_session(api, fresh_limiter):
    _, tenant, email = await api.signup()
    api.http.cookies.clear()
    page = await api.http.get("/signup")

    response = await api.http.post("/signup", data={
        "csrf": form_token(page.text), "tenant": tenant, "displayName": "Page Corp", "email": email,
        "password": "correct horse battery", "plan": "free",
    })
    api.http.cookies.clear()

    assert response.status_code == 303
    assert response.headers["location"] == "/signin"
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


async def test_begin_attempt_blocks_past_limit(limiter):
    keys = ("account:a@example.com", "address:10.0.0.9")
    for _ in range(3):
        assert await limiter.begin_attempt(*keys) is None
        await limiter.end_attempt(*keys, succeeded=False)

    assert await limiter.begin_attempt(*keys) is not None


async def test_success_counts_nothing(limiter):
    keys = ("account:a@example.com", "address:10.0.0.8")
    for _ in range(5):
        assert await limiter.begin_attempt(*keys) is None
        await limiter.end_attempt(*keys, succeeded=True)

    assert await limiter.retry_after(*keys) is None
