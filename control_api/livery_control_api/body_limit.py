"""Request body size limits, enforced before any route reads the body (pure ASGI middleware).

A request whose Content-Length is over the limit gets 413 at once. A body
without Content-Length (chunked) is counted as it arrives, and the read that
crosses the limit raises a 413 `HTTPException`, so the app's error handlers
return the usual error shape and no route reads more than the limit.
"""

from __future__ import annotations

import json
import re

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Any JSON or form request fits in 1 MiB; the webhook and manifests stay far below it.
DEFAULT_MAX_BYTES = 1024 * 1024
# Logo uploads: a 512 KiB image plus multipart framing, with room to return a clear error about the size.
LOGO_MAX_BYTES = 2 * 1024 * 1024
_LOGO_PATH = re.compile(r"^/v1/tenants/[^/]+/branding/logo$")


def body_limit_for(path: str) -> int:
    """Return the maximum request body size in bytes for `path`."""
    return LOGO_MAX_BYTES if _LOGO_PATH.match(path) else DEFAULT_MAX_BYTES


def _too_large_message(limit: int) -> str:
    return f"request body is larger than {limit} bytes ({limit // 1024} KiB), the limit for this path"


class BodySizeLimitMiddleware:
    """Reject request bodies over `body_limit_for(path)` with 413 and the API's error shape."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _send_too_large(send, limit)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, _too_large_message(limit))
            return message

        await self.app(scope, limited_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_too_large(send: Send, limit: int) -> None:
    body = json.dumps({"error": {"code": "too_large", "message": _too_large_message(limit), "field": None}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
