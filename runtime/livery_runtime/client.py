"""The admin API client that `livery apply`, `get`, `describe` and `delete` use.

The commands reach a running `livery up` through the control API's admin
endpoints. The URL comes from `LIVERY_API_URL` or the data folder's
`runtime.json`. The bearer token comes from `LIVERY_ADMIN_TOKEN` or the data
folder's `admin-token` file, which `livery up` creates with mode 0600.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

from .up import ADMIN_TOKEN_FILE, RUNTIME_FILE

REQUEST_TIMEOUT_SECONDS = 30.0


class ClientError(Exception):
    """An admin request failed; the message is ready to show to the user."""

    def __init__(self, message: str, *, status: int | None = None, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.errors = errors or []


def api_location(data_dir: Path) -> tuple[str, str]:
    """Return the control API URL and admin token for the runtime on `data_dir`."""
    url = os.environ.get("LIVERY_API_URL")
    if not url:
        try:
            url = json.loads((data_dir / RUNTIME_FILE).read_text(encoding="utf-8"))["apiUrl"]
        except (FileNotFoundError, KeyError, ValueError):
            raise ClientError(
                f"no running livery up found for the data folder {data_dir}; "
                "start one with `livery up`, pass its --data-dir, or set LIVERY_API_URL"
            ) from None
    token = os.environ.get("LIVERY_ADMIN_TOKEN")
    if not token:
        try:
            token = (data_dir / ADMIN_TOKEN_FILE).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise ClientError(
                f"the admin token file {data_dir / ADMIN_TOKEN_FILE} is missing; set LIVERY_ADMIN_TOKEN"
            ) from None
        except PermissionError:
            raise ClientError(f"cannot read {data_dir / ADMIN_TOKEN_FILE}: permission denied") from None
    return url.rstrip("/"), token


class AdminClient:
    """Calls `/v1/admin/...` with the admin bearer token and turns failures into `ClientError`."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self._http = httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=REQUEST_TIMEOUT_SECONDS,
            trust_env=False,
        )

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> AdminClient:
        return cls(*api_location(data_dir))

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise ClientError(f"cannot reach the control API at {self.url} ({type(exc).__name__}); is `livery up` running?") from None
        if response.status_code >= 400:
            raise error_from_response(response)
        if not response.content:
            return None
        return response.json()


def error_from_response(response: httpx.Response) -> ClientError:
    """Build a `ClientError` from the control API's `{"error": {...}}` body, or FastAPI's `{"detail": ...}`."""
    try:
        body = response.json()
    except ValueError:
        return ClientError(f"the control API returned {response.status_code}: {response.text[:200]}", status=response.status_code)
    errors: list[str] = []
    message = ""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        message = str(error.get("message") or error.get("code") or "")
        details = error.get("errors") or error.get("details")
        if isinstance(details, list):
            errors = [str(line) for line in details]
    elif isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        if isinstance(detail, list):
            errors = [str(line.get("msg", line)) if isinstance(line, dict) else str(line) for line in detail]
        else:
            message = str(detail)
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        errors = [str(line) for line in body["errors"]]
    if not message:
        message = "; ".join(errors) or f"request failed with status {response.status_code}"
    return ClientError(message, status=response.status_code, errors=errors)
