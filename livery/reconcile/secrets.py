"""The tenant's credentials: generated once, stored through the driver before any use.

A crash between storing and using them loses nothing: the next reconcile reads
the stored values back and never generates new ones for keys that exist.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable

from ..drivers.base import (
    SECRET_DATABASE_URL,
    SECRET_LOGIN_KEY,
    SECRET_SESSION_KEY,
    SECRET_USAGE_TOKEN,
)

# Extra keys kept in the same secret. The password is stored before the role is
# created with it; the isolation records the mode the data was provisioned in.
SECRET_DATABASE_PASSWORD = "LIVERY_DATABASE_PASSWORD"
SECRET_ISOLATION = "LIVERY_ISOLATION"

GENERATED_KEYS = (SECRET_DATABASE_PASSWORD, SECRET_LOGIN_KEY, SECRET_SESSION_KEY, SECRET_USAGE_TOKEN)
TOKEN_BYTES = 32

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@", re.IGNORECASE)


def completed_secret(existing: dict[str, str] | None, isolation: str) -> dict[str, str]:
    """Return `existing` with every missing generated key added; existing values are kept."""
    data = dict(existing or {})
    for key in GENERATED_KEYS:
        if not data.get(key):
            data[key] = secrets.token_urlsafe(TOKEN_BYTES)
    data.setdefault(SECRET_ISOLATION, isolation)
    return data


def secret_values(data: dict[str, str] | None) -> list[str]:
    """Return the values in a tenant secret that are credentials (everything but the isolation)."""
    return [value for key, value in (data or {}).items() if key != SECRET_ISOLATION]


def redact(message: str, secret_values: Iterable[str] = ()) -> str:
    """Remove passwords in URLs and every known secret value from `message`."""
    text = _URL_CREDENTIALS.sub(r"\g<scheme>\g<user>:***@", message)
    for value in secret_values:
        if value and len(value) >= 6:
            text = text.replace(value, "***")
    return text


__all__ = [
    "GENERATED_KEYS",
    "SECRET_DATABASE_PASSWORD",
    "SECRET_DATABASE_URL",
    "SECRET_ISOLATION",
    "completed_secret",
    "redact",
    "secret_values",
]
