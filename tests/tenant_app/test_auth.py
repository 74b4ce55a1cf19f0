"""Passwords, login link tokens, API keys and the permission table."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import jwt
import pytest

from livery_tenant_app.auth import (
    LoginLinkError,
    api_key_matches,
    generate_api_key,
    has_permission,
    hash_password,
    parse_api_key,
    verify_login_token,
    verify_password,
)

KEY = "login-key-for-tests-0123456789abcdef"


def login_token(key: str = KEY, **overrides) -> str:
    now = int(time.time())
    claims = {"sub": "owner@acme.example", "tenant": "acme", "aud": "livery-login", "iat": now,
              "exp": now + 300, "jti": uuid.uuid4().hex}
    claims.update(overrides)
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode(claims, key, algorithm="HS256")


def test_password_round_trip() -> None:
    stored = hash_password("correct horse battery")

    assert verify_password(stored, "correct horse battery")
    assert not verify_password(stored, "wrong horse battery")
    assert not verify_password(None, "anything")


def test_login_token_accepted() -> None:
    claims = verify_login_token(login_token(sub="Owner@Acme.example"), KEY, "acme")

    assert claims.email == "owner@acme.example"


# Tokens are made inside the test: made at collection time, they could expire before a
# long suite reaches this test.
@pytest.mark.parametrize(
    ("make_token", "message"),
    [
        (lambda: login_token(key="another-login-key-0123456789abcdef"), "invalid"),
        (lambda: login_token(tenant="globex"), "another tenant"),
        (lambda: login_token(aud="something-else"), "invalid"),
        (lambda: login_token(iat=int(time.time()) - 1000, exp=int(time.time()) - 600), "expired"),
        (lambda: login_token(jti=None), "invalid"),
        (lambda: login_token(exp=int(time.time()) + 86400), "longer than"),
        (lambda: "not-a-token", "invalid"),
    ],
    ids=["wrong-key", "another-tenant", "wrong-audience", "expired", "no-jti", "too-long", "garbage"],
)
def test_login_token_rejected(make_token: Callable[[], str], message: str) -> None:
    token = make_token()

    with pytest.raises(LoginLinkError, match=message):
        verify_login_token(token, KEY, "acme")


def test_login_token_with_none_algorithm_rejected() -> None:
    now = int(time.time())
    token = jwt.encode({"sub": "owner@acme.example", "tenant": "acme", "aud": "livery-login", "iat": now,
                        "exp": now + 60, "jti": "x"}, None, algorithm="none")

    with pytest.raises(LoginLinkError):
        verify_login_token(token, KEY, "acme")


def test_api_key_round_trip() -> None:
    new_key = generate_api_key()

    assert parse_api_key(new_key.token) == new_key.key_id
    assert api_key_matches(new_key.token, new_key.key_hash)
    assert not api_key_matches(new_key.token + "x", new_key.key_hash)
    assert new_key.secret not in new_key.key_hash


@pytest.mark.parametrize(
    ("role", "permission", "granted"),
    [
        ("owner", "billing:write", True),
        ("admin", "billing:write", False),
        ("admin", "users:delete", True),
        ("member", "users:read", True),
        ("member", "users:write", False),
        ("member", "settings:write", False),
        ("stranger", "users:read", False),
    ],
)
def test_permission_table(role: str, permission: str, granted: bool) -> None:
    assert has_permission(role, permission) is granted
