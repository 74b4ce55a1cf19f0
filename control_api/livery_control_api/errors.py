"""API errors and the handlers that render every error as `{"error": {"code", "message", "field"}}`.

FastAPI's own validation errors and Starlette's 404 and 405 responses go
through the same handlers, so a client parses one error shape everywhere.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from livery.models.errors import describe_error, field_path
from livery.store.base import Conflict as StoreConflict
from livery.store.base import Invalid as StoreInvalid
from livery.store.base import NotFound as StoreNotFound
from livery.store.base import StoreError

logger = logging.getLogger("livery.control_api")


class ApiError(Exception):
    """An error with an HTTP status, a stable machine-readable code and the field it concerns."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.headers = headers
        if code is not None:
            self.code = code


class InvalidInput(ApiError):
    status_code = 422
    code = "invalid"


class Unauthorized(ApiError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str = "missing or invalid credentials", **kwargs) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(message, **kwargs)


class Forbidden(ApiError):
    status_code = 403
    code = "forbidden"


class NotFound(ApiError):
    status_code = 404
    code = "not_found"


class Conflict(ApiError):
    status_code = 409
    code = "conflict"


class PaymentRequired(ApiError):
    status_code = 402
    code = "payment_required"


class TooManyRequests(ApiError):
    status_code = 429
    code = "rate_limited"


class Unavailable(ApiError):
    status_code = 503
    code = "unavailable"


def error_body(code: str, message: str, field: str | None = None) -> dict:
    return {"error": {"code": code, "message": message, "field": field}}


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse(error_body(exc.code, exc.message, exc.field), status_code=exc.status_code, headers=exc.headers)


# Fields whose value never appears in an error message, at any depth of a request body.
SECRET_FIELDS = frozenset({"password", "current_password", "new_password", "refresh_token", "token", "secret", "key"})


def describe_input_error(error: dict[str, Any]) -> tuple[str, str]:
    """Return the field path and message of one pydantic error, without the value of a secret field."""
    path, message = describe_error(error)
    location = error.get("loc") or ()
    if location and str(location[-1]) in SECRET_FIELDS:
        context = error.get("ctx") or {}
        if error["type"] == "string_too_short":
            message = f"must be at least {context.get('min_length')} characters"
        elif error["type"] == "string_too_long":
            message = f"must be at most {context.get('max_length')} characters"
        else:
            message = message.split(", got ", 1)[0]
    return path, message


def validation_error_lines(exc: ValidationError) -> list[str]:
    """Return one `path: message` line per problem in `exc`, with no secret's value."""
    return [": ".join(describe_input_error(error)) for error in exc.errors(include_url=False)]


def _json_error_message(error: dict[str, Any], document: Any) -> str:
    """Return `invalid JSON at line L, column C (reason)` for FastAPI's json_invalid error."""
    position = error["loc"][-1] if isinstance(error["loc"][-1], int) else 0
    reason = (error.get("ctx") or {}).get("error", "not JSON")
    if isinstance(document, bytes):
        document = document.decode("utf-8", errors="replace")
    if not isinstance(document, str):
        return f"invalid JSON at character {position + 1} ({reason})"
    line = document.count("\n", 0, position) + 1
    column = position - (document.rfind("\n", 0, position) + 1) + 1
    return f"invalid JSON at line {line}, column {column} ({reason})"


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if len(errors) == 1 and errors[0].get("type") == "json_invalid":
        return JSONResponse(error_body("invalid", f"body: {_json_error_message(errors[0], exc.body)}", "body"), status_code=422)
    lines = []
    first_field = None
    for error in errors:
        location = [part for part in error.get("loc", ()) if part not in ("body", "query", "path", "header", "form")]
        path, message = describe_input_error({**error, "loc": location})
        lines.append(f"{path}: {message}")
        first_field = first_field or field_path(location)
    return JSONResponse(error_body("invalid", "; ".join(lines), first_field), status_code=422)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden", 413: "too_large"}


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 404:
        message = f"no such resource: {request.url.path}"
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def _store_error(request: Request, exc: StoreError) -> JSONResponse:
    if isinstance(exc, StoreConflict):
        return JSONResponse(error_body("conflict", f"{exc}; retry the request"), status_code=409)
    if isinstance(exc, StoreNotFound):
        return JSONResponse(error_body("not_found", str(exc)), status_code=404)
    if isinstance(exc, StoreInvalid):
        return JSONResponse(error_body("invalid", "; ".join(exc.errors)), status_code=422)
    logger.error("resource store failed on %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(error_body("unavailable", "the resource store is unavailable; retry later"), status_code=503)


async def _database_rejected_value(request: Request, exc: DataError) -> JSONResponse:
    # Input checks come first; this catches a value PostgreSQL cannot store (a NUL character) that slipped past them.
    logger.warning("database rejected a value on %s %s: %s", request.method, request.url.path, type(exc.orig).__name__)
    message = "a value contains characters that cannot be stored (such as NUL); remove them and retry"
    return JSONResponse(error_body("invalid", message), status_code=422)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # The message of an unexpected error may contain a URL or a key, so only its type is logged.
    logger.error("unhandled error on %s %s: %s", request.method, request.url.path, type(exc).__name__, exc_info=False)
    return JSONResponse(error_body("internal", "internal error; the request was not completed"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(StoreError, _store_error)
    app.add_exception_handler(DataError, _database_rejected_value)
    app.add_exception_handler(Exception, _unexpected_error)
