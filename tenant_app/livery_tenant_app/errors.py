"""Error responses: `{"error": {"code", "message", "field"}}` for the API, a branded page for the rest."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .rendering import render_error_page

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"


class AppError(Exception):
    """An error with a status code, a machine-readable code and, for bad input, the field at fault."""

    def __init__(
        self, status_code: int, code: str, message: str, field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers


def not_found(resource: str) -> AppError:
    """Return the one error that every missing, foreign or malformed id gets, so callers cannot distinguish them."""
    return AppError(404, "not_found", f"{resource} not found")


def error_body(code: str, message: str, field: str | None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def _field_of(location: tuple[Any, ...]) -> str:
    parts = [str(part) for part in location if part not in ("body", "query", "path", "form", "header")]
    return ".".join(parts) or ".".join(str(part) for part in location)


def _json_error_message(error: dict[str, Any]) -> str:
    # FastAPI reports a body that is not JSON at location ("body", <character offset>).
    location = tuple(error.get("loc", ()))
    reason = (error.get("ctx") or {}).get("error", "not valid JSON")
    position = f" at character {location[1]}" if len(location) > 1 else ""
    return f"body: invalid JSON{position}: {reason}; send a JSON document with Content-Type application/json"


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith(API_PREFIX)


def error_response(
    request: Request, status_code: int, code: str, message: str, field: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Return the error as JSON for API paths and as a branded page for the rest."""
    if _wants_html(request):
        return render_error_page(request, status_code, message, headers=headers)
    return JSONResponse(error_body(code, message, field), status_code=status_code, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> Response:
        return error_response(request, exc.status_code, exc.code, exc.message, exc.field, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        if first.get("type") == "json_invalid":
            return error_response(request, 422, "invalid", _json_error_message(first), "body")
        field = _field_of(tuple(first.get("loc", ())))
        message = "; ".join(f"{_field_of(tuple(error.get('loc', ())))}: {error.get('msg')}" for error in errors)
        return error_response(request, 422, "invalid", message, field)

    @app.exception_handler(DataError)
    async def _data_error(request: Request, exc: DataError) -> Response:
        # Input that passed validation but that PostgreSQL cannot store, such as a NUL character.
        logger.info("request %s %s: database rejected a value: %s", request.method, request.url.path, exc.orig)
        message = "a value cannot be stored: text must not contain NUL characters and numbers must fit their column"
        return error_response(request, 422, "invalid", message)

    @app.exception_handler(IntegrityError)
    async def _integrity_error(request: Request, exc: IntegrityError) -> Response:
        # Two requests raced for the same unique value; the one that lost gets 409.
        logger.warning("request %s %s: integrity error: %s", request.method, request.url.path, exc.orig)
        message = "the request conflicts with data that was just changed; reload and try again"
        return error_response(request, 409, "conflict", message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = "not_found" if exc.status_code == 404 else "http_error"
        return error_response(request, exc.status_code, code, str(exc.detail), headers=exc.headers)
