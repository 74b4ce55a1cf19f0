"""Response security headers, signed session cookies and CSRF tokens.

Pages run no JavaScript and load styles only from the app itself, so the
Content-Security-Policy can forbid scripts entirely. Sessions live in a cookie
signed with the tenant's `LIVERY_SESSION_KEY`. Each session carries a random
CSRF token, which every form posts back and every cookie-authenticated API
write sends as `X-CSRF-Token`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE = "livery_session"
SESSION_MAX_AGE_SECONDS = 14 * 24 * 3600
CSRF_FORM_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

# NOTE: img-src admits https: only, so product images behind an S3 endpoint on plain http
# (a local MinIO, say) do not show in browsers; downloads are unaffected.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self' https:; "
    "font-src 'self' https:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class SecurityHeadersMiddleware:
    """Add the security headers to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(header for header in SECURITY_HEADERS if header[0] not in present)
                message = dict(message, headers=headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass
class Session:
    """Contents of the session cookie: the signed-in user, if any, and the CSRF token."""

    csrf_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    user_id: str | None = None
    auth_version: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"csrf": self.csrf_token, "uid": self.user_id, "av": self.auth_version}


class SessionSigner:
    """Sign and verify session cookies with the tenant's session key."""

    def __init__(self, key: str, tenant: str) -> None:
        # The tenant name in the salt keeps a cookie from one tenant useless at another,
        # even if two tenants were ever given the same key.
        self._serializer = URLSafeTimedSerializer(key, salt=f"livery-session:{tenant}")

    def dumps(self, session: Session) -> str:
        return self._serializer.dumps(session.to_dict())

    def loads(self, cookie: str | None) -> Session | None:
        """Return the session in `cookie`, or None when it is missing, forged or expired."""
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=SESSION_MAX_AGE_SECONDS)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
            return None
        return Session(csrf_token=data["csrf"], user_id=data.get("uid"), auth_version=data.get("av"))


def csrf_matches(session: Session | None, submitted: str | None) -> bool:
    """Return whether `submitted` is the session's CSRF token, compared in constant time."""
    if session is None or not submitted:
        return False
    return secrets.compare_digest(session.csrf_token.encode(), submitted.encode())


class SessionMiddleware:
    """Load the signed session cookie into `scope["state"]["session"]` and write it back when changed.

    A request without a valid cookie gets a fresh anonymous session, so the
    sign-in form has a CSRF token too; its cookie is sent only with HTML
    responses, which are the only ones that can carry the token in a form.
    Handlers replace the session on sign-in and sign-out and set
    `state["session_changed"]`, which always sends the cookie.
    """

    def __init__(self, app: ASGIApp, signer: SessionSigner, secure: bool = False) -> None:
        self.app = app
        self.signer = signer
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        session = self.signer.loads(_read_cookie(scope, SESSION_COOKIE))
        fresh = session is None
        state["session_changed"] = False
        state["session"] = session or Session()
        state["csrf_token"] = state["session"].csrf_token

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and (
                state.get("session_changed") or (fresh and _is_html(message))
            ):
                headers = list(message.get("headers", []))
                headers.append((b"set-cookie", self._cookie(scope, state["session"]).encode("latin-1")))
                message = dict(message, headers=headers)
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _cookie(self, scope: Scope, session: Session) -> str:
        secure = "; Secure" if self.secure or scope.get("scheme") == "https" else ""
        return (
            f"{SESSION_COOKIE}={self.signer.dumps(session)}; Path=/; Max-Age={SESSION_MAX_AGE_SECONDS}; "
            f"HttpOnly; SameSite=Lax{secure}"
        )


def _is_html(message: Message) -> bool:
    for name, value in message.get("headers", []):
        if name.lower() == b"content-type":
            return value.startswith(b"text/html")
    return False


def _read_cookie(scope: Scope, name: str) -> str | None:
    for header, value in scope.get("headers", []):
        if header == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, _, cookie_value = part.strip().partition("=")
                if key == name:
                    return cookie_value
    return None
