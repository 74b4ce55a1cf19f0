"""A correct password never counts against the sign-in limits, also when many checks run in parallel."""

from __future__ import annotations

import asyncio

import pytest

from .conftest import unique_name

pytestmark = pytest.mark.asyncio(loop_scope="session")

KEYS = ("account:a@example.com", "address:10.0.0.7")


async def test_parallel_correct_passwords_succeed(api, fresh_limiter):
    _, _, email = await api.signup()
    count = 2 * api.context.settings.login_attempts_per_minute

    responses = await asyncio.gather(*(
        api.http.post("/v1/auth/token", data={"username": email, "password": "correct horse battery"})
        for _ in range(count)
    ))

    assert [response.status_code for response in responses] == [200] * count


async def test_parallel_identical_signups_repeat_result(api, fresh_limiter):
    tenant = unique_name()
    body = {
        "tenant": tenant, "displayName": "Parallel Inc", "email": f"{tenant}@example.com",
        "password": "correct horse battery", "plan": "free",
    }
    count = 2 * api.context.settings.login_attempts_per_minute

    responses = await asyncio.gather(*(api.http.post("/v1/signup", json=body) for _ in range(count)))

    statuses = [response.status_code for response in responses]
    assert statuses.count(201) == 1, statuses
    assert statuses.count(200) == count - 1, statuses
    assert {response.json()["tenant"] for response in responses} == {tenant}


async def test_wrong_passwords_still_lock_after_correct_ones(api, fresh_limiter):
    _, _, email = await api.signup()
    limit = api.context.settings.login_attempts_per_minute
    requests = [("correct horse battery" if index % 2 else "wrong password!") for index in range(4 * limit)]

    responses = await asyncio.gather(*(
        api.http.post("/v1/auth/token", data={"username": email, "password": password}) for password in requests
    ))

    statuses = [response.status_code for response in responses]
    assert statuses.count(401) == limit
    assert statuses.count(429) + statuses.count(200) == 3 * limit


async def test_check_waits_for_pending_checks(limiter):
    for _ in range(3):
        assert await limiter.begin_attempt(*KEYS) is None
    waiting = asyncio.ensure_future(limiter.begin_attempt(*KEYS))
    await asyncio.sleep(0.2)
    assert not waiting.done()

    await limiter.end_attempt(*KEYS, succeeded=True)

    assert await asyncio.wait_for(waiting, 5) is None


async def test_waiting_check_blocked_by_failures(limiter):
    for _ in range(3):
        assert await limiter.begin_attempt(*KEYS) is None
    waiting = asyncio.ensure_future(limiter.begin_attempt(*KEYS))
    await asyncio.sleep(0.1)

    for _ in range(3):
        await limiter.end_attempt(*KEYS, succeeded=False)

    wait = await asyncio.wait_for(waiting, 5)
    assert wait is not None
    assert wait > 0


async def test_success_clears_account_failures(limiter):
    for _ in range(2):
        await limiter.begin_attempt(*KEYS)
        await limiter.end_attempt(*KEYS, succeeded=False)

    await limiter.begin_attempt(*KEYS)
    await limiter.end_attempt(*KEYS, succeeded=True)

    for _ in range(2):
        assert await limiter.begin_attempt("account:a@example.com", "address:10.0.0.6") is None
        await limiter.end_attempt("account:a@example.com", "address:10.0.0.6", succeeded=False)
    assert await limiter.retry_after("account:a@example.com") is None
