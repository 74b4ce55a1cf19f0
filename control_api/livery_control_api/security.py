"""Passwords, access and refresh tokens, API keys, one-time tokens and login links."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from starlette.concurrency import run_in_threadpool

API_KEY_PREFIX = "lvk_"
JWT_ALGORITHM = "HS256"
ACCESS_AUDIENCE = "livery-control-api"
LOGIN_LINK_AUDIENCE = "livery-login"
LOGIN_LINK_SECONDS = 300


class PasswordHashing:
    """argon2id hashing in worker threads; one hash costs tens of milliseconds of CPU at the defaults.

    The defaults are argon2-cffi's, the RFC 9106 low-memory profile
    (time cost 3, 64 MiB, parallelism 4).
    """

    def __init__(self, time_cost: int = 3, memory_kib: int = 65536, parallelism: int = 4) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        # Checked when the account does not exist, so a sign-in takes as long either way.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await run_in_threadpool(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Check `password` against `password_hash`; a missing hash costs the same time and fails."""

        def verify() -> bool:
            try:
                return self._hasher.verify(password_hash or self._dummy_hash, password) and password_hash is not None
            except (VerificationError, InvalidHashError):
                return False

        return await run_in_threadpool(verify)


def token_digest(token: str) -> str:
    """Return the SHA-256 hex digest stored in place of a random token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def new_api_key() -> str:
    """Return a new API key; the prefix lets secret scanners recognise leaked keys."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class AccessClaims:
    account_id: str
    email: str
    kind: str  # "access" or "refresh"
    token_version: int
    jti: str = ""
    expires_at: int = 0  # Unix seconds


def issue_token(secret: str, account_id: str, email: str, kind: str, lifetime_seconds: int, token_version: int = 0) -> str:
    now = int(time.time())
    claims = {
        "sub": account_id,
        "email": email,
        "typ": kind,
        "ver": token_version,
        "aud": ACCESS_AUDIENCE,
        "iat": now,
        "exp": now + lifetime_seconds,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


def read_token(secret: str, token: str, kind: str) -> AccessClaims | None:
    """Return the claims of a valid, unexpired token of `kind`, or None."""
    try:
        claims = jwt.decode(token, secret, algorithms=[JWT_ALGORITHM], audience=ACCESS_AUDIENCE)
    except jwt.PyJWTError:
        return None
    if claims.get("typ") != kind or not isinstance(claims.get("sub"), str):
        return None
    return AccessClaims(
        claims["sub"], claims.get("email", ""), kind, int(claims.get("ver", 0)), str(claims.get("jti", "")),
        int(claims.get("exp", 0)),
    )


def issue_login_link_token(login_key: str, tenant: str, owner_email: str) -> str:
    """Return a one-time sign-in token that the tenant app accepts at `/auth/link` for 300 seconds."""
    now = int(time.time())
    claims = {
        "sub": owner_email,
        "tenant": tenant,
        "aud": LOGIN_LINK_AUDIENCE,
        "iat": now,
        "exp": now + LOGIN_LINK_SECONDS,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, login_key, algorithm=JWT_ALGORITHM)


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def csrf_token(secret: str, session_token: str) -> str:
    """Return the CSRF token bound to one browser session: an HMAC of the session cookie."""
    return hmac.new(secret.encode(), b"csrf:" + session_token.encode(), hashlib.sha256).hexdigest()
