"""Error responses: `{"error": {"code", "message", "field"}}` for the API, a branded page for the rest."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"


class AppError(Exception):
    """An error with a status code, a machine-readable code and, for bad input, the field at fault."""

    def __init__(self, status_code: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.field = field


def not_found(resource: str) -> AppError:
    """Return the one error that every missing, foreign or malformed id gets, so callers cannot distinguish them."""
    return AppError(404, "not_found", f"{resource} not found")


def error_body(code: str, message: str, field: str | None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def _field_of(location: tuple[Any, ...]) -> str:
    parts = [str(part) for part in location if part not in ("body", "query", "path", "form", "header")]
    return ".".join(parts) or ".".join(str(part) for part in location)


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith(API_PREFIX)


def install_error_handlers(app: FastAPI) -> None:
    from .rendering import render_error_page

    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> Response:
        if _wants_html(request):
            return render_error_page(request, exc.status_code, exc.message)
        return JSONResponse(error_body(exc.code, exc.message, exc.field), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        field = _field_of(tuple(first.get("loc", ())))
        message = "; ".join(f"{_field_of(tuple(error.get('loc', ())))}: {error.get('msg')}" for error in errors)
        if _wants_html(request):
            return render_error_page(request, 422, message)
        return JSONResponse(error_body("invalid", message, field), status_code=422)

    @app.exception_handler(DataError)
    async def _data_error(request: Request, exc: DataError) -> Response:
        # Input that passed validation but that PostgreSQL cannot store, such as a NUL character.
        logger.info("request %s %s: database rejected a value: %s", request.method, request.url.path, exc.orig)
        message = "a value cannot be stored: text must not contain NUL characters and numbers must fit their column"
        if _wants_html(request):
            return render_error_page(request, 422, message)
        return JSONResponse(error_body("invalid", message, None), status_code=422)

    @app.exception_handler(IntegrityError)
    async def _integrity_error(request: Request, exc: IntegrityError) -> Response:
        # Two requests raced for the same unique value; the one that lost gets 409.
        logger.warning("request %s %s: integrity error: %s", request.method, request.url.path, exc.orig)
        message = "the request conflicts with data that was just changed; reload and try again"
        if _wants_html(request):
            return render_error_page(request, 409, message)
        return JSONResponse(error_body("conflict", message, None), status_code=409)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = str(exc.detail)
        if _wants_html(request):
            return render_error_page(request, exc.status_code, message, headers=exc.headers)
        code = "not_found" if exc.status_code == 404 else "http_error"
        return JSONResponse(error_body(code, message, None), status_code=exc.status_code, headers=exc.headers)
