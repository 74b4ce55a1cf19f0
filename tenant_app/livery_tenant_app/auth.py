"""Passwords, one-time login links, API keys and the role permission table.

Login links are HS256 JWTs signed with the tenant's `LIVERY_LOGIN_KEY` by the
control API, with the claims sub (owner email), tenant, aud "livery-login",
iat, exp (at most five minutes later) and jti. The app accepts each jti once;
storing used jtis is the caller's job because it needs the database.

API keys look like `lvk_<id>_<secret>`. Only the SHA-256 of the whole key is
stored, so a leaked database does not leak usable keys; the id finds the row.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

LOGIN_AUDIENCE = "livery-login"
LOGIN_MAX_LIFETIME_SECONDS = 300
LOGIN_LEEWAY_SECONDS = 10
API_KEY_PREFIX = "lvk"

ROLES = ("owner", "admin", "member")
PERMISSIONS: dict[str, frozenset[str]] = {
    "owner": frozenset(
        {"users:read", "users:write", "users:delete", "billing:read", "billing:write", "settings:read", "settings:write"}
    ),
    "admin": frozenset({"users:read", "users:write", "users:delete", "billing:read", "settings:read", "settings:write"}),
    "member": frozenset({"users:read", "settings:read"}),
}

_hasher = PasswordHasher()


def has_permission(role: str, permission: str) -> bool:
    """Return whether `role` grants `permission`; unknown roles grant nothing."""
    return permission in PERMISSIONS.get(role, frozenset())


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Return whether `password` matches the argon2 hash; False for a missing or malformed hash."""
    if not password_hash:
        # Hash anyway so that unknown accounts take as long as wrong passwords.
        _hasher.hash(password)
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


class LoginLinkError(Exception):
    """A login token is invalid, expired, for another tenant or already used."""


@dataclass(frozen=True)
class LoginClaims:
    email: str
    jti: str
    expires_at: datetime


def verify_login_token(token: str, key: str, tenant: str, now: datetime | None = None) -> LoginClaims:
    """Verify a login link token for `tenant` and return its claims, or raise LoginLinkError."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=["HS256"],
            audience=LOGIN_AUDIENCE,
            leeway=LOGIN_LEEWAY_SECONDS,
            options={"require": ["sub", "tenant", "aud", "iat", "exp", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise LoginLinkError("login link has expired; ask for a new one") from None
    except jwt.InvalidTokenError as exc:
        raise LoginLinkError(f"login link is invalid: {exc}") from None

    if claims["tenant"] != tenant:
        raise LoginLinkError("login link is for another tenant")
    if not isinstance(claims["sub"], str) or not isinstance(claims["jti"], str) or not claims["jti"]:
        raise LoginLinkError("login link is invalid: sub and jti must be strings")
    if claims["exp"] - claims["iat"] > LOGIN_MAX_LIFETIME_SECONDS + LOGIN_LEEWAY_SECONDS:
        raise LoginLinkError(f"login link is invalid: it lives longer than {LOGIN_MAX_LIFETIME_SECONDS} s")
    return LoginClaims(
        email=claims["sub"].lower(),
        jti=claims["jti"],
        expires_at=datetime.fromtimestamp(claims["exp"], tz=timezone.utc),
    )


@dataclass(frozen=True)
class NewApiKey:
    key_id: str
    secret: str
    key_hash: str

    @property
    def token(self) -> str:
        """Return the full key, shown to the user once."""
        return f"{API_KEY_PREFIX}_{self.key_id}_{self.secret}"


def generate_api_key() -> NewApiKey:
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return NewApiKey(key_id=key_id, secret=secret, key_hash=hash_api_key(f"{API_KEY_PREFIX}_{key_id}_{secret}"))


def hash_api_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_api_key(token: str) -> str | None:
    """Return the key id of a well-formed API key, or None."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX or len(parts[1]) != 12 or not parts[2]:
        return None
    return parts[1]


def api_key_matches(token: str, stored_hash: str) -> bool:
    return secrets.compare_digest(hash_api_key(token), stored_hash)


def new_secret_token() -> tuple[str, str]:
    """Return a random token for a link (invitation, password reset) and the SHA-256 to store."""
    token = secrets.token_urlsafe(32)
    return token, hashlib.sha256(token.encode()).hexdigest()


def hash_secret_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
