"""A minimal ASGI app the local driver tests run as a tenant app: `/readyz` and `/env`."""

from __future__ import annotations

import json
import os
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/env":
        body = json.dumps({key: value for key, value in os.environ.items() if key.startswith("LIVERY_")}).encode()
    else:
        body = b"ok"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
